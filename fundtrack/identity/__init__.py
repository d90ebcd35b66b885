"""Organisation identity: one canonical organisation for every party of every flow.

The pipeline's level between the ledger (what reports said, untouched) and the derived
tables (the money trail, attribution, the rollup), which read canonical ids. Tables in
:mod:`.tables`; this ``__init__`` imports nothing, so loading the tables does not load the
resolver.

Public functions (import them from their modules):

- :func:`fundtrack.identity.names.normalise` ``(name) -> str``: the normalised form of a
  name that the name rule compares (case, accents, punctuation, "X - Ministry of Foreign
  Affairs" = "Ministry of Foreign Affairs of X", "Denmark, Government of", abbreviations).
- :func:`fundtrack.identity.seeds.load_seeds` ``() -> list[Seed]``: the shipped
  organisations (``fundtrack/data/identity/*.toml``), each entry with its source, and
  :func:`fundtrack.identity.seeds.crs_channel_names` (CRSChannelCode names, en/fr).
- :class:`fundtrack.identity.resolve.Resolver`: built from a connection
  (``Resolver.load(conn)``), ``resolve(ref, name, type) -> Resolution`` (org id,
  canonical ref, rule, evidence). Decisions (:class:`~.tables.OrgDecision`) are applied
  first, then the rules in order: identifier, identifier+name, name, new.
- :func:`fundtrack.identity.resolve.rebuild` ``(conn)``: rebuild every identity table
  from seeds, registry, decisions and the current ledger (the derived step ``identity``,
  run first in :data:`fundtrack.derived.steps.STEPS`: ``recompute``, decisions, registry
  edits); :func:`fundtrack.identity.incremental.update_after` ``(conn, batch_id,
  revert=False)``: the same answers after an import or a revert, writing ``flow_party``
  only for the batch's flows and for earlier flows whose party changed organisation
  (their ids go to the trail, which re-pairs them instead of rebuilding).
- :func:`fundtrack.identity.resolve.canonical_ref` ``(conn, ref) -> str``: the canonical
  ref of an organisation known by any of its identifiers (``XM-DAC-41141`` ->
  ``FT-FUND-PBF``); the ref itself when unknown.
- :func:`fundtrack.identity.resolve.refs_of` ``(conn, ref) -> tuple[str, ...]``: every
  reported ref that resolves to the same canonical organisation (its identifiers and
  the refs of parties matched to it), the canonical ref first.
- :func:`fundtrack.identity.resolve.identifiers` ``(conn, ref)``: the identifiers
  (scheme, value, origin, source) and names of a canonical organisation.
"""
