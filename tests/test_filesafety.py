"""Hostile uploads: zip bombs, oversized files, XML entity tricks, formulas, bad encodings."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import func, select

from fundtrack.ingest import filesafety
from fundtrack.ingest.filesafety import Limits, check_xlsx, open_text, open_xlsx, xlsx_rows
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.plugins import ImportContext
from fundtrack.records import FileRejected
from importers.spreadsheet import SPREADSHEET

FIX = Path(__file__).parent / "fixtures" / "spreadsheet"
MPTF = FIX / "mptf_pbf_gateway.xlsx"


def rewrite_xlsx(src: Path, dest: Path, replace: dict[str, bytes],
                 add: dict[str, bytes] | None = None) -> Path:
    """A copy of a real workbook with some parts replaced or added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info.filename)))
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dest


def nothing_written(engine) -> bool:
    with engine.connect() as c:
        return (c.execute(select(func.count()).select_from(m.Flow)).scalar_one() == 0
                and c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 0)


def test_zip_bomb_refused_before_opening(engine, tmp_path):
    bomb = rewrite_xlsx(MPTF, tmp_path / "bomb.xlsx", {},
                        {"xl/media/padding.xml": b"<a>" + b"0" * (60 * 1024 * 1024) + b"</a>"})
    assert bomb.stat().st_size < 200 * 1024  # 60 MiB inflated from a small file
    with mock.patch("openpyxl.load_workbook", side_effect=AssertionError("opened")):
        result = import_file(engine, bomb, fmt="spreadsheet")
    assert result.status == "rejected"
    assert "zip bomb" in result.message and "compresses" in result.message
    assert result.issues[-1].location == "part xl/media/padding.xml"
    assert nothing_written(engine)


def test_lying_zip_directory_is_caught_while_inflating(tmp_path):
    """A directory that understates a part's size cannot smuggle a bomb past the ratio check."""
    path = tmp_path / "liar.xlsx"
    rewrite_xlsx(MPTF, path, {}, {"xl/big.xml": b"<a>" + b"1" * (5 * 1024 * 1024) + b"</a>"})
    data = bytearray(path.read_bytes())
    # shrink the declared size of xl/big.xml in its central directory entry to 1 KiB
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("xl/big.xml")
    cd = data.rfind(b"PK\x01\x02", 0, data.rfind(b"xl/big.xml"))
    data[cd + 24:cd + 28] = (1024).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert info.file_size > 5 * 1024 * 1024
    with path.open("rb") as fh, pytest.raises(FileRejected) as exc:
        check_xlsx(fh, Limits())
    assert exc.value.location == "part xl/big.xml"


def test_oversized_xlsx_refused(engine):
    result = import_file(engine, MPTF, options={"max_file_bytes": 4096})
    assert result.status == "rejected"
    assert "file too large" in result.message and "max_file_bytes" in result.message
    assert nothing_written(engine)


def test_too_much_inflated_data_refused(engine):
    result = import_file(engine, MPTF, options={"max_uncompressed_bytes": 10_000})
    assert result.status == "rejected"
    assert "inflates to more than 10,000 bytes" in result.message


BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE sst [\n <!ENTITY a "aaaaaaaaaa">\n'
                  b' <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n'
                  b' <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n]>\n')
XXE = b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'


