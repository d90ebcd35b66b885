"""The pooled-fund registry: seeded by migration 0003 from its own literals, equal to the code's."""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import select

from fundtrack.derived.trail import funds
from fundtrack.derived.trail.tables import Fund
from fundtrack.ledger import tables as m

MIGRATION = Path(__file__).parents[1] / "migrations" / "versions" / "0003_money_trail.py"


def test_migration_imports_no_fundtrack_code_but_money_type():
    tree = ast.parse(MIGRATION.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert {i for i in imported if i.startswith("fundtrack")} == {"fundtrack.money"}


def test_fresh_database_holds_the_registry_the_code_seeds(engine):
    with engine.begin() as conn:
        rows = {r.organisation_ref: r for r in conn.execute(select(Fund).order_by(Fund.id))}
        assert list(rows) == [f.ref for f in funds.SEED_FUNDS]
        for f in funds.SEED_FUNDS:
            r = rows[f.ref]
            assert (r.name, r.acronym, r.administrative_agent_ref, r.administrative_agent_name,
                    r.aliases, r.note) == (f.name, f.acronym, f.agent_ref, f.agent_name,
                                           list(f.aliases), f.note)
        org = m.Organisation.__table__
        orgs = dict(conn.execute(select(org.c.ref, org.c.is_pooled_fund).order_by(org.c.id)).all())
        assert orgs == {"FT-FUND-PBF": True, funds.MPTFO_REF: False, "FT-FUND-WPHF": True,
                        "XM-OCHA-CERF": True, "FT-FUND-UNDEF": True, "FT-FUND-UNTF-EVAW": True}
        # the code's seed finds everything in place: nothing added
        assert funds.seed(conn) == 0
        assert funds.pooled_refs(conn) >= {f.ref for f in funds.SEED_FUNDS}
