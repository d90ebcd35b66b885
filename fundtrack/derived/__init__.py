"""Derived tables: everything computed from the ledger.

:mod:`.steps` holds the one list of steps (``STEPS``: the money trail, the 1325
classification, the rollup) and runs them; :mod:`.trail` and :mod:`.rollup` hold the
computations with their tables. This package's ``__init__`` imports nothing, so loading a
table module (for Alembic, or the query layer) does not load the computations.
"""
