"""360Giving grants data: JSON (``{"grants": [...]}``), and the standard's spreadsheet
shape in XLSX or CSV (column titles such as "Identifier", "Amount Awarded",
"Recipient Org:Identifier", "Funding Org:Name", or flatten-tool paths such as
``recipientOrganization/0/id``).

One grant is one flow of kind ``OUTGOING_COMMITMENT`` (IATI transaction type 2): a
360Giving grant is an *award*, the funder's binding decision to pay ``amountAwarded`` to
the recipient. It is not cash: payments are not in the standard's core (``amountDisbursed``
is optional and undated), so counting an award as a disbursement would overstate what
reached recipients. ``amountDisbursed``, when given, is kept in ``extra``.

- reporting organisation and provider: the (first) funding organisation; a grant without
  a funder identifier is skipped, because the ledger keys re-imports on it;
- receiver: the (first) recipient organisation (``id`` as the reference, e.g.
  ``GB-CHC-1015648``), or a recipient individual (name only, no reference);
- external id, activity identifier and provider activity id: the grant ``id``, so a
  re-import of the same grants (from the JSON or the spreadsheet) replaces them;
- value date: ``awardDate``. ISO 8601 is the standard; older files use day/month/year
  (UK order), month/year or "31 March 2014": read, with one warning per file and form;
- amounts stay exact: JSON numbers are read with ``parse_float=Decimal``; XLSX numbers,
  which openpyxl gives as binary floats, are converted through ``repr`` (the shortest
  text that round-trips, i.e. the number as written in the file: ``41133.770000000004``
  stays that, exactly as the funder's own JSON conversion has it); text through
  :func:`fundtrack.money.parse_amount`.

JSON is read incrementally, one grant at a time, so memory does not grow with the file.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, BinaryIO

from fundtrack.hookspecs import hookimpl
from fundtrack.ingest.filesafety import (
    Cell,
    Limits,
    csv_rows,
    is_zip,
    open_text,
    open_xlsx,
    peek,
    xlsx_head_text,
    xlsx_rows,
)
from fundtrack.money import AmountError, parse_amount
from fundtrack.plugins import ImportContext
from fundtrack.records import (
    FileRejected,
    FlowKind,
    FlowRecord,
    Issue,
    OrgRef,
    Record,
    Severity,
)

# -- the spreadsheet titles of the 360Giving standard ---------------------------------------

#: normalised column title -> field of the flat grant view
TITLES = {
    "identifier": "id", "id": "id",
    "title": "title",
    "description": "description",
    "currency": "currency",
    "amount awarded": "amountAwarded", "amountawarded": "amountAwarded",
    "amount disbursed": "amountDisbursed", "amountdisbursed": "amountDisbursed",
    "amount applied for": "amountAppliedFor", "amountappliedfor": "amountAppliedFor",
    "award date": "awardDate", "awarddate": "awardDate",
    "recipient org:identifier": "recipient_id", "recipientorganization/0/id": "recipient_id",
    "recipient org:name": "recipient_name", "recipientorganization/0/name": "recipient_name",
    "recipient ind:identifier": "individual_id", "recipientindividual/id": "individual_id",
    "recipient ind:name": "individual_name", "recipientindividual/name": "individual_name",
    "funding org:identifier": "funder_id", "fundingorganization/0/id": "funder_id",
    "funding org:name": "funder_name", "fundingorganization/0/name": "funder_name",
    "beneficiary location:country code": "country",
    "beneficiarylocation/0/countrycode": "country",
    "grant programme:title": "programme", "grantprogramme/0/title": "programme",
    "planned dates:start date": "start", "planneddates/0/startdate": "start",
    "planned dates:end date": "end", "planneddates/0/enddate": "end",
}
REQUIRED_TITLES = ("id", "amountAwarded")


def norm_title(text: Any) -> str:
    """"Funding Org: Identifier " -> "funding org:identifier"."""
    t = re.sub(r"\s+", " ", str(text or "")).strip().casefold()
    return re.sub(r"\s*([:/])\s*", r"\1", t)


SNIFF_TITLES = re.compile(r"Amount\s*Awarded|amountAwarded", re.I)
SNIFF_FUNDER = re.compile(r"Funding\s*Org\s*:\s*(Identifier|Name)|fundingOrganization/0/", re.I)
JSON_HEAD = re.compile(rb'^\s*\{[\s\S]*?"grants"\s*:\s*\[', re.S)
JSON_360 = re.compile(rb'"(amountAwarded|fundingOrganization|recipientOrganization)"\s*:')


# -- one grant, whatever it came from ------------------------------------------------------


@dataclass
class Grant:
    """A grant as a flat view: the fields fundtrack uses, values as read."""

    where: str
    values: dict[str, Any] = field(default_factory=dict)
    cells: dict[str, str] = field(default_factory=dict)  # field -> location of its cell
    extra_recipients: int = 0
    extra_funders: int = 0
    countries: list[str] = field(default_factory=list)

    def at(self, name: str) -> str:
        return self.cells.get(name, self.where)


class _Builder:
    """Turns grant views into flows and issues; holds per-file state."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.date_forms: Counter[str] = Counter()
        self.date_first: dict[str, str] = {}

    def flow(self, g: Grant) -> Iterator[FlowRecord | Issue]:
        v = g.values
        gid = _text(v.get("id"))
        if not gid:
            yield Issue(Severity.ERROR, "grant has no identifier; skipped", g.at("id"), "no-identifier")
            return
        where = f"{g.where} ({gid})"
        if gid in self.seen:
            yield Issue(Severity.ERROR, f"grant {gid} appears twice in this file; the first is "
                        "kept", where, "duplicate-grant")
            return
        self.seen.add(gid)
        amount = yield from self._amount(v.get("amountAwarded"), g, "amountAwarded", where)
        if amount is None:
            return
        funder_id = _text(v.get("funder_id"))
        if not funder_id:
            yield Issue(Severity.ERROR, "grant has no funding organisation identifier; skipped "
                        "(fundtrack keys re-imports on the funder)", where, "no-funder")
            return
        # No provider activity id: the grant id is this flow's own (external id and
        # activity identifier), so a provider link to it could never reach anything else.
        funder = OrgRef(ref=funder_id, name=_text(v.get("funder_name")), role="1")
        if g.extra_funders:
            yield Issue(Severity.WARNING, f"{g.extra_funders + 1} funding organisations; the "
                        "first is taken as provider", where, "several-funders")
        receiver = OrgRef(ref=_text(v.get("recipient_id")), name=_text(v.get("recipient_name")))
        if not receiver.ref and not receiver.name:
            if v.get("individual_id") or v.get("individual_name"):
                receiver = OrgRef(name=_text(v.get("individual_name")) or "individual recipient",
                                  type="individual")
            else:
                yield Issue(Severity.WARNING, "grant names no recipient", where, "no-recipient")
        if g.extra_recipients:
            yield Issue(Severity.WARNING, f"{g.extra_recipients + 1} recipient organisations; "
                        "the first is taken as receiver", where, "several-recipients")
        currency = _text(v.get("currency"))
        if currency:
            currency = currency.upper()
            if len(currency) != 3 or not currency.isalpha():
                yield Issue(Severity.WARNING, f"currency {currency[:10]!r} is not an ISO 4217 "
                            "code; kept without one", where, "bad-currency")
                currency = None
        else:
            yield Issue(Severity.WARNING, "grant has no currency; kept without one (no USD value)",
                        where, "no-currency")
            currency = None
        award = self._date(v.get("awardDate"), where)
        if award is None:
            yield Issue(Severity.WARNING, f"awardDate {v.get('awardDate')!r} is missing or not a "
                        "date; kept without a value date (no USD value)", where, "bad-date")
        extra: dict[str, str] = {}
        for key in ("title", "programme", "amountAppliedFor", "amountDisbursed", "start", "end"):
            val = v.get(key)
            if isinstance(val, float):
                val = repr(val)
            if isinstance(val, (datetime, date)):
                val = val.isoformat()[:10]
            if val is not None and str(val).strip():
                extra[key] = str(val).strip()
        countries = sorted({c.upper() for c in g.countries if c})
        country = countries[0] if len(countries) == 1 and len(countries[0]) == 2 else None
        if len(countries) > 1:
            extra["beneficiaryCountries"] = " ".join(countries)
        yield FlowRecord(
            kind=FlowKind.OUTGOING_COMMITMENT, amount=amount, currency=currency,
            value_date=award, transaction_date=award, provider=funder, receiver=receiver,
            description=_text(v.get("description")) or _text(v.get("title")),
            external_id=gid, reporting_org=OrgRef(ref=funder.ref, name=funder.name),
            activity_identifier=gid, recipient_country=country, extra=extra, location=where,
        )

    def _amount(self, raw: Any, g: Grant, name: str, where: str) -> Iterator[Issue]:
        loc = g.at(name)
        loc = f"{where}, {loc.split(', ', 1)[1]}" if loc != g.where and ", " in loc else where
        if isinstance(raw, Cell):
            if raw.formula:
                yield Issue(Severity.ERROR, f"{name} is a formula ({raw.formula[:60]}); formulas are "
                            "never evaluated, enter the value; skipped", loc, "formula")
                return None
            if raw.error:
                yield Issue(Severity.ERROR, f"{name} is an Excel error {raw.error}; skipped", loc,
                            "bad-amount")
                return None
            raw = raw.value
        try:
            return to_decimal(raw)
        except AmountError as exc:
            yield Issue(Severity.ERROR, f"{name}: {exc}; skipped", loc, "bad-amount")
            return None

    def _date(self, raw: Any, where: str) -> date | None:
        found, form = parse_grant_date(raw)
        if found is not None and form != "iso":
            self.date_forms[form] += 1
            self.date_first.setdefault(form, where)
        return found

    def summary(self) -> Iterator[Issue]:
        for form, n in sorted(self.date_forms.items()):
            yield Issue(Severity.WARNING, f"awardDate written as {form} (not ISO 8601) in {n} "
                        f"grant(s), first at {self.date_first[form]}; read as {form}", "awardDate",
                        "non-iso-date")


