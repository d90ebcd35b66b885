"""Storage: the engine (:mod:`.engine`), the declarative base and its naming convention
(:mod:`.base`), and every table gathered for Alembic (:mod:`.metadata`).

Tables live beside the code that owns them and import :class:`~fundtrack.db.base.Base`;
nothing here imports them except :mod:`fundtrack.db.metadata`.
"""

from fundtrack.db.engine import make_engine, normalise_url

__all__ = ["make_engine", "normalise_url"]
