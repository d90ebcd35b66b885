"""The trail's identifier columns and held-money index are what the model says (migration 0011).

Alembic's drift check compares neither a column's collation nor an index's WHERE, so
both are checked here against the live database.
"""

from __future__ import annotations

from sqlalchemy import select, text

from fundtrack.derived.trail.tables import HELD_ROWS, Attribution, Movement, Reach
from fundtrack.money import money_number

IDENT_COLUMNS = {
    "movement": {"src_org", "src_activity", "dst_org", "dst_activity"},
    "attribution": {"originator_ref"},
    "trail_reach": {"originator_ref", "kind", "org", "activity"},
}


def test_model_declares_byte_order_for_identifiers_on_postgresql(engine):
    from sqlalchemy.dialects import postgresql

    declared = {
        t.name: {c.name for c in t.columns
                 if getattr(c.type.dialect_impl(postgresql.dialect()), "collation", None) == "C"}
        for t in (Movement.__table__, Attribution.__table__, Reach.__table__)}
    assert declared == IDENT_COLUMNS
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as c:
        live = c.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_name IN ('movement', 'attribution', 'trail_reach') AND collation_name = 'C'")).all()
    got: dict[str, set[str]] = {}
    for t, col in live:
        got.setdefault(t, set()).add(col)
    assert got == IDENT_COLUMNS


def test_held_money_query_can_use_the_partial_index(engine):
    """PostgreSQL: the constant ``kind = 'account'`` proves the index's condition (a bound
    parameter would not, in a generic plan), and the index gives the order. SQLite (which
    orders by a cast, so no index gives it): the index exists with its condition."""
    if engine.dialect.name != "postgresql":
        with engine.connect() as c:
            ddl = c.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ix_trail_reach_held'")).scalar()
        assert ddl is not None and "WHERE kind = 'account'" in ddl
        return
    r = Reach.__table__
    q = (select(r.c.org, r.c.activity, r.c.amount)
         .where(r.c.originator_ref == "XM-DAC-7", HELD_ROWS, money_number(r.c.amount) > 0)
         .order_by(money_number(r.c.amount).desc()).limit(50))
    with engine.connect() as c:
        c.execute(text("SET enable_seqscan = off"))
        compiled = q.compile(engine)
        sql = compiled.string
        for name, value in compiled.params.items():  # the donor stays a parameter
            sql = sql.replace(f"%({name})s", "$1" if name.startswith("originator") else str(value))
        c.execute(text("PREPARE held(text) AS " + sql))
        c.execute(text("SET plan_cache_mode = force_generic_plan"))
        plan = "\n".join(c.execute(text("EXPLAIN EXECUTE held('XM-DAC-7')")).scalars())
    assert "ix_trail_reach_held" in plan and "Sort" not in plan, plan
