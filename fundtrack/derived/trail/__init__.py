"""Following the money: links, canonical movements, pooled-fund attribution, traces.

The rule is stated once, in :mod:`fundtrack.derived.trail.engine`, and explained with a worked
example in ``docs/methodology.md``.
"""
