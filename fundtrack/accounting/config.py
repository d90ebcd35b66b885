"""Loading the editable rule and benchmark files of ``fundtrack/data/accounting``.

The directory can be replaced wholesale with ``FUNDTRACK_ACCOUNTING_DATA`` (a folder with
the same file names), so a watchdog can publish its own rules and reproduce its cards.
"""

from __future__ import annotations

import hashlib
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from fundtrack.config import get_settings

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "data" / "accounting"


def data_dir() -> Path:
    return Path(get_settings().accounting_data or DEFAULT_DIR)


@cache
def _load(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def load_file(path: str | Path) -> dict[str, Any]:
    """A rule file outside the data directory (e.g. an older rule set kept to compare)."""
    return _load(str(path))


def load(name: str) -> dict[str, Any]:
    """The parsed ``<name>.toml`` of the data directory (cached per path)."""
    return _load(str(data_dir() / f"{name}.toml"))


def fingerprint() -> str:
    """SHA-256 (first 16 hex) of every rule file: cited on each card so it is reproducible."""
    h = hashlib.sha256()
    for p in sorted(data_dir().glob("*.toml")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    from fundtrack.identity.wro import WRO_FILE  # the WRO list the cards' shares read

    h.update(WRO_FILE.read_bytes())
    return h.hexdigest()[:16]