@pytest.mark.parametrize("prolog", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_xml_entity_tricks_refused(engine, tmp_path, prolog):
    part = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(MPTF) as zf:
        sheet = zf.read(part)
    body = sheet.split(b"?>", 1)[1] if sheet.startswith(b"<?xml") else sheet
    body = body.replace(b"<t>Germany</t>", b"<t>&c;</t>" if prolog is BILLION_LAUGHS
                        else b"<t>&e;</t>")
    evil = rewrite_xlsx(MPTF, tmp_path / "evil.xlsx", {part: prolog + body})
    result = import_file(engine, evil, fmt="spreadsheet")
    assert result.status == "rejected"
    assert "DOCTYPE or entity" in result.message
    assert result.issues[-1].location == f"part {part}"
    assert nothing_written(engine)


def test_openpyxl_itself_refuses_entities_too(tmp_path):
    """Defence in depth: with defusedxml installed, openpyxl's own parser refuses them."""
    import openpyxl

    assert openpyxl.DEFUSEDXML
    part = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(MPTF) as zf:
        sheet = zf.read(part)
    body = sheet.split(b"?>", 1)[1] if sheet.startswith(b"<?xml") else sheet
    evil = rewrite_xlsx(MPTF, tmp_path / "evil.xlsx",
                        {part: BILLION_LAUGHS + body.replace(b"<t>Germany</t>", b"<t>&c;</t>")})
    with pytest.raises(Exception) as exc:  # noqa: PT011 - defusedxml's EntitiesForbidden
        wb = openpyxl.load_workbook(evil, read_only=True)
        for ws in wb.worksheets:
            list(ws.iter_rows(values_only=True))
    chain, err = [], exc.value
    while err is not None:
        chain.append(type(err).__name__)
        err = err.__cause__ or err.__context__
    assert "EntitiesForbidden" in chain or "DTDForbidden" in chain, chain


def test_formula_cells_are_reported_not_computed(tmp_path):
    import openpyxl

    path = tmp_path / "f.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["a", "b"])
    ws.append([1, "=A2*1000"])
    ws.append([2, '=WEBSERVICE("http://example.invalid/")'])
    wb.save(path)
    with path.open("rb") as fh:
        book = open_xlsx(fh)
        rows = list(xlsx_rows(book.worksheets[0]))
        book.close()
    assert rows[1][1][1].formula == "=A2*1000" and rows[1][1][1].value is None
    assert rows[2][1][1].formula.startswith("=WEBSERVICE(") and rows[2][1][1].value is None


def test_formula_in_an_amount_skips_the_row(engine):
    result = import_file(engine, FIX / "un_cost_categories_errors.xlsx")
    issue = next(i for i in result.issues if "formula" in i.message)
    assert issue.location == 'sheet "Expenditure by category", row 4, column "Expenditure"'
    assert "=F2*2 is not evaluated" in issue.message


def test_wrong_stated_encoding_gives_clear_error(engine):
    result = import_file(engine, FIX / "mptf_contributions_cp1252.csv",
                         options={"encoding": "utf-8"})
    assert result.status == "rejected"
    assert "not valid utf-8" in result.message
    assert "`encoding` in the mapping's [source] table" in result.message
    assert result.issues[-1].location.startswith("row ")
    assert nothing_written(engine)


def test_undetectable_encoding_names_the_option():
    rng = random.Random(1325)
    garbage = bytes(rng.randrange(1, 256) for _ in range(4000))
    with pytest.raises(FileRejected) as exc:
        src = open_text(io.BytesIO(garbage), None, "the `encoding` option")
        list(filesafety.csv_rows(src, None, "the `encoding` option"))
    assert "the `encoding` option" in exc.value.message
    assert exc.value.location


def test_mixed_encodings_refused():
    data = "Zürich;Côte d’Ivoire\n".encode() + "Zürich;Côte d’Ivoire\n".encode("cp1252")
    with pytest.raises(FileRejected) as exc:
        list(SPREADSHEET.parse(io.BytesIO(data), ImportContext("x.csv")))
    assert "mixes encodings" in exc.value.message and "`encoding`" in exc.value.message


def test_binary_file_as_csv_names_the_option():
    with pytest.raises(FileRejected) as exc:
        list(SPREADSHEET.parse(io.BytesIO(b"a,b\x00\x01\x02,c\n"), ImportContext("x.csv")))
    assert "NUL" in exc.value.message and "encoding" in exc.value.message


def test_not_a_zip_and_truncated_xlsx_rejected(engine, tmp_path):
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(MPTF.read_bytes()[:3000])
    result = import_file(engine, cut, fmt="spreadsheet")
    assert result.status == "rejected"
    assert "not a readable XLSX" in result.message and result.issues[-1].location == "file"
    assert nothing_written(engine)


def test_non_seekable_upload_is_spooled_and_checked():
    class OneWay(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.src = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            chunk = self.src.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    stream = io.BufferedReader(OneWay(MPTF.read_bytes()))
    flows = [r for r in SPREADSHEET.parse(stream, ImportContext("x.xlsx"))
             if not hasattr(r, "severity")]
    assert len(flows) == 18