def _text(value: Any) -> str | None:
    if isinstance(value, Cell):
        value = value.value
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def to_decimal(raw: Any) -> Decimal:
    """An amount as reported, exactly: ints as they are, binary floats (from XLSX) through
    their shortest round-trip text, text through ``parse_amount``."""
    if isinstance(raw, bool):
        raise AmountError(f"not an amount: {raw!r}")
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            raise AmountError(f"not a finite number: {raw}")
        return raw
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        return parse_amount(repr(raw))
    if raw is None:
        raise AmountError("no amount given")
    return parse_amount(str(raw))


DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
MY = re.compile(r"^(\d{1,2})/(\d{4})$")


def parse_grant_date(raw: Any) -> tuple[date | None, str]:
    """A 360Giving date and the form it was written in ("iso", "day/month/year" ...)."""
    if isinstance(raw, Cell):
        raw = raw.value
    if isinstance(raw, datetime):
        return raw.date(), "iso"
    if isinstance(raw, date):
        return raw, "iso"
    text = _text(raw)
    if not text:
        return None, ""
    try:
        return date.fromisoformat(text[:10]), "iso"
    except ValueError:
        pass
    try:
        if m := DMY.match(text):
            return date(int(m[3]), int(m[2]), int(m[1])), "day/month/year"
        if m := MY.match(text):
            return date(int(m[2]), int(m[1]), 1), "month/year (first of the month)"
        return datetime.strptime(text, "%d %B %Y").date(), "day month-name year"
    except ValueError:
        return None, ""


