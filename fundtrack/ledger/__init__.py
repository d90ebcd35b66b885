"""The ledger: every flow as reported, never edited in place. :mod:`.tables` holds its
tables, :mod:`.writer` merges a batch (supersede, revert, the ledger lock), :mod:`.fx`
converts currencies for the derived tables."""
