"""Every record of every file is accounted for: found in the file = imported + skipped.

"Found" is counted here independently of the importers, per format:

- IATI activity XML: ``iati-activity`` elements (activities), ``transaction`` elements
  (flows, ``tests/iati_count.py``), ``budget`` + ``planned-disbursement`` (budgets);
- IATI organisation XML: ``iati-organisation`` (organisations) and their budget lines;
- FTS JSON: the entries of ``data.flows`` (flows);
- 360Giving: the entries of ``grants`` (JSON) or the non-empty rows under the header
  (XLSX) (flows: a grant is one flow);
- CRS: every non-zero amount (commitment, disbursement, received) of every row, counted
  from the shared SQL the CRS fixtures are derived from (flows).

Files that hold no records (codelists, FTS plan summaries, SQL dumps, this README) are
refused as a whole, with a reason; the set of them is fixed below.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from fundtrack.cli import main
from fundtrack.ingest.pipeline import KINDS, import_file
from fundtrack.ledger import tables as m
from tests.conftest import FIXTURES, SHARED
from tests.iati_count import count_iati
from tests.test_crs import expected as crs_expected

ALL = sorted(p for p in SHARED.rglob("*") if p.is_file())
CRS = [FIXTURES / "crs" / "crs_1973_bulk.txt", FIXTURES / "crs" / "crs_1973.csv"]
#: Shared files that are not reports (refused as a whole: nothing to reconcile).
NOT_REPORTS = {
    "SOURCES.md", "fts-json/1-fts-flow-custom-search-planid-832-groupby-cluster.json",
    "fts-json/1-fts-flow-custom-search-planid-832-groupby-globalcluster.json",
    "fts-json/1-public-location.json", "fts-json/2-fts-flow-plan-overview-progress-2020.json",
    "fts-json/hdx-derived-csv/fts_incoming_funding_afg.csv",
    "oecd-dac/devinit-ddw/crs_subset.sql", "oecd-dac/devinit-ddw/table1_subset.sql",
    "oecd-dac/devinit-ddw/table2a_subset.sql",
}


def found_in(path: Path) -> dict[str, int]:
    """Records in ``path``, counted without fundtrack's importers."""
    out = dict.fromkeys(KINDS, 0)
    if path in CRS:
        out["flows"] = sum(n for n, _ in crs_expected().values())
    elif path.suffix == ".xml":
        root = ET.parse(path).getroot()
        if root.tag == "iati-organisations":
            orgs = root.findall("iati-organisation")
            out["organisations"] = len(orgs)
            out["budgets"] = sum(1 for o in orgs for c in o if c.tag in (
                "total-budget", "recipient-org-budget", "recipient-country-budget",
                "recipient-region-budget", "total-expenditure"))
        else:
            out["activities"], out["flows"], _ = count_iati(path)
            out["budgets"] = sum(1 for a in root.iter("iati-activity") for c in a
                                 if c.tag in ("budget", "planned-disbursement"))
    elif path.suffix == ".json":
        data = json.loads(path.read_text())
        out["flows"] = len(data["grants"]) if "grants" in data else len(data["data"]["flows"])
    elif path.suffix == ".xlsx":
        ws = openpyxl.load_workbook(path, read_only=True).worksheets[0]
        rows = [r for r in ws.iter_rows(values_only=True) if any(v not in (None, "") for v in r)]
        out["flows"] = len(rows) - 1
    return out


def _name(p: Path) -> str:
    return str(p.relative_to(SHARED)) if p.is_relative_to(SHARED) else p.name


def test_every_shared_file_is_covered() -> None:
    assert len(ALL) == 83
    codelists = [p for p in ALL if "iati-codelists" in p.parts]
    assert len(codelists) == 25
    assert {_name(p) for p in ALL} >= NOT_REPORTS


@pytest.mark.parametrize("path", [p for p in ALL if "iati-codelists" not in p.parts] + CRS,
                         ids=_name)
