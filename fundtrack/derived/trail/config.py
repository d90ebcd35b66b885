"""Settings of the money trail (read by :mod:`fundtrack.config`), documented in
docs/methodology.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from fundtrack.config import get_settings


@dataclass(frozen=True)
class TrailConfig:
    """How double counting is matched and how attribution periods are cut.

    ``match_tolerance``: relative difference allowed between a disbursement and the
    incoming funds that mirror it, compared in the common currency or else in USD
    (default 0.02: two reports converted at different days' rates). ``match_window_days``:
    how far apart their dates may be when no activity link ties them (default 90).
    ``period``: ``year`` (calendar year of the value date) or ``all`` (one period).
    """

    match_tolerance: Decimal = field(
        default_factory=lambda: Decimal(get_settings().match_tolerance))
    match_window_days: int = field(default_factory=lambda: get_settings().match_window_days)
    period: str = field(default_factory=lambda: get_settings().attribution_period)
