"""`isMirror: false` counts every movement once: the hand-built scenario, by hand."""

from __future__ import annotations

from decimal import Decimal

from fundtrack.api.testing import Api
from fundtrack.ingest.pipeline import import_file
from tests import trail_scenario

QUERY = """query($w: FlowWhere) {
  flowsAggregate(where: $w, groupBy: [KIND]) { groups { kind count sumUsd } } }"""


def totals(api: Api, where: dict | None) -> dict[str, tuple[int, Decimal]]:
    data = api.query(QUERY, {"w": where})
    return {g["kind"]: (g["count"], Decimal(g["sumUsd"]))
            for g in data["flowsAggregate"]["groups"]}


def test_mirrored_reports_are_counted_once(db_url, tmp_path):
    from fundtrack.db import make_engine

    engine = make_engine(db_url)
    for path in trail_scenario.write(tmp_path).values():
        assert import_file(engine, path).status == "applied"
    engine.dispose()
    api = Api(db_url)
    every = totals(api, None)
    once = totals(api, {"isMirror": False})
    mirrors = totals(api, {"isMirror": True})
    # 7 of the reported transfers are the recipients' incoming funds matching a sender's
    # disbursement (tests/test_trail_scenario.py): those are the mirrors, and only those
    assert sum(n for n, _ in mirrors.values()) == 7
    assert set(mirrors) == {"INCOMING_FUNDS"}
    # every incoming-funds report in the scenario mirrors a disbursement: counted once,
    # the money moved is the disbursements plus the expenditure
    assert every["INCOMING_FUNDS"] == mirrors["INCOMING_FUNDS"]
    assert "INCOMING_FUNDS" not in once
    assert once["DISBURSEMENT"] == every["DISBURSEMENT"]
    assert once["EXPENDITURE"] == every["EXPENDITURE"]
    moved = sum(v for _, v in once.values())
    assert moved == sum(v for _, v in every.values()) - mirrors["INCOMING_FUNDS"][1]
