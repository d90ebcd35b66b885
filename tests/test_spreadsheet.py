"""Spreadsheets through TOML mappings: the shipped MPTF and UN cost-category mappings on
fixture workbooks and CSVs, checked against sums computed here with openpyxl and csv."""

from __future__ import annotations

import csv
import io
import re
import shutil
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from fundtrack.ingest.pipeline import choose_importer, import_file
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.plugins import SNIFF_BYTES, ImportContext, importers
from fundtrack.records import FileRejected, FlowKind
from importers.spreadsheet import FIELDS, SHIPPED, SPREADSHEET, load_mapping, shipped_mappings
from tests.conftest import shared_file
from tests.mappings_example import docs_mapping, ministry_sheet

FIX = Path(__file__).parent / "fixtures" / "spreadsheet"
MPTF = FIX / "mptf_pbf_gateway.xlsx"
MPTF_MAP = SHIPPED / "mptf-pooled-fund.toml"
UNCC = FIX / "un_cost_categories.xlsx"
TOTAL = re.compile(r"(?i)^\s*(grand\s+|sub-?)?total")


def dec(v) -> Decimal:
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)


def sheet_sum(path: Path, sheet: str, label: str, amount: str) -> tuple[int, Decimal]:
    """Rows and total of a column under its header, skipping Total rows: plain openpyxl."""
    wb = openpyxl.load_workbook(path, read_only=True)
    rows = list(wb[sheet].iter_rows(values_only=True))
    wb.close()
    h = next(i for i, r in enumerate(rows) if amount in r)
    li, ai = rows[h].index(label), rows[h].index(amount)
    data = [r for r in rows[h + 1:] if r[ai] is not None and not TOTAL.match(str(r[li] or ""))]
    return len(data), sum((dec(r[ai]) for r in data), Decimal(0))


def by_kind(engine) -> dict[str, tuple[int, Decimal]]:
    with engine.connect() as c:
        rows = c.execute(select(m.Flow.kind, func.count(), money_sum(m.Flow.amount))
                         .where(m.Flow.superseded_by.is_(None)).group_by(m.Flow.kind)).all()
    return {k.name: (n, s) for k, n, s in rows}


def test_mptf_workbook_sniffed_and_matches_openpyxl(engine):
    result = import_file(engine, MPTF)  # no --mapping: the shipped mapping matches
    assert result.status == "applied", result.summary()
    assert result.importer == "spreadsheet"
    assert by_kind(engine) == {
        "INCOMING_FUNDS": sheet_sum(MPTF, "Contributions", "Contributor/Depositor", "Deposit amount"),
        "DISBURSEMENT": sheet_sum(MPTF, "Transfers", "Participating Organization", "Transfers"),
        "EXPENDITURE": sheet_sum(MPTF, "Expenditure", "Participating Organization", "Expenditure"),
    }
    assert by_kind(engine)["INCOMING_FUNDS"] == (9, Decimal("107529917.95"))
    assert not result.issues  # formula Total rows are skipped by the mapping, not reported
    with engine.connect() as c:
        row = c.execute(select(m.Flow.__table__).where(
            m.Flow.kind == FlowKind.DISBURSEMENT, m.Flow.receiver_name == "UN Women")).one()
    assert (row.provider_ref, row.receiver_ref) == ("MPTFO-Peacebuilding-Fund", "XM-DAC-41146")
    assert row.reporting_org_ref == "MPTFO-Peacebuilding-Fund"
    assert row.source_location == 'sheet "Transfers", row 5'
    assert row.extra["project_id"] == "00119532"


def test_explicit_mapping_gives_the_same(engine):
    result = import_file(engine, MPTF, fmt="spreadsheet", options={"mapping": str(MPTF_MAP)})
    assert result.status == "applied"
    assert result.counts["flows"] == 18


def test_cp1252_csv_with_stated_encoding(engine):
    path = FIX / "mptf_contributions_cp1252.csv"
    text = path.read_bytes().decode("cp1252")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))[1:]
    expected = (len(rows), sum((Decimal(r[3].replace(",", "")) for r in rows), Decimal(0)))
    result = import_file(engine, path, options={"encoding": "cp1252"})
    assert result.status == "applied", result.summary()
    assert by_kind(engine) == {"INCOMING_FUNDS": expected}
    with engine.connect() as c:
        names = set(c.execute(select(m.Flow.provider_name)).scalars())
    assert "Türkiye" in names
    assert not [i for i in result.issues if i.code == "encoding-detected"]


