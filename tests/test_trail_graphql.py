"""The ``trace`` GraphQL field on the hand-built scenario (see test_trail_scenario.py)."""

from __future__ import annotations

from decimal import Decimal

from fundtrack.api.testing import Api
from fundtrack.ingest.pipeline import import_file
from tests import trail_scenario


def test_trace_over_graphql(engine, db_url, tmp_path):
    for p in trail_scenario.write(tmp_path).values():
        assert import_file(engine, p).status == "applied"
    api = Api(db_url)
    up = api.query("""{ trace(from: {activity: "XX-NGO2-N2"}, direction: UPSTREAM) {
        originators { organization { ref } amount currency amountUsd }
        untraced { amount currency reason } } }""")["trace"]
    assert sorted((o["organization"]["ref"], Decimal(o["amount"]), o["currency"])
                  for o in up["originators"]) == [
        ("XX-DONOR-1", Decimal("200000.00"), "USD"), ("XX-DONOR-2", Decimal("50000.00"), "USD")]
    assert up["untraced"] == []
    down = api.query("""{ trace(from: {organization: "XX-DONOR-2"}, direction: DOWNSTREAM,
        maxDepth: 6) { terminals { activity { iatiIdentifier } organization { ref } amount
        currency } untraced { amount currency reason } movements { kind amount } } }""")["trace"]
    got = {(t["activity"]["iatiIdentifier"], Decimal(t["amount"])) for t in down["terminals"]}
    assert got == {("XX-AG1-P1", Decimal("173333.33")), ("XX-AG1-P3", Decimal("40000.00")),
                   ("XX-AG2-P2", Decimal("50000.00")), ("XX-NGO1-N1", Decimal("86666.67")),
                   ("XX-NGO2-N2", Decimal("48000.00"))}
    assert [(Decimal(u["amount"]), u["reason"]) for u in down["untraced"]] == [
        (Decimal("2000.00"), "not reported spent")]
    summary = api.query("""{ donorSummary(organization: "XX-DONOR-1") {
        byRecipient { key amountUsd } byKind { key amountUsd } } }""")["donorSummary"]
    assert Decimal(summary["byKind"][0]["amountUsd"]) == Decimal("591999.99")
    bad = api.raw("""{ trace(from: {activity: "x", organization: "y"}) { terminals { amount } } }""")
    assert bad.get("errors")
