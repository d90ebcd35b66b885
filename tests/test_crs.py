"""OECD CRS rows: files derived from the 41 real CRS rows, checked against the SQL itself.

The expected counts and sums come from loading ``crs_subset.sql`` into SQLite (columns
declared TEXT, so values stay as written) - not from the importer or the fixture script.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.plugins import ImportContext, importers
from fundtrack.records import FileRejected, FlowKind, FlowRecord, Issue, PolicyMarker
from tests.conftest import FIXTURES, SHARED

SQL = SHARED / "oecd-dac/devinit-ddw/crs_subset.sql"
CRS_DIR = FIXTURES / "crs"
BULK = CRS_DIR / "crs_1973_bulk.txt"
CSV = CRS_DIR / "crs_1973.csv"
KIND_COLUMNS = {"OUTGOING_COMMITMENT": "usd_commitment", "DISBURSEMENT": "usd_disbursement",
                "LOAN_REPAYMENT": "usd_received"}
MILLION = Decimal(1_000_000)


def sql_rows() -> list[dict[str, str | None]]:
    """The CRS rows as SQLite reads the INSERTs, every column TEXT."""
    text = SQL.read_text(encoding="utf-8")
    cols = re.search(r"INSERT INTO repo\.crs_current \(([^)]*)\)", text).group(1)
    names = [c.strip().strip('"') for c in cols.split(",")]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE crs_current (" + ", ".join(f'"{n}" TEXT' for n in names) + ")")
    statements = text.replace("repo.crs_current", "crs_current").split("INSERT INTO")
    for stmt in statements[1:]:
        db.execute("INSERT INTO " + stmt.strip().rstrip(";"))
    db.row_factory = sqlite3.Row
    return [dict(r) for r in db.execute("SELECT * FROM crs_current ORDER BY CAST(row_no AS INT)")]


def expected() -> dict[str, tuple[int, Decimal]]:
    out: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    for row in sql_rows():
        for kind, col in KIND_COLUMNS.items():
            if row[col] is not None and Decimal(row[col]) != 0:
                out[kind][0] += 1
                out[kind][1] += Decimal(row[col]) * MILLION
    return {k: tuple(v) for k, v in out.items()}


def ledger(engine, batch_id: int | None = None) -> dict[str, tuple[int, Decimal]]:
    cond = [m.Flow.superseded_by.is_(None)]
    if batch_id is not None:
        cond.append(m.Flow.batch_id == batch_id)
    with engine.connect() as c:
        rows = c.execute(select(m.Flow.kind, m.Flow.currency, func.count(), money_sum(m.Flow.amount),
                                money_sum(m.Flow.amount_usd)).where(*cond)
                         .group_by(m.Flow.kind, m.Flow.currency)).all()
    out = {}
    for kind, cur, n, total, usd in rows:
        assert cur == "USD" and total == usd
        out[kind.name] = (n, total)
    return out


def parse(data: bytes, name: str = "crs.txt", **options) -> list:
    import io

    return list(importers()["crs"].parse(io.BytesIO(data), ImportContext(name, options)))


def flows_of(items: list) -> list[FlowRecord]:
    return [i for i in items if isinstance(i, FlowRecord)]


def totals(items: list) -> dict[str, tuple[int, Decimal]]:
    out: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    for f in flows_of(items):
        out[f.kind.name][0] += 1
        out[f.kind.name][1] += f.amount
    return {k: tuple(v) for k, v in out.items()}


def bulk_text() -> str:
    return BULK.read_bytes().decode("utf-16")


def test_there_are_41_real_rows():
    rows = sql_rows()
    assert len(rows) == 41
    assert expected()["OUTGOING_COMMITMENT"][0] == 17


def test_fixtures_are_what_the_script_derives():
    spec = importlib.util.spec_from_file_location("crs_derive", CRS_DIR / "derive.py")
    derive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(derive)
    made = derive.derive(SQL)
    assert made["crs_1973_bulk.txt"] == BULK.read_bytes()
    assert made["crs_1973.csv"] == CSV.read_bytes()
    assert BULK.read_bytes()[:2] == b"\xff\xfe"  # UTF-16 LE with BOM, like the OECD's files


@pytest.mark.parametrize("path", [BULK, CSV], ids=lambda p: p.name)
def test_file_matches_sql_rows(engine, path: Path):
    result = import_file(engine, path)
    assert result.status == "applied", result.summary()
    assert result.importer == "crs"
    want = expected()
    assert ledger(engine, result.batch_id) == want
    assert result.counts["flows"] == sum(n for n, _ in want.values())
    again = import_file(engine, path)
    assert again.status == "unchanged"
    assert ledger(engine) == want


def test_bulk_then_csv_replaces_rather_than_doubles(engine):
    import_file(engine, BULK)
    result = import_file(engine, CSV)
    assert result.status == "applied"
    assert result.counts["replaced_flows"] == sum(n for n, _ in expected().values())
    assert ledger(engine) == expected()


def test_row_mapping(engine):
    result = import_file(engine, BULK)
    flow = m.Flow.__table__
    with engine.connect() as c:
        rows = c.execute(select(flow).where(flow.c.batch_id == result.batch_id)).all()
        orgs = dict(c.execute(select(m.Organisation.ref, m.Organisation.name)).all())
    by_id = {r.external_id: r for r in rows}
    wheat = by_id["1973-918-1-1973000080z-1-C"]
    assert wheat.kind is FlowKind.OUTGOING_COMMITMENT
    assert wheat.amount == Decimal(529000) and wheat.amount_usd == Decimal(529000)
    assert (wheat.provider_ref, wheat.provider_name) == (
        "XM-DAC-918-1", "Commission of the European Communities")
    assert (wheat.recipient_country, wheat.sector_vocabulary, wheat.sector_code) == (
        "MT", "1", "52010")
    assert (wheat.flow_type, wheat.finance_type) == ("10", "110")
    assert str(wheat.value_date) == "1973-07-01"
    assert wheat.extra["reported_usd"] == "0.529 USD million"
    assert wheat.extra["crs_flow_name"] == "ODA Grants"
    assert wheat.reporting_org_ref == "XM-OECD-CRS"
    assert orgs["XM-DAC-5-2"] == "Kreditanstalt für Wiederaufbau"
    # 1973001416z: one commitment row and one disbursement-status row, kept apart
    assert "1973-5-2-1973001416z-1-C" in by_id and "1973-5-2-1973001416z-2-D" not in by_id
    sql = sql_rows()
    countries = Counter(r.recipient_country for r in rows)
    want = Counter()
    iso = {"Malta": "MT", "Turkey": "TR", "Myanmar": "MM", "Thailand": "TH"}
    for row in sql:
        for col in KIND_COLUMNS.values():
            if row[col] is not None and Decimal(row[col]) != 0:
                want[iso[row["recipient_name"]]] += 1
    assert countries == want
    repay = [r for r in rows if r.kind is FlowKind.LOAN_REPAYMENT]
    assert repay and all(r.receiver_ref.startswith("XM-DAC-") for r in repay)


def test_rows_without_amounts_are_reported_with_lines():
    items = parse(BULK.read_bytes())
    empty = [i for i in items if isinstance(i, Issue) and i.code == "no-amount"]
    sql = sql_rows()
    n_empty = sum(1 for r in sql if all(r[c] is None or Decimal(r[c]) == 0
                                        for c in KIND_COLUMNS.values()))
    assert len(empty) == 1 and empty[0].message.startswith(f"{n_empty} row(s)")
    assert empty[0].location.startswith("lines ")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-be-bom", "utf-16-le"])
def test_encodings_are_detected(encoding):
    text = bulk_text()
    bom_be = encoding == "utf-16-be-bom"
    data = b"\xfe\xff" + text.encode("utf-16-be") if bom_be else text.encode(encoding)
    items = parse(data)
    assert totals(items) == expected()
    names = {f.provider.name for f in flows_of(items)}
    assert "Kreditanstalt für Wiederaufbau" in names
    assert not [i for i in items if isinstance(i, Issue) and i.code == "encoding-guessed"]


def test_latin1_is_guessed_with_a_warning_or_named_explicitly():
    data = bulk_text().encode("latin-1")
    guessed = parse(data)
    assert [i.code for i in guessed if isinstance(i, Issue)][0] == "encoding-guessed"
    assert "Kreditanstalt für Wiederaufbau" in {f.provider.name for f in flows_of(guessed)}
    named = parse(data, encoding="latin-1")
    assert not [i for i in named if isinstance(i, Issue) and i.code == "encoding-guessed"]
    assert totals(named) == totals(guessed) == expected()


def test_wrong_explicit_encoding_is_a_clear_error_and_writes_nothing(engine, tmp_path):
    path = tmp_path / "crs-latin1.txt"
    path.write_bytes(bulk_text().encode("latin-1"))
    result = import_file(engine, path, options={"encoding": "utf-8"})
    assert result.status == "rejected"
    assert "not valid utf-8" in result.message and "'encoding' option" in result.message
    assert result.issues[-1].location.startswith("after line ")
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Flow)).scalar_one() == 0


def test_oecd_quirks_extra_boms_nuls_and_line_breaks_in_fields():
    """Concatenated UTF-16 parts (a BOM mid-file), NULs in fields, bare LF inside a field."""
    lines = bulk_text().split("\r\n")
    lines[2] = lines[2].replace("FOOD AID", "FOOD\nAID\x00")
    head = "\r\n".join(lines[:20]) + "\r\n"
    tail = "\r\n".join(lines[20:])
    data = head.encode("utf-16") + tail.encode("utf-16")  # second part has its own BOM
    items = parse(data)
    assert totals(items) == expected()
    assert not [i for i in items if isinstance(i, Issue) and i.severity.value == "error"]
    food = [f for f in flows_of(items) if f.ref == "1973009938z"]
    assert food[0].description == "FOOD AID"
    assert food[0].location.startswith("line 3 ")
    after = [f for f in flows_of(items) if f.ref == "1973007512z"]  # the next row
    assert after[0].location.startswith("line 5 ")  # one physical line further down


def test_bad_rows_and_amounts_are_reported_with_locations():
    lines = bulk_text().split("\r\n")
    lines[2] = lines[2] + "|extra|fields"
    cells = lines[5].split("|")
    header = lines[0].split("|")
    cells[header.index("USD_Commitment")] = "1,5"
    lines[5] = "|".join(cells)
    items = parse("\r\n".join(lines).encode("utf-16"))
    errors = [i for i in items if isinstance(i, Issue) and i.severity.value == "error"]
    assert [(e.code, e.location) for e in errors] == [
        ("bad-row", "line 3"),
        ("bad-amount", 'line 6 (CrsID 1973009503z), column "USD_Commitment"'),
    ]
    want = expected()
    got = totals(items)
    assert got["OUTGOING_COMMITMENT"][0] == want["OUTGOING_COMMITMENT"][0] - 2


def test_units_from_header_or_option():
    text = bulk_text()
    thousands = text.replace("USD_Commitment|", "USD_Commitment_Thousands|", 1)
    got = totals(parse(thousands.encode("utf-8")))
    want = expected()
    assert got["OUTGOING_COMMITMENT"] == (want["OUTGOING_COMMITMENT"][0],
                                          want["OUTGOING_COMMITMENT"][1] / 1000)
    assert got["DISBURSEMENT"] == want["DISBURSEMENT"]
    units = totals(parse(text.encode("utf-8"), unit="units"))
    assert units["DISBURSEMENT"] == (want["DISBURSEMENT"][0], want["DISBURSEMENT"][1] / MILLION)
    with pytest.raises(FileRejected, match="unknown unit"):
        parse(text.encode("utf-8"), unit="billions")


def test_gender_marker_region_and_channel():
    lines = CSV.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    import csv as _csv

    row = next(_csv.reader([lines[1]]))
    row[header.index("gender")] = "2"
    row[header.index("channel_code")] = "41114"
    row[header.index("channel_name")] = "United Nations Development Programme"
    row[header.index("recipient_code")] = "298"
    row[header.index("recipient_name")] = "Africa, regional"
    import io

    out = io.StringIO()
    w = _csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerow(row)
    items = parse(out.getvalue().encode("utf-8"), "one.csv")
    (flow,) = flows_of(items)
    assert flow.policy_markers == [PolicyMarker("1", "1", "2")]
    assert flow.extra["policy_marker_1"] == "2"
    assert (flow.receiver.ref, flow.receiver.name) == (
        "XM-DAC-41114", "United Nations Development Programme")
    assert (flow.recipient_region, flow.recipient_country) == ("298", None)


def test_not_a_crs_header_is_refused():
    with pytest.raises(FileRejected, match="not a CRS file"):
        parse(b"Year|DonorCode|Something\r\n1973|5|x\r\n")


def test_sniff_claims_crs_only():
    crs = importers()["crs"]
    for path in (BULK, CSV):
        assert crs.sniff(path.read_bytes()[: 64 * 1024], path.name) == 0.9
        for name, imp in importers().items():
            if name != "crs":
                assert not imp.sniff(path.read_bytes()[: 64 * 1024], path.name), name
    others = [*sorted((SHARED / "fts-json").rglob("*.*")), *sorted((SHARED / "360giving").rglob("*.*")),
              *sorted((SHARED / "iati-activity").glob("*.xml"))[:3], SQL,
              SHARED / "oecd-dac/devinit-ddw/table2a_subset.sql"]
    for path in others:
        with path.open("rb") as fh:
            assert crs.sniff(fh.read(64 * 1024), path.name) is None, path


def test_streams_and_is_deterministic():
    """A file far larger than the read buffer parses the same twice, row by row."""
    lines = bulk_text().split("\r\n")
    body = [ln for ln in lines[1:] if ln]
    big = "\r\n".join([lines[0], *(body * 200)]) + "\r\n"
    data = big.encode("utf-16")
    assert len(data) > 1_000_000
    first = parse(data)
    assert first == parse(data)
    want = expected()
    assert totals(first) == {k: (n * 200, s * 200) for k, (n, s) in want.items()}
    ids = [f.external_id for f in flows_of(first)]
    assert len(ids) == len(set(ids))