def test_csv_encoding_detected_when_not_stated(engine):
    result = import_file(engine, FIX / "mptf_contributions_cp1252.csv")
    assert result.status == "applied"
    note = next(i for i in result.issues if i.code == "encoding-detected")
    assert "encoding" in note.message and "[source]" in note.message


def test_cost_categories_xlsx_and_csv_agree(engine):
    n, total = sheet_sum(UNCC, "Expenditure by category", "Cost Category", "Expenditure")
    result = import_file(engine, UNCC)
    assert result.status == "applied", result.summary()
    assert by_kind(engine) == {"EXPENDITURE": (n, total)} == {"EXPENDITURE": (24, total)}
    with engine.connect() as c:
        extras = [e for (e,) in c.execute(select(m.Flow.extra))]
    cats: dict[str, Decimal] = {}
    assert {e["cost_category"] for e in extras} == {
        "staff", "supplies", "equipment", "contractual", "travel", "transfers",
        "general_operating", "indirect_support"}
    with engine.connect() as c:
        for extra, amount in c.execute(select(m.Flow.extra, m.Flow.amount)):
            cats[extra["cost_category"]] = cats.get(extra["cost_category"], Decimal(0)) + amount
    assert cats["staff"] == Decimal("485500")
    assert cats["indirect_support"] == Decimal("82955.30")

    other = import_file(engine, FIX / "un_cost_categories.csv")
    assert other.status == "applied", other.summary()
    with engine.connect() as c:
        csv_total = c.execute(select(money_sum(m.Flow.amount)).where(
            m.Flow.batch_id == other.batch_id)).scalar_one()
    assert csv_total == total


def test_bad_rows_are_located_and_skipped(engine):
    result = import_file(engine, FIX / "un_cost_categories_errors.xlsx")
    assert result.status == "applied"
    errors = sorted((i.location, i.code) for i in result.issues if i.severity.value == "error")
    sheet = 'sheet "Expenditure by category"'
    assert errors == [
        (f'{sheet}, row 3, column "Expenditure"', "bad-cell"),
        (f'{sheet}, row 4, column "Expenditure"', "bad-cell"),
        (f'{sheet}, row 5, column "Cost Category"', "bad-cell"),
        (f'{sheet}, row 6, column "Recipient Organization"', "bad-cell"),
    ]
    formula = next(i for i in result.issues if "row 4" in i.location)
    assert "=F2*2" in formula.message and "not evaluated" in formula.message
    assert by_kind(engine) == {"EXPENDITURE": (2, Decimal("1250.5"))}


def test_strict_import_of_bad_rows_writes_nothing(engine):
    result = import_file(engine, FIX / "un_cost_categories_errors.xlsx", strict=True)
    assert result.status == "rejected"
    assert 'row 3, column "Expenditure"' in result.message
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Flow)).scalar_one() == 0


def test_corrected_reupload_replaces_rows(engine, tmp_path):
    first = import_file(engine, MPTF)
    same = import_file(engine, MPTF)
    assert same.status == "unchanged"
    corrected = tmp_path / "corrected.xlsx"
    shutil.copy(MPTF, corrected)
    wb = openpyxl.load_workbook(corrected)
    wb["Contributions"]["D5"] = 40_000_000  # Germany 2020 corrected
    wb.save(corrected)
    second = import_file(engine, corrected)
    assert second.status == "applied"
    assert second.counts["replaced_flows"] == 18
    kinds = by_kind(engine)
    assert kinds["INCOMING_FUNDS"] == (9, Decimal("107529917.95") - 39_375_000 + 40_000_000)
    assert sum(n for n, _ in kinds.values()) == 18
    assert first.batch_id != second.batch_id


