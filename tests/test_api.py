"""The GraphQL API through the real ASGI app, on the shared IATI files (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from sqlalchemy import select

from fundtrack.api.testing import Api
from fundtrack.ledger import tables as m


@pytest.fixture(scope="module")
def api(loaded_url: str) -> Api:
    return Api(loaded_url)


@pytest.fixture(scope="module")
def flow_rows(loaded_engine):
    """Current flows read straight from the tables, to check the API against."""
    with loaded_engine.connect() as c:
        return list(c.execute(select(m.Flow.__table__).where(
            m.Flow.superseded_by.is_(None))).mappings())


def test_counts_and_aggregate_by_kind_and_currency(api: Api, loaded_engine, flow_rows) -> None:
    data = api.query("""{ activities { totalCount } flows { totalCount }
        organizations { totalCount }
        flowsAggregate(groupBy: [KIND, CURRENCY]) { groups { kind currency count sum } } }""")
    with loaded_engine.connect() as c:
        n_act = len(c.execute(select(m.Activity.id).where(
            m.Activity.superseded_by.is_(None))).all())
        n_org = len(c.execute(select(m.Organisation.id)).all())
    assert data["activities"]["totalCount"] == n_act > 2000
    assert data["flows"]["totalCount"] == len(flow_rows) > 10000
    assert data["organizations"]["totalCount"] == n_org

    expect_count: Counter[tuple[str, str | None]] = Counter()
    expect_sum: dict[tuple[str, str | None], Decimal] = defaultdict(Decimal)
    for r in flow_rows:
        key = (r["kind"].name, r["currency"])
        expect_count[key] += 1
        expect_sum[key] += r["amount"]
    groups = data["flowsAggregate"]["groups"]
    got = {(g["kind"], g["currency"]): g for g in groups}
    assert len(groups) == len(got) == len(expect_count)
    for key, n in expect_count.items():
        assert got[key]["count"] == n
        assert Decimal(got[key]["sum"]) == expect_sum[key]
        assert "E" not in got[key]["sum"]  # fixed point, never exponent notation
    # a known exact total from the shared files, to the last digit
    usd_disb = got[("DISBURSEMENT", "USD")]
    assert usd_disb["sum"] == format(expect_sum[("DISBURSEMENT", "USD")], "f")


@pytest.fixture(scope="module")
def side(loaded_engine):
    """Activity sectors and gender scores (DAC, else IOM's or ADB's own marker), read
    straight from the tables."""
    t = m.Base.metadata.tables
    with loaded_engine.connect() as c:
        sectors: dict[int, set[str]] = defaultdict(set)
        for aid, code in c.execute(select(t["activity_sector"].c.activity_id,
                                          t["activity_sector"].c.code)):
            sectors[aid].add(code)
        gender: dict[int, int] = {}
        pm = t["policy_marker"].c
        for aid, sig in c.execute(select(pm.activity_id, pm.significance).where(
                pm.vocabulary == "1", pm.code == "1")):
            if sig in ("0", "1", "2"):
                gender[aid] = max(gender.get(aid, -1), int(sig))
        # no DAC score: the publisher's own marker (vocabulary 99 named by its URI, the code
        # is the score), on the DAC scale as docs/accounting.md maps it
        own = {"https://data.iom.int/codelist/genderpolicy.pdf":
               {"0": 0, "1": 0, "2A": 1, "2B": 2},
               "https://www.adb.org/sites/default/files/institutional-document/42823/"
               "project-classification-system-final-report_0.pdf":
               {"Gender equity theme (GEN)": 2, "Effective gender mainstreaming (EGM)": 1,
                "Some gender elements (SGE)": 0, "No gender elements (NGE)": 0}}
        for aid, uri, code in c.execute(select(pm.activity_id, pm.vocabulary_uri, pm.code)
                                        .where(pm.vocabulary == "99")):
            if aid not in gender and code in own.get(uri, {}):
                gender[aid] = own[uri][code]
    return sectors, gender


def _all_ids(api: Api, where: dict, forward: bool, page: int) -> list[str]:
    """Walk a filtered flow list page by page (forwards or backwards); return ids in order."""
    q = """query($w: FlowWhere, $first: Int, $after: String, $last: Int, $before: String) {
      flows(where: $w, first: $first, after: $after, last: $last, before: $before) {
        totalCount edges { cursor node { id } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""
    ids: list[str] = []
    cursor = None
    while True:
        v = {"w": where, "first": page, "after": cursor} if forward else \
            {"w": where, "last": page, "before": cursor}
        conn = api.query(q, v)["flows"]
        batch = [e["node"]["id"] for e in conn["edges"]]
        assert len(batch) <= page
        if forward:
            ids.extend(batch)
            if not conn["pageInfo"]["hasNextPage"]:
                break
            cursor = conn["pageInfo"]["endCursor"]
        else:
            ids[:0] = batch
            if not conn["pageInfo"]["hasPreviousPage"]:
                break
            cursor = conn["pageInfo"]["startCursor"]
    return ids


def test_paging_forwards_and_backwards_returns_every_item_once(api: Api, flow_rows) -> None:
    where = {"currency": {"_eq": "EUR"}}
    expected = sorted(r["id"] for r in flow_rows if r["currency"] == "EUR")
    assert len(expected) > 400
    fwd = _all_ids(api, where, True, 97)
    back = _all_ids(api, where, False, 97)
    assert len(fwd) == len(set(fwd)) == len(expected)
    assert fwd == back
    got = api.query("query($ids: [ID!]!) { nodes(ids: $ids) { ... on Flow { id amount } } }",
                    {"ids": fwd[:3]})["nodes"]
    assert [n["id"] for n in got] == fwd[:3]
    by_id = {r["id"]: r for r in flow_rows}
    one = api.query("query($id: ID!) { node(id: $id) { id ... on Flow { amount currency } } }",
                    {"id": fwd[0]})["node"]
    assert one["currency"] == "EUR"
    assert Decimal(one["amount"]) == by_id[expected[0]]["amount"]


def test_page_size_cap_is_a_clear_error(api: Api) -> None:
    msg = api.error("{ flows(first: 501) { totalCount } }")
    assert "501" in msg and "maximum page size of 500" in msg
    assert len(api.query("{ flows { nodes { id } } }")["flows"]["nodes"]) == 50
    assert len(api.query("{ flows(first: 500) { nodes { id } } }")["flows"]["nodes"]) == 500


def test_filters_through_relations_match_independent_computation(
        api: Api, flow_rows, side, loaded_engine) -> None:
    sectors, gender = side
    q = """query($w: FlowWhere) { flows(where: $w) { totalCount }
              flowsAggregate(where: $w, groupBy: [CURRENCY]) { count groups { currency sum } } }"""

    def check(where: dict, pred) -> int:
        rows = [r for r in flow_rows if pred(r)]
        data = api.query(q, {"w": where})
        assert data["flows"]["totalCount"] == len(rows), where
        assert data["flowsAggregate"]["count"] == len(rows)
        sums: dict[str | None, Decimal] = defaultdict(Decimal)
        for r in rows:
            sums[r["currency"]] += r["amount"]
        assert {g["currency"]: Decimal(g["sum"]) for g in data["flowsAggregate"]["groups"]} \
            == dict(sums)
        return len(rows)

    assert check({"providerRef": {"_eq": "XM-DAC-41114"}},
                 lambda r: r["provider_ref"] == "XM-DAC-41114") > 1000
    assert check({"activity": {"sector": {"code": {"_in": ["15170", "15180", "72010"]}}}},
                 lambda r: bool(sectors.get(r["activity_id"], set())
                                & {"15170", "15180", "72010"})) > 100
    assert check({"genderSignificance": {"_gte": 1}},
                 lambda r: gender.get(r["activity_id"], -1) >= 1) > 100
    # ActivityWhere.genderSignificance reads the activity's DAC marker only
    pm = m.Base.metadata.tables["policy_marker"].c
    with loaded_engine.connect() as c:
        dac_principal = set(c.execute(select(pm.activity_id).where(
            pm.vocabulary == "1", pm.code == "1", pm.significance == "2")).scalars())
    assert check({"activity": {"genderSignificance": {"_eq": 2}}},
                 lambda r: r["activity_id"] in dac_principal) > 10
    from datetime import date
    assert check({"valueDate": {"_gte": "2020-01-01", "_lte": "2020-12-31"}},
                 lambda r: r["value_date"] is not None
                 and date(2020, 1, 1) <= r["value_date"] <= date(2020, 12, 31)) > 100
    assert check({"reportingOrgRef": {"_eq": "SE-0"}, "kind": {"_eq": "DISBURSEMENT"}},
                 lambda r: r["reporting_org_ref"] == "SE-0" and r["kind"].name == "DISBURSEMENT"
                 ) > 100
    assert check({"_or": [{"currency": {"_eq": "GBP"}}, {"currency": {"_eq": "CAD"}}],
                  "_not": {"providerRef": {"_is_null": True}}},
                 lambda r: r["currency"] in ("GBP", "CAD") and r["provider_ref"] is not None) > 0
    assert check({"providerName": {"_ilike": "%sweden%"}},
                 lambda r: "sweden" in (r["provider_name"] or "").lower()) >= 0


def test_order_by_amount_and_value_date(api: Api, flow_rows) -> None:
    q = """{ flows(where: {currency: {_eq: "GBP"}}, first: 20,
                   orderBy: [{field: AMOUNT, direction: DESC}]) { nodes { amount } } }"""
    got = [Decimal(n["amount"]) for n in api.query(q)["flows"]["nodes"]]
    want = sorted((r["amount"] for r in flow_rows if r["currency"] == "GBP"), reverse=True)[:20]
    assert got == want


def test_aggregate_by_year_and_country_with_usd(api: Api, flow_rows) -> None:
    data = api.query("""{ flowsAggregate(where: {kind: {_eq: DISBURSEMENT}},
        groupBy: [YEAR, RECIPIENT_COUNTRY]) { groups { year recipientCountry count sumUsd
        countWithoutUsd } } }""")["flowsAggregate"]["groups"]
    total = sum(g["count"] for g in data)
    disb = [r for r in flow_rows if r["kind"].name == "DISBURSEMENT"]
    assert total == len(disb)
    usd = sum((r["amount_usd"] for r in disb if r["amount_usd"] is not None), Decimal(0))
    assert sum((Decimal(g["sumUsd"]) for g in data if g["sumUsd"]), Decimal(0)) == usd
    assert sum(g["countWithoutUsd"] for g in data) == sum(
        1 for r in disb if r["amount_usd"] is None)
    years = {g["year"] for g in data}
    assert 2020 in years


@pytest.fixture(scope="module")
def activity_side(loaded_engine):
    """Per activity: its DAC (vocabulary 1) sector codes and its country codes, from the tables."""
    t = m.Base.metadata.tables
    sectors: dict[int, set[str]] = defaultdict(set)
    with loaded_engine.connect() as c:
        s = t["activity_sector"].c
        for aid, vocab, code in c.execute(select(s.activity_id, s.vocabulary, s.code)):
            if (vocab or "1") == "1":
                sectors[aid].add(code)
    return sectors


def _group_by(api: Api, dim: str, field: str) -> dict:
    groups = api.query(f"{{ flowsAggregate(groupBy: [{dim}, CURRENCY]) {{ groups {{ {field} "
                       "currency count sum } } }")["flowsAggregate"]["groups"]
    out = {(g[field], g["currency"]): (g["count"], Decimal(g["sum"])) for g in groups}
    assert len(out) == len(groups)  # each key once
    return out


def _expected(flow_rows, key) -> dict:  # noqa: ANN001
    counts: Counter = Counter()
    sums: dict = defaultdict(Decimal)
    for r in flow_rows:
        k = (key(r), r["currency"])
        counts[k] += 1
        sums[k] += r["amount"]
    return {k: (n, sums[k]) for k, n in counts.items()}


def _canonical_refs(engine, party: str) -> dict[int, str]:  # noqa: ANN001
    """Flow id -> canonical ref of its ``party`` (provider or receiver), read straight
    from ``flow_party`` and ``canonical_org``; {} for any other column."""
    if party not in ("provider", "receiver"):
        return {}
    from fundtrack.identity.tables import CanonicalOrg, FlowParty

    fp, co = FlowParty.__table__, CanonicalOrg.__table__
    with engine.connect() as c:
        return dict(c.execute(select(fp.c.flow_id, co.c.ref).join(
            co, co.c.id == fp.c[f"{party}_org_id"])).all())


@pytest.mark.parametrize(("dim", "field", "column"), [
    ("PROVIDER", "provider", "provider_ref"),
    ("RECEIVER", "receiver", "receiver_ref"),
    ("EARMARKING", "earmarking", "earmarking"),
])
def test_aggregate_by_flow_column(api: Api, loaded_engine, flow_rows, dim: str, field: str,
                                  column: str) -> None:
    """Providers and receivers group by canonical organisation (issue 15): the key is the
    canonical ref the identity step stored for the flow's party (``flow_party``), else
    what the report said; other columns group by their value."""
    got = _group_by(api, dim, field)
    canonical = _canonical_refs(loaded_engine, column.removesuffix("_ref"))
    want = _expected(flow_rows, lambda r: canonical.get(r["id"], r[column]))
    assert got == want
    assert len({k[0] for k in want}) > 1  # the dimension really splits the data


def test_aggregate_by_sector_uses_flow_sector_else_activity_single_dac_sector(
        api: Api, flow_rows, activity_side) -> None:
    def sector(r) -> str | None:  # noqa: ANN001
        if r["sector_code"] is not None:
            return r["sector_code"]
        codes = activity_side.get(r["activity_id"], set())
        return next(iter(codes)) if len(codes) == 1 else None

    want = _expected(flow_rows, sector)
    assert _group_by(api, "SECTOR", "sector") == want
    assert sum(n for (s, _), (n, _) in want.items() if s is not None) > 1000


def test_aggregate_by_gender_significance(api: Api, flow_rows, side) -> None:
    _, gender = side
    want = _expected(flow_rows, lambda r: gender.get(r["activity_id"]))
    got = _group_by(api, "GENDER_SIGNIFICANCE", "genderSignificance")
    assert got == want
    assert {k[0] for k in want} >= {0, 1, 2, None}
