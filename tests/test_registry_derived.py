"""Registry edits refresh what they change: attribution reads pooled-fund status (issue 12).

``upsertFund`` and ``upsertOrganization`` are ledger writers: they take the ledger lock and
rebuild the derived steps that read the registry, so the answer right after the edit is the
one a full ``recompute`` gives.
"""

from __future__ import annotations

from sqlalchemy import select

from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from fundtrack.derived import steps as derived
from fundtrack.derived.trail.tables import TrailLink
from fundtrack.ingest.pipeline import import_file
from tests import trail_scenario
from tests.test_trail_scenario import snapshot

UPSERT_FUND = """mutation($i: FundInput!) { upsertFund(input: $i) { errors { code } } }"""
UPSERT_ORG = """mutation($i: OrganizationInput!) { upsertOrganization(input: $i) {
  created errors { code } } }"""
FUND = "XX-FUND"


def _state(engine):
    t = TrailLink.__table__
    with engine.connect() as c:
        links = sorted(tuple(map(str, r)) for r in c.execute(
            select(*[col for col in t.c if col.name != "id"])).all())
    return snapshot(engine), links


def _recomputed(engine):
    with engine.begin() as c:
        derived.rebuild(c)
    return _state(engine)


def _scenario(engine, tmp_path):
    paths = trail_scenario.write(tmp_path)
    for name in ("fund.xml", "agency1.xml", "agency2.xml"):  # the donors never report
        assert import_file(engine, paths[name]).status == "applied"


def test_upsert_fund_changes_the_attribution_at_once_as_a_recompute_would(
        db_url, engine, tmp_path):
    _scenario(engine, tmp_path)
    before = _state(engine)
    _, admin = create_token(engine, "admin")
    out = Api(db_url).query(UPSERT_FUND, {"i": {"ref": FUND, "name": "Fund"}}, token=admin)
    assert out["upsertFund"]["errors"] == []
    after = _state(engine)
    assert after != before  # the fund's money is now "no incoming" at a pooled fund, linked
    assert after == _recomputed(engine)


def test_upsert_organization_pooled_flag_as_a_recompute_would(db_url, engine, tmp_path):
    _scenario(engine, tmp_path)
    _, admin = create_token(engine, "admin")
    api = Api(db_url)
    before = _state(engine)
    out = api.query(UPSERT_ORG, {"i": {"ref": FUND, "isPooledFund": True}}, token=admin)
    assert out["upsertOrganization"]["errors"] == []
    marked = _state(engine)
    assert marked != before
    assert marked == _recomputed(engine)
    api.query(UPSERT_ORG, {"i": {"ref": FUND, "isPooledFund": False}}, token=admin)
    assert _state(engine) == before == _recomputed(engine)