def test_mapping_that_does_not_fit_rejects_and_writes_nothing(engine, tmp_path):
    mapping = tmp_path / "mine.toml"
    mapping.write_text("""
[mapping]
name = "mine"
[[sheet]]
name = "Contributions"
[sheet.fields]
kind = { value = "incoming funds" }
amount = "Amount (EUR)"
currency = { value = "EUR" }
reporting_org_ref = { value = "XM-DAC-7" }
""")
    result = import_file(engine, MPTF, options={"mapping": str(mapping)}, fmt="spreadsheet")
    assert result.status == "rejected"
    assert "'Amount (EUR)'" in result.message
    assert result.issues[-1].location.startswith('sheet "Contributions"')
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 0


@pytest.mark.parametrize(("text", "needle"), [
    ('[mapping]\nname="x"\n[[sheet]]\n[sheet.fields]\nkind={value="EXPENDITURE"}\namont="A"\n'
     'amount="A"\nreporting_org_ref={value="X"}\n', "did you mean 'amount'"),
    ('[[sheet]]\n[sheet.fields]\nkind={value="EXPENDITURE"}\nreporting_org_ref={value="X"}\n',
     "field 'amount' is required"),
    ('[[sheet]]\n[sheet.fields]\nkind={value="SPENDING"}\namount="A"\nreporting_org_ref="R"\n',
     "unknown flow kind"),
    ('[[sheet]\n', "not valid TOML"),
])
def test_mapping_mistakes_are_explained(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(FileRejected) as exc:
        load_mapping(path)
    assert needle in exc.value.message
    assert exc.value.location.startswith("mapping bad.toml")


def test_sniffing_is_conservative():
    registry = importers()
    for path in (MPTF, UNCC, FIX / "un_cost_categories.csv"):
        assert choose_importer(path.read_bytes()[:SNIFF_BYTES], path.name, None,
                               registry).name == "spreadsheet"
    alwf = shared_file("360giving/dataquality-original/a003W000001B7PzQAK.xlsx")
    assert SPREADSHEET.sniff(alwf.read_bytes()[:SNIFF_BYTES], alwf.name) is None
    other = [shared_file("fts-json/hdx-derived-csv/fts_incoming_funding_afg.csv"),
             shared_file("360giving/grantnav-sample_data-2016/baring.json"),
             shared_file("iati-activity/wri-521257057-strategic-plan-2023-2027.xml")]
    for path in other:
        assert SPREADSHEET.sniff(path.read_bytes()[:SNIFF_BYTES], path.name) is None, path


def test_unmatched_sheet_without_mapping_names_the_option():
    path = shared_file("fts-json/hdx-derived-csv/fts_incoming_funding_afg.csv")
    with path.open("rb") as fh, pytest.raises(FileRejected) as exc:
        list(SPREADSHEET.parse(fh, ImportContext(filename=path.name)))
    assert "--mapping" in exc.value.message and "upload page" in exc.value.message


def test_shipped_mappings_load_and_docs_cover_every_field():
    assert {mp.name for mp in shipped_mappings()} == {"mptf-pooled-fund", "un-cost-categories"}
    doc = (Path(__file__).resolve().parents[1] / "docs" / "mappings.md").read_text(encoding="utf-8")
    missing = [f for f in FIELDS if f"`{f}`" not in doc]
    assert not missing, f"docs/mappings.md does not document {missing}"


def test_the_worked_example_in_the_docs_runs(engine, tmp_path):
    """The complete mapping in docs/mappings.md imports the sheet it describes."""
    mapping = tmp_path / "ministry-grants.toml"
    mapping.write_text(docs_mapping(), encoding="utf-8")
    sheet = ministry_sheet(tmp_path / "grants.xlsx")
    result = import_file(engine, sheet, options={"mapping": str(mapping)}, fmt="spreadsheet")
    assert result.status == "applied", result.summary()
    assert not result.issues
    assert by_kind(engine) == {"DISBURSEMENT": (2, Decimal("370000.00"))}
    with engine.connect() as c:
        row = c.execute(select(m.Flow.__table__).where(m.Flow.receiver_name == "UN Women")).one()
    assert (row.receiver_ref, row.recipient_country, str(row.value_date), row.external_id) == (
        "XM-DAC-41146", "ML", "2024-04-03", "MFA-grants|G-2024-002")