# -- JSON, streamed --------------------------------------------------------------------------


class _JsonStream:
    """Reads ``{"grants": [ {...}, ... ], ...}`` one grant at a time.

    The standard library has no incremental parser, so values are cut out of a sliding
    text buffer with ``JSONDecoder.raw_decode``; a value not yet complete in the buffer
    makes it read more. Line numbers are tracked for locations.
    """

    CHUNK = 64 * 1024
    MAX_VALUE = 16 * 1024 * 1024

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.decoder_bytes = codecs.getincrementaldecoder("utf-8-sig")("strict")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line of buf[0]
        self.json = json.JSONDecoder(parse_float=Decimal)

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self.stream.read(self.CHUNK)
        try:
            text = self.decoder_bytes.decode(data or b"", final=not data)
        except UnicodeDecodeError as exc:
            raise FileRejected(f"JSON is not valid UTF-8: {exc.reason}", self.where()) from None
        if not data:
            self.eof = True
        consumed = self.buf[:self.pos]
        self.line += consumed.count("\n")
        self.buf = self.buf[self.pos:] + text
        self.pos = 0
        return bool(data) or bool(text)

    def where(self, at: int | None = None) -> str:
        at = self.pos if at is None else at
        line = self.line + self.buf.count("\n", 0, at)
        col = at - (self.buf.rfind("\n", 0, at) + 1) + 1
        return f"line {line}, column {col}"

    def skip_ws(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, chars: str, what: str) -> str:
        c = self.skip_ws()
        if not c or c not in chars:
            found = repr(c) if c else "end of file"
            raise FileRejected(f"malformed JSON: expected {what}, found {found}", self.where())
        self.pos += 1
        return c

    def value(self, what: str) -> Any:
        self.skip_ws()
        while True:
            try:
                val, end = self.json.raw_decode(self.buf, self.pos)
            except RecursionError:
                # the json module recurses per level; deeply nested input is refused
                # instead of surfacing as an internal error
                raise FileRejected(f"{what} is nested too deeply (more than about "
                                   f"{sys.getrecursionlimit():,} levels); no 360Giving file "
                                   "is", self.where()) from None
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > self.MAX_VALUE:
                    raise FileRejected(f"{what} is larger than {self.MAX_VALUE:,} characters",
                                       self.where()) from None
                if self._more():
                    continue
                raise FileRejected(f"malformed JSON in {what}: {exc.msg}",
                                   self.where(exc.pos)) from None
            # a number at the very end of the buffer may continue in the next chunk
            if end == len(self.buf) and not self.eof and self._more():
                continue
            self.pos = end
            return val

    def grants(self) -> Iterator[tuple[int, Any, str]]:
        """(index, grant object, location) for each grant; other keys are skipped."""
        if self.skip_ws() != "{":
            raise FileRejected("not a 360Giving JSON file: it must be an object with a "
                               "\"grants\" list", self.where())
        self.pos += 1
        found = False
        if self.skip_ws() == "}":
            self.pos += 1
        else:
            while True:
                key = self.value("a key")
                if not isinstance(key, str):
                    raise FileRejected("malformed JSON: object keys must be strings", self.where())
                self.expect(":", "':'")
                if key == "grants":
                    found = True
                    yield from self._array()
                else:
                    self.value(f"top-level {key!r}")
                if self.expect(",}", "',' or '}'") == "}":
                    break
        if self.skip_ws():
            raise FileRejected("malformed JSON: data after the end of the top-level object",
                               self.where())
        if not found:
            raise FileRejected("not a 360Giving JSON file: no \"grants\" list", "top level")

    def _array(self) -> Iterator[tuple[int, Any, str]]:
        self.expect("[", "'[' to start the grants list")
        if self.skip_ws() == "]":
            self.pos += 1
            return
        n = 0
        while True:
            start = self.where()
            yield n, self.value(f"grants[{n}]"), start
            n += 1
            if self.expect(",]", "',' or ']' in the grants list") == "]":
                return