def test_found_equals_imported_plus_skipped(engine, path: Path) -> None:
    result = import_file(engine, path)
    if _name(path) in NOT_REPORTS:
        assert result.status == "rejected" and result.message, result.summary()
        assert result.found == {}
        return
    assert result.status == "applied", result.summary()
    found = found_in(path)
    assert result.found == found, result.summary()
    for kind in KINDS:
        assert result.found[kind] == result.imported[kind] + result.skipped[kind]
    with engine.connect() as c:
        row = c.execute(select(m.ImportBatch.__table__).where(
            m.ImportBatch.id == result.batch_id)).mappings().one()
    for kind in KINDS:
        assert (row[f"{kind}_found"], row[f"{kind}_imported"], row[f"{kind}_skipped"]) == \
            (found[kind], result.imported[kind], result.skipped[kind])


def test_codelists_are_refused_as_not_reports(engine) -> None:
    for path in (SHARED / "iati-codelists").rglob("*.xml"):
        out = import_file(engine, path)
        assert out.status == "rejected" and "format not recognised" in out.message


# -- a file with skipped records: CLI, API, page ----------------------------------------

SKIPPY = """<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="1.03">
 <iati-activity default-currency="USD" last-updated-datetime="2013-01-01T00:00:00">
  <iati-identifier>XX-SKIP-1</iati-identifier>
  <reporting-org ref="XX-SKIP" type="Multilateral">Skip test</reporting-org>
  <transaction><transaction-type code="D"/><value value-date="2013-01-01">100</value></transaction>
  <transaction><transaction-type code="D"/><value value-date="2013-01-01">1,0,0</value></transaction>
  <transaction><transaction-type code="ZZ"/><value value-date="2013-01-01">5</value></transaction>
  <budget><period-start iso-date="2013-01-01"/><period-end iso-date="2013-12-31"/></budget>
 </iati-activity>
 <iati-activity default-currency="USD">
  <reporting-org ref="XX-SKIP" type="10">Skip test</reporting-org>
  <transaction><transaction-type code="D"/><value value-date="2013-01-01">7</value></transaction>
  <transaction><transaction-type code="C"/><value value-date="2013-01-01">8</value></transaction>
  <budget><value value-date="2013-01-01">9</value></budget>
 </iati-activity>
 <iati-activity default-currency="USD">
  <iati-identifier>XX-SKIP-3</iati-identifier>
  <reporting-org ref="XX-SKIP" type="10">Skip test</reporting-org>
  <transaction><transaction-type code="E"/><value value-date="2013-01-01">11.5</value></transaction>
 </iati-activity>
</iati-activities>
"""
SKIPPED_TEXT = "applied, 7 skipped"


def _skippy(tmp_path: Path) -> Path:
    f = tmp_path / "skippy.xml"
    f.write_text(SKIPPY)
    return f


def test_skipped_records_are_counted_with_reasons_and_places(engine, tmp_path: Path) -> None:
    result = import_file(engine, _skippy(tmp_path))
    assert result.status == "applied" and result.status_text == SKIPPED_TEXT
    assert result.found == {"activities": 3, "flows": 6, "budgets": 2, "organisations": 0}
    assert result.imported == {"activities": 2, "flows": 2, "budgets": 0, "organisations": 0}
    assert result.skipped == {"activities": 1, "flows": 4, "budgets": 2, "organisations": 0}
    errors = [(i.location, i.code) for i in result.issues if i.severity.value == "error"]
    assert errors == [
        ("/iati-activities/iati-activity[1] (line 3)/transaction[2] (line 7)", "bad-amount"),
        ("/iati-activities/iati-activity[1] (line 3)/transaction[3] (line 8)",
         "bad-transaction-type"),
        ("/iati-activities/iati-activity[1] (line 3)/budget[1] (line 9)", "no-value"),
        ("/iati-activities/iati-activity[2] (line 11)", "no-identifier"),
    ]
    assert "found in file: 3 activities = 2 imported + 1 skipped; 6 flows = 2 imported + 4 " \
        "skipped; 2 budgets = 0 imported + 2 skipped" in result.summary()


