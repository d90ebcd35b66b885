"""Plugin manager and the importer protocol.

Importers are discovered through the ``fundtrack.importers`` entry-point group, the same
for built-ins (``importers/``) and third-party packages.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, BinaryIO, Protocol, runtime_checkable

import pluggy

from fundtrack import hookspecs
from fundtrack.records import Issue, Record

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fundtrack.importers"
SNIFF_BYTES = 64 * 1024


@dataclass
class ImportContext:
    """What an importer may know about the file it parses (never a database handle)."""

    filename: str
    options: dict[str, Any] = field(default_factory=dict)
    #: What the importer learns about the file as a whole, for the pipeline: e.g.
    #: ``generated`` (IATI ``@generated-datetime``), used by the older-file policy.
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Importer(Protocol):
    """A reader for one report format.

    ``sniff`` looks at the first 64 KiB and returns a confidence in (0, 1] when it
    recognises the format, or ``None`` for "not mine" (like ``pytest_collect_file``).
    ``parse`` streams the file and yields canonical records and issues; it raises
    :class:`fundtrack.ingest.pipeline.FileRejected` when the file cannot be read at all.
    """

    name: str
    version: str
    title: str

    def sniff(self, head: bytes, filename: str) -> float | None: ...

    def parse(self, stream: BinaryIO, context: ImportContext) -> Iterator[Record | Issue]: ...


#: Entry points that failed to load: name -> error. A broken plugin must not stop the
#: others (or the built-ins); ``fundtrack plugins`` shows these.
LOAD_ERRORS: dict[str, str] = {}
#: Entry-point name -> "distribution version", for ``fundtrack plugins``.
DISTRIBUTIONS: dict[str, str] = {}


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("fundtrack")
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # report, keep going
                LOAD_ERRORS[ep.name] = f"{type(exc).__name__}: {exc}"
                log.warning("fundtrack plugin %r failed to load", ep.name, exc_info=True)
                warnings.warn(f"fundtrack plugin {ep.name!r} failed to load: {exc}",
                              RuntimeWarning, stacklevel=2)
                continue
            pm.register(plugin, name=ep.name)
            if ep.dist is not None:
                DISTRIBUTIONS[ep.name] = f"{ep.dist.name} {ep.dist.version}"
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
    for name, plugin in pm.list_name_plugin():
        provided = getattr(plugin, "fundtrack_importers", None)
        if provided is not None and any(i.name == importer.name for i in provided() or []):
            return DISTRIBUTIONS.get(name, "registered in code")
    return "registered in code"
