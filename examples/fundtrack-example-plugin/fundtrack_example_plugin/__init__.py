"""A fundtrack importer plugin for "simple grants CSV": one grant payment or award per row.

This is the example plugin of ``docs/plugins.md``: a complete, small, real importer that
a third party could publish. It is installed like any plugin (``pip install``) and found
through the ``fundtrack.importers`` entry point; fundtrack has no special knowledge of it.

The format is what a donor's grants team exports from a spreadsheet::

    grant_id,donor,donor_ref,recipient,recipient_ref,kind,amount,currency,date,purpose

Required columns: ``donor``, ``recipient``, ``amount``, ``currency``, ``date``. Column names
are matched case-insensitively; unknown columns are ignored with one warning. Comma,
semicolon or tab separated (detected from the header); with semicolons a decimal comma
is accepted (``1234,50``), as European spreadsheet exports write it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from typing import Any, BinaryIO

from fundtrack.hookspecs import hookimpl
from fundtrack.money import AmountError, parse_amount
from fundtrack.plugins import ImportContext
from fundtrack.records import (
    Coded,
    FileRejected,
    FlowKind,
    FlowRecord,
    Issue,
    OrgRef,
    PolicyMarker,
    Record,
    Severity,
)

__version__ = "0.1.0"

REQUIRED = ("donor", "recipient", "amount", "currency", "date")
OPTIONAL = ("grant_id", "donor_ref", "recipient_ref", "kind", "purpose", "country",
            "gender_marker", "sector")
KINDS = {
    "pledge": FlowKind.OUTGOING_PLEDGE,
    "commitment": FlowKind.OUTGOING_COMMITMENT,
    "disbursement": FlowKind.DISBURSEMENT,
    "expenditure": FlowKind.EXPENDITURE,
}
DEFAULT_KIND = "commitment"  # a grant award is a binding agreement
THOUSANDS_RE = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


def _header_line(head: bytes) -> str | None:
    """The first line of the file as text, or None if it is not text."""
    if b"\x00" in head[:4096]:
        return None
    text = head[:8192].decode("utf-8-sig", errors="replace")
    line = text.splitlines()[0] if text else ""
    return line or None


def _delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _columns(header: str, delimiter: str) -> list[str]:
    row = next(csv.reader([header], delimiter=delimiter), [])
    return [c.strip().strip('"').lower().replace(" ", "_") for c in row]


class SimpleGrantsImporter:
    """Reads the simple grants CSV into canonical :class:`FlowRecord` objects."""

    name = "simple_grants"
    version = __version__
    title = "Simple grants CSV (donor, recipient, amount, currency, date ...)"

    def sniff(self, head: bytes, filename: str) -> float | None:
        header = _header_line(head)
        if header is None:
            return None
        columns = set(_columns(header, _delimiter(header)))
        return 0.9 if set(REQUIRED) <= columns else None

    def parse(self, stream: BinaryIO, context: ImportContext) -> Iterator[Record | Issue]:
        encoding = context.options.get("encoding", "utf-8-sig")
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise FileRejected(f"unknown encoding {encoding!r}", "option encoding") from None
        # TextIOWrapper reads the binary stream in chunks: the file is never loaded whole.
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        try:
            yield from self._rows(text)
        finally:
            text.detach()  # leave the caller's stream open

    def _rows(self, text: io.TextIOWrapper) -> Iterator[Record | Issue]:
        row_no = 1
        try:
            header = text.readline()
            if not header.strip():
                raise FileRejected("the file is empty; expected a header row", "row 1")
            delimiter = _delimiter(header)
            columns = _columns(header, delimiter)
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise FileRejected(f"missing required column(s): {', '.join(missing)} "
                                   f"(found: {', '.join(columns)})", "row 1")
            unknown = [c for c in columns if c and c not in REQUIRED + OPTIONAL]
            if unknown:
                yield Issue(Severity.WARNING, f"column(s) ignored: {', '.join(unknown)}", "row 1",
                            "unknown-column")
            if "grant_id" not in columns:
                yield Issue(Severity.WARNING, "no grant_id column: re-importing a corrected file "
                            "adds rows instead of replacing them", "row 1", "no-grant-id")
            seen: set[str] = set()
            for row in csv.reader(text, delimiter=delimiter):
                row_no += 1
                if not any(cell.strip() for cell in row):
                    continue
                where = f"row {row_no}"
                if len(row) > len(columns):
                    yield Issue(Severity.ERROR, f"{len(row)} cells but {len(columns)} columns; "
                                "row skipped", where, "bad-row")
                    continue
                values = {c: (row[i].strip() if i < len(row) else "")
                          for i, c in enumerate(columns)}
                item = self._record(values, where, decimal_comma=delimiter == ";")
                if isinstance(item, FlowRecord) and item.external_id:
                    key = item.external_id
                    if key in seen:
                        item = Issue(Severity.ERROR, f"grant {item.external_id} has a second "
                                     f"{values.get('kind') or DEFAULT_KIND} row; skipped", where,
                                     "duplicate-row")
                    seen.add(key)
                yield item
        except UnicodeDecodeError as exc:
            raise FileRejected(f"not {text.encoding} text ({exc.reason}); save the file as "
                               "UTF-8 or pass the encoding option", f"row {row_no + 1}") from None
        except csv.Error as exc:
            raise FileRejected(f"unreadable CSV: {exc}", f"row {row_no + 1}") from None

    def _record(self, v: dict[str, str], where: str, *, decimal_comma: bool) -> FlowRecord | Issue:
        def error(message: str, code: str) -> Issue:
            return Issue(Severity.ERROR, f"{message}; row skipped", where, code)

        for column in REQUIRED:
            if not v.get(column):
                return error(f"{column} is empty", f"no-{column}")
        raw_amount = v["amount"].replace(" ", "")
        if decimal_comma and raw_amount.count(",") == 1 and "." not in raw_amount:
            raw_amount = raw_amount.replace(",", ".")
        elif THOUSANDS_RE.match(raw_amount):
            raw_amount = raw_amount.replace(",", "")
        try:
            amount = parse_amount(raw_amount)
        except AmountError as exc:
            return error(f"amount: {exc}", "bad-amount")
        currency = v["currency"].upper()
        if not CURRENCY_RE.match(currency):
            return error(f"currency {v['currency']!r} is not a three-letter ISO 4217 code",
                         "bad-currency")
        try:
            when = date.fromisoformat(v["date"])
        except ValueError:
            return error(f"date {v['date']!r} is not an ISO date (YYYY-MM-DD)", "bad-date")
        kind_text = (v.get("kind") or DEFAULT_KIND).lower()
        kind = KINDS.get(kind_text)
        if kind is None:
            return error(f"kind {kind_text!r} is not one of {', '.join(KINDS)}", "bad-kind")
        country = (v.get("country") or "").upper() or None
        if country and not COUNTRY_RE.match(country):
            return error(f"country {country!r} is not a two-letter ISO 3166 code", "bad-country")
        markers = []
        if v.get("gender_marker"):
            if v["gender_marker"] not in ("0", "1", "2"):
                return error(f"gender_marker {v['gender_marker']!r} is not 0, 1 or 2",
                             "bad-gender-marker")
            markers.append(PolicyMarker(code="1", vocabulary="1", significance=v["gender_marker"]))
        sector = (v.get("sector") or "").strip() or None
        if sector and not (sector.isdigit() and len(sector) in (3, 5)):
            return error(f"sector {sector!r} is not a DAC 3- or 5-digit code", "bad-sector")
        donor = OrgRef(ref=v.get("donor_ref") or None, name=v["donor"])
        return FlowRecord(
            kind=kind,
            amount=amount,
            currency=currency,
            value_date=when,
            transaction_date=when,
            provider=donor,
            receiver=OrgRef(ref=v.get("recipient_ref") or None, name=v["recipient"]),
            description=v.get("purpose") or None,
            external_id=(f"{v['grant_id']}:{kind_text}" if v.get("grant_id") else None),
            ref=v.get("grant_id") or None,
            reporting_org=donor,
            recipient_country=country,
            sector=Coded(sector, "1" if len(sector) == 5 else "2") if sector else None,
            policy_markers=markers,
            extra={"source_format": "simple_grants"},
            location=where,
        )


IMPORTER = SimpleGrantsImporter()


@hookimpl
def fundtrack_importers() -> list[Any]:
    return [IMPORTER]


__all__ = ["IMPORTER", "SimpleGrantsImporter", "fundtrack_importers"]
