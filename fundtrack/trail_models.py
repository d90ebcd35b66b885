"""Ledger tables for links, movements, funds and attribution (follow-the-money issue)."""

from __future__ import annotations

from fundtrack.models import Base  # noqa: F401