def json_grant(obj: Any, n: int, start: str) -> Grant | Issue:
    where = f"grants[{n}]"
    if not isinstance(obj, dict):
        return Issue(Severity.ERROR, "grant is not a JSON object; skipped", f"{where} ({start})",
                     "not-an-object")
    g = Grant(where=where)
    v = g.values
    for key in ("id", "title", "description", "currency", "amountAwarded", "amountDisbursed",
                "amountAppliedFor", "awardDate"):
        v[key] = obj.get(key)
    funders = [o for o in obj.get("fundingOrganization") or [] if isinstance(o, dict)]
    if isinstance(obj.get("fundingOrganization"), dict):
        funders = [obj["fundingOrganization"]]
    recipients = obj.get("recipientOrganization") or []
    if isinstance(recipients, dict):
        recipients = [recipients]
    recipients = [o for o in recipients if isinstance(o, dict)]
    if funders:
        v["funder_id"], v["funder_name"] = funders[0].get("id"), funders[0].get("name")
        g.extra_funders = len(funders) - 1
    if recipients:
        v["recipient_id"], v["recipient_name"] = recipients[0].get("id"), recipients[0].get("name")
        g.extra_recipients = len(recipients) - 1
    ind = obj.get("recipientIndividual")
    if isinstance(ind, dict):
        v["individual_id"], v["individual_name"] = ind.get("id"), ind.get("name")
    programmes = obj.get("grantProgramme") or []
    if isinstance(programmes, list) and programmes and isinstance(programmes[0], dict):
        v["programme"] = programmes[0].get("title")
    planned = obj.get("plannedDates") or []
    if isinstance(planned, list) and planned and isinstance(planned[0], dict):
        v["start"], v["end"] = planned[0].get("startDate"), planned[0].get("endDate")
    for loc in obj.get("beneficiaryLocation") or []:
        if isinstance(loc, dict) and loc.get("countryCode"):
            g.countries.append(str(loc["countryCode"]))
    return g


# -- spreadsheets ----------------------------------------------------------------------------


def _header_map(cells: list[Cell]) -> dict[int, str]:
    cols: dict[int, str] = {}
    for i, c in enumerate(cells):
        key = TITLES.get(norm_title(c.value)) if isinstance(c.value, str) else None
        if key and key not in cols.values() or key == "country":
            cols[i] = key
    return cols


