"""Tokens: who may write, and for which organisation. Tables in :mod:`.tables`, hashing
and checks in :mod:`.tokens`."""
