"""FTS parent/child flows feed the money trail: parentFlowId links resolve across pages.

Counted independently with the json module: a child names its parent (``parentFlowId``);
the link resolves when the parent is one of the imported flows (any page), else it is
broken. Only flows the importer keeps count (status paid, commitment or pledge, one per
flow id). Cash children (status paid) are movements, each counted once.
"""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import func, select

from fundtrack import models as m
from fundtrack.importing import import_file
from fundtrack.trail import links
from fundtrack.trail_models import Movement, TrailLink
from tests.conftest import SHARED

FTS = SHARED / "fts-json"
PAGES = sorted(FTS.glob("custom-search-locationid-*.json"))
KEPT = {"paid", "commitment", "pledge"}


def independent() -> tuple[dict[str, int], int, int]:
    flows: dict[str, dict] = {}
    for p in PAGES:
        for f in json.loads(p.read_text())["data"]["flows"]:
            if str(f.get("status", "")).lower() in KEPT:
                flows.setdefault(str(f["id"]), f)  # a later page replaces, same content
    counts = Counter()
    for f in flows.values():
        parent = f.get("parentFlowId")
        if parent not in (None, ""):
            counts["resolved" if str(parent) in flows else "broken"] += 1
    paid = sum(1 for f in flows.values() if f["status"].lower() == "paid")
    return {"resolved": counts["resolved"], "broken": counts["broken"]}, len(flows), paid


def test_fts_parent_chains_resolve_across_pages(engine):
    assert len(PAGES) == 4
    for p in PAGES:
        assert import_file(engine, p).status == "applied", p
    expected, n_flows, n_paid = independent()
    assert expected["resolved"] > 50  # the pages do chain: a real check, not 0 == 0
    with engine.connect() as c:
        got = links.counts_by_publisher(c, ("fts-parent",))
        assert got == {"XM-OCHA-FTS": expected}
        f = m.Flow.__table__
        assert c.execute(select(func.count()).select_from(f).where(
            f.c.superseded_by.is_(None))).scalar_one() == n_flows
        # every resolved link points at the current flow with the parent's FTS id
        t = TrailLink.__table__
        rows = c.execute(select(t.c.target_ref, f.c.external_id).select_from(
            t.join(f, f.c.id == t.c.target_flow_id)).where(t.c.kind == "fts-parent")).all()
        assert len(rows) == expected["resolved"]
        assert all(ref == ext for ref, ext in rows)
        # paid flows are cash: one movement each (FTS reports one side only)
        assert c.execute(select(func.count()).select_from(Movement)).scalar_one() == n_paid