def table_grants(rows: Iterator[tuple[int, list[Cell]]], sheet: str | None,
                 titles: list[str]) -> Iterator[Grant | Issue]:
    """Grants from rows whose header (within the first 10 rows) has 360Giving titles."""
    prefix = f'sheet "{sheet}", ' if sheet else ""
    header: dict[int, str] | None = None
    for n, cells in rows:
        if header is None:
            cand = _header_map(cells)
            if all(k in cand.values() for k in REQUIRED_TITLES):
                header = cand
                titles[:] = [str(c.value) if c.value is not None else "" for c in cells]
            elif n >= 10:
                return
            continue
        if all(c.empty for c in cells):
            continue
        g = Grant(where=f"{prefix}row {n}")
        for i, key in header.items():
            cell = cells[i] if i < len(cells) else Cell()
            if key == "country":
                if isinstance(cell.value, str) and cell.value.strip():
                    g.countries.append(cell.value.strip())
                continue
            if key == "amountAwarded":
                g.values[key] = cell
            elif cell.formula:
                g.values[key] = None
                yield Issue(Severity.WARNING, f"formula {cell.formula[:60]} not evaluated; value "
                            "ignored", f'{prefix}row {n}, column "{titles[i]}"', "formula")
            else:
                g.values[key] = cell.value
            g.cells[key] = f'{prefix}row {n}, column "{titles[i]}"'
        yield g


# -- the importer ----------------------------------------------------------------------------


class Giving360Importer:
    """360Giving grants: JSON, and the standard's XLSX/CSV spreadsheet shape."""

    name = "giving360"
    version = "1.0.0"
    title = "360Giving grants data (JSON; XLSX or CSV with the standard's column titles)"

    def sniff(self, head: bytes, filename: str) -> float | None:
        if JSON_HEAD.match(head):
            return 0.95 if JSON_360.search(head) else None
        if is_zip(head):
            text = xlsx_head_text(head)
            if text and SNIFF_TITLES.search(text) and SNIFF_FUNDER.search(text):
                return 0.9
            return None
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
        if SNIFF_TITLES.search(first) and SNIFF_FUNDER.search(first):
            return 0.9
        return None

    def parse(self, stream: BinaryIO, context: ImportContext) -> Iterator[Record | Issue]:
        limits = Limits.from_options(context.options)
        head = peek(stream)
        builder = _Builder()
        if is_zip(head):
            grants = self._xlsx(stream, limits)
        elif head.lstrip().startswith((b"{", b"\xef\xbb\xbf{")) or context.filename.endswith(".json"):
            grants = self._json(stream)
        else:
            grants = self._csv(stream, context)
        for g in grants:
            if isinstance(g, Issue):
                yield g
            else:
                yield from builder.flow(g)
        yield from builder.summary()

    @staticmethod
    def _json(stream: BinaryIO) -> Iterator[Grant | Issue]:
        for n, obj, start in _JsonStream(stream).grants():
            yield json_grant(obj, n, start)

    @staticmethod
    def _xlsx(stream: BinaryIO, limits: Limits) -> Iterator[Grant | Issue]:
        wb = open_xlsx(stream, limits)
        try:
            for ws in wb.worksheets:
                titles: list[str] = []
                found = False
                for item in table_grants(xlsx_rows(ws, limits), ws.title, titles):
                    found = True
                    yield item
                if found or titles:
                    return
            raise FileRejected("no sheet has the 360Giving columns \"Identifier\" and "
                               "\"Amount Awarded\" in its first 10 rows", "workbook")
        finally:
            wb.close()

    @staticmethod
    def _csv(stream: BinaryIO, context: ImportContext) -> Iterator[Grant | Issue]:
        hint = "the `encoding` import option"
        source = open_text(stream, context.options.get("encoding"), hint)
        if source.how == "detected":
            yield Issue(Severity.WARNING, f"text encoding not stated; detected {source.encoding}; "
                        f"set {hint} to be sure", "file", "encoding-detected")
        titles: list[str] = []
        yield from table_grants(csv_rows(source, context.options.get("delimiter"), hint), None,
                                titles)
        if not titles:
            raise FileRejected("no 360Giving header (\"Identifier\", \"Amount Awarded\") in the "
                               "first 10 rows", "row 1")


GIVING360 = Giving360Importer()


@hookimpl
def fundtrack_importers() -> list[Any]:
    return [GIVING360]
