"""The example plugin's own tests: fundtrack's contract kit, then exact counts and sums.

Expected values are computed here with the ``csv`` module and ``Decimal``, independently
of the importer.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from fundtrack_example_plugin import IMPORTER

from fundtrack.plugins import ImportContext
from fundtrack.records import FileRejected, FlowKind, FlowRecord, Issue, Severity
from fundtrack.testing import ImporterContract, check_importer

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
BARING = SAMPLES / "baring-foundation-grants.csv"
WOLFSON = SAMPLES / "wolfson-foundation-grants.csv"
BAD_ROWS = SAMPLES / "malformed" / "bad-rows.csv"
NO_AMOUNT = SAMPLES / "malformed" / "no-amount-column.csv"
#: Files of other formats the importer must not claim: write a few by hand, or point at
#: real files of other formats you have.
FOREIGN_TEXT = {
    "iati.xml": b'<?xml version="1.0"?>\n<iati-activities version="2.03"></iati-activities>\n',
    "other.csv": b"year,donor,recipient,usd_commitment\n2020,Sweden,Kenya,100\n",
    "fts.json": b'{"status":"ok","data":{"flows":[]}}',
}


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("foreign")
    paths = []
    for name, data in FOREIGN_TEXT.items():
        (root / name).write_bytes(data)
        paths.append(root / name)
    return paths


class TestContract(ImporterContract):
    """One test per promise of fundtrack's importer contract."""

    importer = IMPORTER
    samples = [BARING, WOLFSON]
    malformed = [BAD_ROWS, NO_AMOUNT]


def test_whole_contract_with_foreign_files(foreign: list[Path]) -> None:
    report = check_importer(IMPORTER, [BARING, WOLFSON], foreign, malformed=[BAD_ROWS, NO_AMOUNT])
    assert [s.records for s in report.samples] == [97, 523]
    wolfson = report.samples[1]
    assert 0 < wolfson.bytes_before_first_record < wolfson.size  # it streams


def independent(path: Path) -> dict[tuple[str, str], tuple[int, Decimal]]:
    groups: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            g = groups[(row["kind"], row["currency"])]
            g[0] += 1
            g[1] += Decimal(row["amount"])
    return {k: (n, s) for k, (n, s) in groups.items()}


def parse(path: Path, **options: str) -> list[FlowRecord | Issue]:
    with path.open("rb") as fh:
        return list(IMPORTER.parse(fh, ImportContext(filename=path.name, options=options)))


@pytest.mark.parametrize("path", [BARING, WOLFSON], ids=lambda p: p.name)
def test_counts_and_sums_match_the_csv_module(path: Path) -> None:
    items = parse(path)
    assert [i for i in items if isinstance(i, Issue)] == []
    names = {FlowKind.OUTGOING_COMMITMENT: "commitment", FlowKind.DISBURSEMENT: "disbursement"}
    got: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    for f in items:
        g = got[(names[f.kind], f.currency)]
        g[0] += 1
        g[1] += f.amount
    assert {k: tuple(v) for k, v in got.items()} == independent(path)


def test_baring_exact_totals() -> None:
    """Totals of baring.json (360Giving): 53 grants awarded, 44 with an amount disbursed."""
    assert independent(BARING) == {
        ("commitment", "GBP"): (53, Decimal("2086937.00")),
        ("disbursement", "GBP"): (44, Decimal("1456671.00")),
    }


def test_record_fields() -> None:
    first = parse(BARING)[0]
    assert first.kind is FlowKind.OUTGOING_COMMITMENT
    assert first.amount == Decimal("50000.00") and first.currency == "GBP"
    assert first.provider.ref == "GB-CHC-258583" and first.provider.name == "The Baring Foundation"
    assert first.receiver.ref == "GB-CHC-326568"
    assert first.reporting_org == first.provider
    assert first.external_id == "360G-baringfoundation-20130071:commitment"
    assert first.value_date.isoformat() == "2014-03-17"
    assert first.location == "row 2"


def test_bad_rows_are_skipped_with_their_row_numbers() -> None:
    items = parse(BAD_ROWS)
    errors = {i.location: i.code for i in items if isinstance(i, Issue)
              and i.severity is Severity.ERROR}
    assert errors == {"row 3": "bad-amount", "row 4": "bad-currency", "row 5": "bad-date",
                      "row 6": "bad-kind", "row 10": "duplicate-row"}
    assert [r.location for r in items if isinstance(r, FlowRecord)] == [
        "row 2", "row 7", "row 8", "row 9"]


def test_missing_column_rejects_the_file() -> None:
    with pytest.raises(FileRejected) as exc:
        parse(NO_AMOUNT)
    assert exc.value.location == "row 1" and "amount" in exc.value.message


def test_semicolons_decimal_comma_thousands_and_optional_columns() -> None:
    data = (b"Donor;Recipient;Amount;Currency;Date;Country;Gender marker;Sector\n"
            b"Sida;UN Women;1234,50;sek;2021-05-01;KE;2;15170\n")
    items = list(IMPORTER.parse(io.BytesIO(data), ImportContext(filename="x.csv")))
    warnings = [i.code for i in items if isinstance(i, Issue)]
    assert warnings == ["no-grant-id"]
    (flow,) = [i for i in items if isinstance(i, FlowRecord)]
    assert flow.amount == Decimal("1234.50") and flow.currency == "SEK"
    assert flow.recipient_country == "KE" and flow.sector.code == "15170"
    assert flow.policy_markers[0].significance == "2"
    comma = b"donor,recipient,amount,currency,date\nA,B,\"1,250,000.75\",USD,2020-01-31\n"
    (flow,) = [i for i in IMPORTER.parse(io.BytesIO(comma), ImportContext("y.csv"))
               if isinstance(i, FlowRecord)]
    assert flow.amount == Decimal("1250000.75")


def test_wrong_encoding_is_a_clear_rejection_and_can_be_stated() -> None:
    data = "donor,recipient,amount,currency,date\nMinistère,Réseau,10,EUR,2020-01-01\n"
    latin1 = data.encode("latin-1")
    with pytest.raises(FileRejected) as exc:
        list(IMPORTER.parse(io.BytesIO(latin1), ImportContext("z.csv")))
    assert "encoding" in exc.value.message and exc.value.location.startswith("row")
    items = list(IMPORTER.parse(io.BytesIO(latin1), ImportContext("z.csv", {"encoding": "latin-1"})))
    assert [i.provider.name for i in items if isinstance(i, FlowRecord)] == ["Ministère"]


def test_parse_leaves_the_callers_stream_open() -> None:
    stream = io.BytesIO(BARING.read_bytes())
    list(IMPORTER.parse(stream, ImportContext("b.csv")))
    assert not stream.closed
