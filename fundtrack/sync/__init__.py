"""``fundtrack sync``: keep the ledger current from the IATI Registry, the IATI Datastore
and OCHA FTS by itself.

Modules, one concern each: :mod:`.http` (a polite HTTP client: conditional requests,
retries with backoff, a per-host rate limit, truncated bodies detected), :mod:`.state`
(what was fetched, its validators and sha256, the batch it became), :mod:`.sources`
(the built-in sources, registered as plugins through the ``fundtrack_sync_sources``
hook), :mod:`.runner` (one run: list, fetch, import through the ordinary pipeline,
withdraw), :mod:`.config` (the TOML file). Operators: ``docs/sync.md``.
"""
