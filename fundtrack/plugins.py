"""Plugin manager and the importer protocol.

Importers are discovered through the ``fundtrack.importers`` entry-point group, the same
for built-ins (``importers/``) and third-party packages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, BinaryIO, Protocol, runtime_checkable

import pluggy

from fundtrack import hookspecs
from fundtrack.records import Issue, Record

ENTRY_POINT_GROUP = "fundtrack.importers"
SNIFF_BYTES = 64 * 1024


@dataclass
class ImportContext:
    """What an importer may know about the file it parses (never a database handle)."""

    filename: str
    options: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Importer(Protocol):
    """A reader for one report format.

    ``sniff`` looks at the first 64 KiB and returns a confidence in (0, 1] when it
    recognises the format, or ``None`` for "not mine" (like ``pytest_collect_file``).
    ``parse`` streams the file and yields canonical records and issues; it raises
    :class:`fundtrack.importing.FileRejected` when the file cannot be read at all.
    """

    name: str
    version: str
    title: str

    def sniff(self, head: bytes, filename: str) -> float | None: ...

    def parse(self, stream: BinaryIO, context: ImportContext) -> Iterator[Record | Issue]: ...


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("fundtrack")
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    return make_plugin_manager()


def importers(pm: pluggy.PluginManager | None = None) -> dict[str, Importer]:
    """All registered importers by name (later registrations do not override earlier)."""
    pm = pm or plugin_manager()
    found: dict[str, Importer] = {}
    for batch in pm.hook.fundtrack_importers():
        for imp in batch or []:
            found.setdefault(imp.name, imp)
    return found


def plugin_of(importer: Importer, pm: pluggy.PluginManager | None = None) -> str:
    """The distribution that provides an importer, for ``fundtrack plugins``."""
    pm = pm or plugin_manager()
    for plugin, dist in pm.list_plugin_distinfo():
        if importer in (plugin.fundtrack_importers() or []) or any(
            i.name == importer.name for i in (plugin.fundtrack_importers() or [])
        ):
            return f"{dist.project_name} {dist.version}"
    return "registered in code"
