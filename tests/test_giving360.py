"""360Giving JSON and XLSX: every shared file imports and matches an independent count."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from fundtrack.ingest.pipeline import choose_importer, import_file
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.plugins import SNIFF_BYTES, importers
from fundtrack.records import FlowKind
from fundtrack.testing import check_importer
from importers.giving360 import GIVING360
from tests.conftest import SHARED, shared_file

JSON_FILES = sorted((SHARED / "360giving").rglob("*.json"))
XLSX = "360giving/dataquality-original/a003W000001B7PzQAK.xlsx"
XLSX_JSON = "360giving/dataquality-json/a003W000001B7PzQAK.json"


def expected_from_json(path: Path) -> tuple[int, Decimal, set[str]]:
    """Plain json, independent of the importer: grants, total amountAwarded, funders."""
    grants = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)["grants"]
    total = sum((Decimal(g["amountAwarded"]) for g in grants), Decimal(0))
    funders = {g["fundingOrganization"][0]["id"] for g in grants}
    return len(grants), total, funders


def current_flows(engine, batch_id: int | None = None):
    q = select(func.count(), money_sum(m.Flow.amount)).where(m.Flow.superseded_by.is_(None))
    if batch_id is not None:
        q = select(func.count(), money_sum(m.Flow.amount)).where(m.Flow.batch_id == batch_id)
    with engine.connect() as c:
        n, total = c.execute(q).one()
    return n, total


def test_shared_files_are_there():
    assert len(JSON_FILES) >= 4


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_json_matches_independent_count(engine, path: Path):
    result = import_file(engine, path)
    assert result.status == "applied", result.summary()
    assert result.importer == "giving360"  # sniffed, no --format
    n, total, funders = expected_from_json(path)
    assert result.counts["flows"] == n
    assert current_flows(engine, result.batch_id) == (n, total)
    with engine.connect() as c:
        kinds = set(c.execute(select(m.Flow.kind).distinct()).scalars())
        refs = set(c.execute(select(m.Flow.reporting_org_ref).distinct()).scalars())
        ext = c.execute(select(func.count(func.distinct(m.Flow.external_id)))).scalar_one()
    assert kinds == {FlowKind.OUTGOING_COMMITMENT}
    assert refs == funders
    assert ext == n
    assert not [i for i in result.issues if i.severity.value == "error"]


def test_alwf_json_exact_values(engine):
    """The Andrew Lloyd Webber Foundation file: 475 grants, GBP, float artefacts kept exact."""
    result = import_file(engine, shared_file(XLSX_JSON))
    assert current_flows(engine) == (475, Decimal("21757793.270000000009"))
    with engine.connect() as c:
        row = c.execute(select(m.Flow.__table__).where(m.Flow.external_id == "360G-ALWF-1978")).one()
    assert (row.amount, row.currency, str(row.value_date)) == (Decimal(15000), "GBP", "2020-11-03")
    assert (row.provider_ref, row.receiver_ref) == ("GB-CHC-1015648", "GB-EDU-133843")
    assert row.receiver_name == "Royal Northern College of Music"
    assert row.recipient_country == "GB"
    assert row.amount_usd is not None  # GBP converted at the award date
    assert result.counts["flows_without_usd"] == 0


def test_xlsx_matches_openpyxl_and_its_json_conversion(engine):
    path = shared_file(XLSX)
    wb = openpyxl.load_workbook(path, read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    wb.close()
    col = rows[0].index("Amount Awarded")
    expected = sum((Decimal(repr(r[col])) if isinstance(r[col], float) else Decimal(r[col])
                    for r in rows[1:] if r[0]), Decimal(0))
    result = import_file(engine, path)
    assert result.status == "applied", result.summary()
    assert result.importer == "giving360"
    assert current_flows(engine, result.batch_id) == (len(rows) - 1, expected)
    n, total, _ = expected_from_json(shared_file(XLSX_JSON))
    assert (len(rows) - 1, expected) == (n, total)  # the XLSX and its JSON conversion agree


def test_xlsx_then_json_replaces_not_duplicates(engine):
    first = import_file(engine, shared_file(XLSX))
    again = import_file(engine, shared_file(XLSX))
    assert again.status == "unchanged"
    second = import_file(engine, shared_file(XLSX_JSON))
    assert second.status == "applied"
    assert second.counts["replaced_flows"] == 475
    n, total, _ = expected_from_json(shared_file(XLSX_JSON))
    assert current_flows(engine) == (n, total)
    with engine.connect() as c:
        by_batch = dict(c.execute(select(m.Flow.batch_id, func.count()).where(
            m.Flow.superseded_by.is_(None)).group_by(m.Flow.batch_id)).all())
    assert by_batch == {second.batch_id: 475}
    assert first.batch_id != second.batch_id


def test_sniffing_picks_giving360_for_every_360giving_file():
    registry = importers()
    for path in [*JSON_FILES, shared_file(XLSX)]:
        head = path.read_bytes()[:SNIFF_BYTES]
        assert choose_importer(head, path.name, None, registry).name == "giving360", path


def test_non_iso_dates_read_and_reported_once(engine):
    result = import_file(engine, shared_file("360giving/grantnav-sample_data-2016/baring.json"))
    notes = [i for i in result.issues if i.code == "non-iso-date"]
    assert len(notes) == 1 and "53 grant(s)" in notes[0].message
    with engine.connect() as c:
        d = c.execute(select(m.Flow.value_date).where(
            m.Flow.external_id == "360G-baringfoundation-20130071")).scalar_one()
    assert str(d) == "2014-03-17"  # "17/03/2014", day/month/year


def test_malformed_grants_give_located_issues(engine, tmp_path):
    doc = {"grants": [
        {"id": "360G-T-1", "currency": "GBP", "amountAwarded": 100, "awardDate": "2020-01-02",
         "fundingOrganization": [{"id": "GB-CHC-1", "name": "F"}],
         "recipientOrganization": [{"id": "GB-CHC-2", "name": "R"}]},
        {"id": "360G-T-2", "currency": "GBP", "amountAwarded": "lots",
         "fundingOrganization": [{"id": "GB-CHC-1"}]},
        {"id": "360G-T-3", "currency": "GBP", "amountAwarded": 5},
        {"id": "360G-T-1", "currency": "GBP", "amountAwarded": 7,
         "fundingOrganization": [{"id": "GB-CHC-1"}]},
    ]}
    path = tmp_path / "grants.json"
    path.write_text(json.dumps(doc))
    result = import_file(engine, path)
    assert result.status == "applied"
    errors = {(i.location, i.code) for i in result.issues if i.severity.value == "error"}
    assert ("grants[1] (360G-T-2)", "bad-amount") in errors
    assert ("grants[2] (360G-T-3)", "no-funder") in errors
    assert ("grants[3] (360G-T-1)", "duplicate-grant") in errors
    assert current_flows(engine) == (1, Decimal(100))


def test_broken_json_is_rejected_and_writes_nothing(engine, tmp_path):
    data = shared_file(XLSX_JSON).read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(data[: len(data) // 2])
    result = import_file(engine, path, fmt="giving360")
    assert result.status == "rejected"
    assert "malformed JSON" in result.message and "line" in result.issues[-1].location
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Flow)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 0


def test_importer_contract_on_json_samples():
    foreign = [shared_file("iati-activity/wri-521257057-strategic-plan-2023-2027.xml"),
               shared_file("fts-json/custom-search-locationid-1-year-2020-page-3.json"),
               Path(__file__).parent / "fixtures/spreadsheet/mptf_pbf_gateway.xlsx"]
    report = check_importer(GIVING360, JSON_FILES, foreign)
    assert report.records == 475 + 53 + 270 + 379
