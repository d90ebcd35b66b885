"""The pooled-fund registry over GraphQL: seeded funds, global ids, admin-only edits."""

from __future__ import annotations

from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from fundtrack.db import make_engine
from fundtrack.derived.trail.funds import SEED_FUNDS

LIST = """{ funds(first: 20) { totalCount nodes { id ref name acronym administrativeAgentRef
  aliases organization { ref isPooledFund } } } }"""
UPSERT = """mutation($i: FundInput!) { upsertFund(input: $i) {
  fund { ref name acronym organization { isPooledFund } } errors { code message } } }"""


def test_seeded_funds_are_listed_and_found_by_id(db_url: str):
    api = Api(db_url)
    data = api.query(LIST)["funds"]
    assert data["totalCount"] == len(SEED_FUNDS)
    by_acronym = {f["acronym"]: f for f in data["nodes"]}
    assert {"PBF", "WPHF", "CERF", "UNDEF"} <= set(by_acronym)
    pbf = by_acronym["PBF"]
    assert pbf["name"] == "UN Peacebuilding Fund"
    assert pbf["administrativeAgentRef"] == [s for s in SEED_FUNDS if s.ref == pbf["ref"]][0].agent_ref
    assert pbf["organization"] == {"ref": pbf["ref"], "isPooledFund": True}
    node = api.query("query($id: ID!) { node(id: $id) { ... on Fund { ref } } }",
                     {"id": pbf["id"]})["node"]
    assert node == {"ref": pbf["ref"]}


def test_only_admins_edit_the_registry(db_url: str):
    api = Api(db_url)
    engine = make_engine(db_url)
    _, reporter = create_token(engine, "reporter", ["GB-GOV-1"])
    _, admin = create_token(engine, "admin")
    engine.dispose()
    fund = {"ref": "FT-FUND-SPOTLIGHT", "name": "Spotlight Initiative Fund",
            "acronym": "SPOTLIGHT"}
    assert "needs an API token" in api.error(UPSERT, {"i": fund})
    assert "needs an admin token" in api.error(UPSERT, {"i": fund}, token=reporter)
    out = api.query(UPSERT, {"i": fund}, token=admin)["upsertFund"]
    assert out["errors"] == []
    assert out["fund"] == {"ref": fund["ref"], "name": fund["name"], "acronym": "SPOTLIGHT",
                           "organization": {"isPooledFund": True}}
    assert api.query(LIST)["funds"]["totalCount"] == len(SEED_FUNDS) + 1
