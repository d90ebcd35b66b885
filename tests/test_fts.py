"""OCHA FTS flow searches: real API pages, checked against a plain-json count of each file."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.plugins import ImportContext, importers
from fundtrack.records import FileRejected, FlowKind, FlowRecord
from tests.conftest import SHARED

FTS_DIR = SHARED / "fts-json"
FLOW_FILES = sorted(FTS_DIR.glob("custom-search-*.json"))
AFG_PAGES = [FTS_DIR / "custom-search-locationid-1-year-2020.json",
             FTS_DIR / "custom-search-locationid-1-year-2020-page-2.json",
             FTS_DIR / "custom-search-locationid-1-year-2020-page-3.json"]
KINDS = {"paid": "DISBURSEMENT", "commitment": "OUTGOING_COMMITMENT", "pledge": "OUTGOING_PLEDGE"}


def expected(paths: list[Path]) -> dict[str, object]:
    """What the ledger must hold, computed from the JSON alone (later pages win on an id)."""
    flows: dict[str, dict] = {}
    for path in paths:
        for f in json.loads(path.read_bytes(), parse_float=Decimal)["data"]["flows"]:
            flows[f["id"]] = f
    groups: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    usd: dict[str, Decimal] = defaultdict(Decimal)
    parents = 0
    earmark = Counter()
    for f in flows.values():
        kind = KINDS[f["status"]]
        if f.get("originalAmount") is not None and f.get("originalCurrency"):
            key, value = (kind, f["originalCurrency"]), Decimal(str(f["originalAmount"]))
        else:
            key, value = (kind, "USD"), Decimal(str(f["amountUSD"]))
        groups[key][0] += 1
        groups[key][1] += value
        usd[kind] += Decimal(str(f["amountUSD"]))
        parents += f.get("parentFlowId") is not None
        earmark[tuple(f.get("grandBargainEarmarkingType") or ())] += 1
    return {"count": len(flows), "groups": {k: tuple(v) for k, v in groups.items()},
            "usd": dict(usd), "parents": parents, "earmark": earmark}


def ledger(engine, batch_id: int | None = None) -> dict[str, object]:
    cond = [m.Flow.superseded_by.is_(None)]
    if batch_id is not None:
        cond.append(m.Flow.batch_id == batch_id)
    with engine.connect() as c:
        rows = c.execute(select(m.Flow.kind, m.Flow.currency, func.count(), money_sum(m.Flow.amount))
                         .where(*cond).group_by(m.Flow.kind, m.Flow.currency)).all()
        usd_rows = c.execute(select(m.Flow.kind, money_sum(m.Flow.amount_usd))
                             .where(*cond).group_by(m.Flow.kind)).all()
        parents = c.execute(select(func.count()).select_from(m.FlowParent).join(
            m.Flow, m.Flow.id == m.FlowParent.flow_id).where(*cond)).scalar_one()
        earmark = Counter(e for (e,) in c.execute(select(m.Flow.earmarking).where(*cond)))
    groups = {(k.name, cur): (n, s) for k, cur, n, s in rows}
    return {"count": sum(n for n, _ in groups.values()), "groups": groups,
            "usd": {k.name: s for k, s in usd_rows}, "parents": parents, "earmark": earmark}


EARMARK_LEVEL = {(): None, ("unearmarked",): 1, ("softly earmarked",): 2, ("earmarked",): 3,
                 ("tightly earmarked",): 4}


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_flow_page_matches_plain_json(engine, path: Path):
    result = import_file(engine, path)
    assert result.status == "applied", result.summary()
    assert result.importer == "fts"
    want = expected([path])
    got = ledger(engine, result.batch_id)
    assert result.counts["flows"] == want["count"] == got["count"]
    assert got["groups"] == want["groups"]
    assert got["usd"] == want["usd"]
    assert got["parents"] == want["parents"]
    want_earmark = Counter()
    for types, n in want["earmark"].items():
        want_earmark[EARMARK_LEVEL[types]] += n
    assert got["earmark"] == want_earmark
    for _, total in got["groups"].values():
        assert isinstance(total, Decimal)


def test_afghanistan_pages_together_and_twice_change_nothing(engine):
    want = expected(AFG_PAGES)
    assert want["count"] == 484  # meta.count of the search
    for path in AFG_PAGES:
        assert import_file(engine, path).status == "applied"
    first = ledger(engine)
    assert first["count"] == 484
    assert first["groups"] == want["groups"]
    assert first["usd"] == want["usd"]
    for path in AFG_PAGES:
        again = import_file(engine, path)
        assert again.status == "unchanged", again.summary()
    assert ledger(engine) == first
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 3


def test_overlapping_download_replaces_not_duplicates(engine, tmp_path):
    """The same page saved again (other bytes, same flows) replaces the earlier flows."""
    page3 = AFG_PAGES[2]
    for path in AFG_PAGES:
        import_file(engine, path)
    before = ledger(engine)
    copy = tmp_path / "page3-again.json"
    copy.write_text(json.dumps(json.loads(page3.read_text()), indent=1))
    result = import_file(engine, copy)
    assert result.status == "applied", result.summary()
    assert result.counts["replaced_flows"] == 84
    assert ledger(engine) == before


def test_flow_fields_are_mapped(engine):
    path = FTS_DIR / "custom-search-locationid-114-year-2020.json"
    result = import_file(engine, path)
    with engine.connect() as c:
        flow = m.Flow.__table__
        row = c.execute(select(flow).where(flow.c.batch_id == result.batch_id,
                                           flow.c.external_id == "156789")).one()
        swiss = c.execute(select(flow).where(flow.c.batch_id == result.batch_id,
                                             flow.c.external_id == "179607")).one()
        links = c.execute(select(m.FlowParent.parent_external_id).join(
            m.Flow, m.Flow.id == m.FlowParent.flow_id).where(
            m.Flow.batch_id == result.batch_id)).scalars().all()
        jordan = c.execute(select(func.count()).select_from(m.Flow).where(
            m.Flow.batch_id == result.batch_id, m.Flow.recipient_country == "JO")).scalar_one()
    assert row.kind is FlowKind.OUTGOING_COMMITMENT
    assert row.extra["flow_type"] == "parked"
    assert row.extra["child_flow_ids"] == "185141,185144,185146"
    assert row.extra["keywords"] == "Humanitarian aid; Multiyear"
    assert row.extra["decision_date"] == "2017-04-05"
    assert row.extra["budget_year"] == "2017"
    assert row.reporting_org_ref == "XM-OCHA-FTS"
    # AUD named but no originalAmount: kept in USD, the currency in extra
    assert (swiss.currency, swiss.amount, swiss.extra["original_currency"]) == (
        "USD", Decimal(750000), "AUD")
    data = json.loads(path.read_bytes())["data"]["flows"]
    assert len(links) == sum(1 for f in data if f["parentFlowId"] is not None)
    single_jordan = sum(1 for f in data if [o["name"] for o in f["destinationObjects"]
                                            if o["type"] == "Location"] == ["Jordan"])
    assert jordan == single_jordan > 0


def test_original_currency_and_rate_kept_exactly():
    path = FTS_DIR / "custom-search-locationid-1-year-2020.json"
    fts = importers()["fts"]
    with path.open("rb") as fh:
        flows = {r.external_id: r for r in fts.parse(fh, ImportContext(path.name))
                 if isinstance(r, FlowRecord)}
    f = flows["158080"]  # CHF 119,700 at 1.007 CHF/USD = USD 118,868
    assert (f.kind, f.amount, f.currency, f.usd_amount) == (
        FlowKind.OUTGOING_COMMITMENT, Decimal(119700), "CHF", Decimal(118868))
    assert f.usd_rate == Decimal("0.9930492899")
    assert f.extra["fts_exchange_rate"] == "1.007"
    assert f.provider.ref == "FTS-ORG-2924" and f.provider.name == "Switzerland, Government of"
    assert f.receiver.name == "World Food Programme"
    assert f.recipient_country == "AF"
    assert f.extra["source_locations"] == "217:Switzerland"
    assert f.extra["destination_globalcluster"] == "26480:Coordination and support services"
    assert f.location == "data.flows[0] (id 158080)"


def test_truncated_json_is_rejected_with_location_and_writes_nothing(engine, tmp_path):
    data = AFG_PAGES[2].read_bytes()
    cut = tmp_path / "custom-search-truncated.json"
    cut.write_bytes(data[: len(data) // 2])
    result = import_file(engine, cut)
    assert result.status == "rejected"
    assert "malformed JSON" in result.message
    assert result.issues[0].location.startswith("line 1, column ")
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Flow)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 0


@pytest.mark.parametrize("name, says", [
    ("1-fts-flow-custom-search-planid-832-groupby-cluster.json", "groupby"),
    ("1-fts-flow-custom-search-planid-832-groupby-globalcluster.json", "groupby"),
    ("2-fts-flow-plan-overview-progress-2020.json", "plan overview"),
])
def test_non_flow_fts_responses_are_refused_clearly(engine, name, says):
    result = import_file(engine, FTS_DIR / name)
    assert result.status == "rejected"
    assert result.importer == "fts"
    assert says in result.message
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Flow)).scalar_one() == 0


def test_location_list_is_not_claimed_and_refused_if_forced(engine):
    path = FTS_DIR / "1-public-location.json"
    fts = importers()["fts"]
    assert fts.sniff(path.read_bytes(), path.name) is None
    result = import_file(engine, path, fmt="fts")
    assert result.status == "rejected" and "list response" in result.message


def test_empty_flow_search_says_so(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text('{"status": "ok", "data": {"flows": []}, "meta": {"count": 0}}')
    with path.open("rb") as fh, pytest.raises(FileRejected, match="holds no flows"):
        list(importers()["fts"].parse(fh, ImportContext(path.name)))


def test_sniff_leaves_other_formats_alone():
    fts = importers()["fts"]
    others = [*sorted((SHARED / "360giving").rglob("*.json")),
              *sorted((SHARED / "iati-activity").glob("*.xml"))[:3],
              *sorted((SHARED / "360giving").rglob("*.xlsx")),
              SHARED / "fts-json/hdx-derived-csv/fts_incoming_funding_afg.csv"]
    for path in others:
        with path.open("rb") as fh:
            assert fts.sniff(fh.read(64 * 1024), path.name) is None, path
    for path in FLOW_FILES:
        assert fts.sniff(path.read_bytes()[: 64 * 1024], path.name) == 0.95


def test_parse_is_deterministic():
    fts = importers()["fts"]
    path = AFG_PAGES[0]
    runs = []
    for _ in range(2):
        with path.open("rb") as fh:
            runs.append([repr(r) for r in fts.parse(fh, ImportContext(path.name))])
    assert runs[0] == runs[1]