def test_cli_says_applied_n_skipped(db_url: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNDTRACK_DATABASE_URL", db_url)
    out = CliRunner().invoke(main, ["import", "--quiet", str(_skippy(tmp_path))],
                             catch_exceptions=False)
    assert out.exit_code == 0, out.output
    first = out.output.splitlines()
    assert first[0].startswith(f"skippy.xml: {SKIPPED_TEXT} (batch 1) 2 activities, 2 flows")
    assert first[1] == ("  found in file: 3 activities = 2 imported + 1 skipped; 6 flows = 2 "
                        "imported + 4 skipped; 2 budgets = 0 imported + 2 skipped")
    assert "error: /iati-activities/iati-activity[2] (line 11): activity has no " \
        "iati-identifier; skipped with its transactions and budgets" in out.output
    clean = CliRunner().invoke(main, ["import", "--quiet", str(
        SHARED / "iati-legacy-1.0x/complex_example_dfid.xml")], catch_exceptions=False)
    assert re.match(r"complex_example_dfid.xml: applied \(batch 2\)", clean.output)


def test_api_and_page_say_applied_n_skipped(db_url: str, engine, tmp_path: Path) -> None:
    import_file(engine, _skippy(tmp_path))
    import_file(engine, SHARED / "iati-legacy-1.0x/complex_example_dfid.xml")
    api = Api(db_url)
    got = api.query("{ importBatches { nodes { fileName status statusText skipped "
                    "reconciliation { kind found imported skipped } } } }")
    nodes = {n["fileName"]: n for n in got["importBatches"]["nodes"]}
    assert nodes["skippy.xml"] == {
        "fileName": "skippy.xml", "status": "applied", "statusText": SKIPPED_TEXT, "skipped": 7,
        "reconciliation": [
            {"kind": "activities", "found": 3, "imported": 2, "skipped": 1},
            {"kind": "flows", "found": 6, "imported": 2, "skipped": 4},
            {"kind": "budgets", "found": 2, "imported": 0, "skipped": 2}]}
    assert nodes["complex_example_dfid.xml"]["statusText"] == "applied"
    page = api.get("/imports").text
    rows = re.findall(r'<tr id="batch-(\d+)".*?</tr>', page, re.S)
    assert rows == ["2", "1"]
    skippy = re.search(r'<tr id="batch-1".*?</tr>', page, re.S).group(0)
    assert f'<td class="status" data-status="applied">{SKIPPED_TEXT}</td>' in skippy
    assert "6 flows = 2 imported + <strong>4 skipped</strong>" in skippy
    clean = re.search(r'<tr id="batch-2".*?</tr>', page, re.S).group(0)
    assert '<td class="status" data-status="applied">applied</td>' in clean
    assert "358 flows = 358 imported + 0 skipped" in clean


def test_upload_payload_carries_the_reconciliation(db_url: str, engine, tmp_path: Path) -> None:
    _, token = create_token(engine, "admin", label="t")
    api = Api(db_url)
    ops = {"query": "mutation($file: Upload!) { importReport(input: {file: $file}) "
                    "{ status statusText reconciliation { kind found imported skipped } } }",
           "variables": {"file": None}}
    r = api.post(None, headers={"GraphQL-Preflight": "1", "Authorization": f"Bearer {token}"},
                 data={"operations": json.dumps(ops), "map": json.dumps({"0": ["variables.file"]})},
                 files={"0": ("skippy.xml", SKIPPY.encode(), "application/octet-stream")})
    out = r.json()["data"]["importReport"]
    assert out["statusText"] == SKIPPED_TEXT
    assert out["reconciliation"][1] == {"kind": "flows", "found": 6, "imported": 2, "skipped": 4}
