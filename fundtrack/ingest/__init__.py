"""File -> records -> ledger: the import pipeline (:mod:`.pipeline`), the checks a record
passes before it is written (:mod:`.validate`, :mod:`.codelists`), the defences against
hostile files (:mod:`.filesafety`) and the capped log of what was skipped (:mod:`.issuelog`).
Importers (plugins) never see the database; this package is where their records meet it."""
