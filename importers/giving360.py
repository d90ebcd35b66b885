"""Placeholder: this importer is being written (see the issue for more report formats)."""

from __future__ import annotations

from typing import Any

from fundtrack.hookspecs import hookimpl


@hookimpl
def fundtrack_importers() -> list[Any]:
    return []
