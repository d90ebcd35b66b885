"""Hook specifications: the whole plugin API of fundtrack.

A plugin is a module or object with functions named like these hooks, decorated with
``fundtrack.hookimpl`` and registered through the ``fundtrack.importers`` entry-point
group. Built-in importers use exactly the same route. Every hook here is documented in
``docs/plugins.md``; a test fails when one is not.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("fundtrack")
hookimpl = pluggy.HookimplMarker("fundtrack")


@hookspec
def fundtrack_importers() -> list[Any]:
    """Return the importers this plugin provides.

    Each importer is an object with ``name``, ``version``, ``title``, ``sniff(head,
    filename)`` and ``parse(stream, context)`` as described by
    :class:`fundtrack.plugins.Importer`. Return an empty list to provide none.
    """


@hookspec
def fundtrack_classifiers() -> list[Any]:
    """Return extra 1325 classifiers (scope and pillars) this plugin provides.

    Each is a callable ``classify(item)`` taking a :class:`fundtrack.accounting.items.Item`
    and returning ``(dimension, rule_id)`` pairs, ``dimension`` being ``"scope"`` or
    ``"pillar:<name>"``. They add to the rules of ``rules.toml``; hand overrides still win.
    """


@hookspec
def fundtrack_sync_sources() -> list[Any]:
    """Return the kinds of remote source ``fundtrack sync`` can keep current from.

    Each is an object with ``type``, ``title``, ``whole_datasets``, ``check(options)`` and
    ``documents(ctx)`` as described by :class:`fundtrack.sync.sources.SyncSource`. The
    built-in IATI Registry, IATI Datastore and FTS sources use this hook too.
    """
