"""OECD DAC Creditor Reporting System (CRS) activity-level records: bulk text and CSV.

Reads the CRS bulk download (``CRS 2019 data.txt``: ``|``-delimited, header of OECD names
such as ``Year|DonorCode|...|CrsID|...|USD_Disbursement|...``) and CSV exports, including
the snake_case layout of relational copies (``donor_code``, ``usd_disbursement``,
``usd_disbursement_deflated`` ...). Column names are matched without regard to case and
punctuation, so ``USD_Disbursement`` and ``usd_disbursement`` are the same column.

The file is read line by line (a 500 MB bulk file never sits in memory).

**Encoding.** An explicit ``encoding`` option wins. Otherwise: a byte-order mark (UTF-8,
UTF-16; the OECD's UTF-16 files carry extra BOMs mid-file, and NULs inside fields, both
removed); UTF-16 without a BOM when every other byte of the start is NUL; UTF-8 when the
start decodes as UTF-8; else a single-byte Western file (cp1252 / Latin-1) with a warning
naming the guess. Bytes that do not decode later on reject the file with the line and a
hint to name the encoding.

**Lines.** Real bulk files end records with CRLF and have bare LF inside descriptions: in
a CRLF file a bare line break is joined into the field (with a space). CSV files follow
RFC 4180 quoting.

**Units.** The OECD bulk files and their relational copies give ``USD_*`` amounts in USD
*millions* (``0.529`` is USD 529,000), current prices; ``*_Defl`` columns are constant
prices. An amount column whose header names its unit (``thousand``, ``000``, ``million``,
``units``) is read in that unit, and the ``unit`` option (``millions``, ``thousands``,
``units``) overrides both. Amounts are scaled exactly (Decimal); the text as reported and
its unit are kept in ``extra["reported_usd"]``.

**Mapping** (one CRS row gives up to three flows, one per non-zero amount):

- ``USD_Commitment`` -> OUTGOING_COMMITMENT (dated ``commitmentdate``, else 31 December of
  ``Year``); ``USD_Disbursement`` -> DISBURSEMENT (31 December of ``Year``: CRS amounts
  are annual); ``USD_Received`` (reflows, loan principal repaid) -> LOAN_REPAYMENT from
  the recipient to the agency, kept but not aid. Empty and zero amounts are not flows.
- provider: the extending agency, ref ``XM-DAC-<DonorCode>-<AgencyCode>`` (the OECD DAC
  agency list, the ``XM-DAC`` registration agency of IATI's org-id list); donor and agency
  codes and names are in ``extra``.
- receiver: the channel of delivery. A channel code naming one organisation (not a
  category ending in ``000``) gives ref ``XM-DAC-<ChannelCode>`` - the identifier IATI
  uses for multilaterals (``XM-DAC-41114`` is UNDP); the name is ChannelReportedName or
  ChannelName. The code is kept in ``extra["channel_code"]`` (not in
  ``disbursement_channel``, which holds IATI's 1-4 codes).
- recipient: a DAC regional code (``298`` Africa, regional ...) -> ``recipient_region``
  (vocabulary 1); a country -> ``recipient_country`` by its name (ISO alpha-2, see
  :mod:`importers.countries`; no match: code and name stay in ``extra``, with a warning).
- ``PurposeCode`` -> sector (vocabulary 1); ``Category`` -> flow type (10 ODA, 21 OOF ...);
  ``Finance_t`` -> finance type; ``Aid_t`` -> aid type; ``FlowCode``/``FlowName`` and
  ``Bi_Multi`` -> ``extra``; purpose codes 7xxxx -> humanitarian.
- policy markers on the flow (vocabulary 1): Gender 1, Environment 2, PDGG 3, Trade 4,
  Biodiversity 5, ClimateMitigation 6, ClimateAdaptation 7, Desertification 8, RMNCH 9,
  DRR 10, Disability 11, Nutrition 12; significance kept as reported.
- identity: reporting organisation ``XM-OECD-CRS``; ``external_id`` =
  ``<Year>-<DonorCode>-<AgencyCode>-<CrsID>-<n>-<C|D|R>`` where n counts the rows of that
  CrsID in the file. Re-importing a corrected file of the same year replaces flows row for
  row; a project with fewer rows in the correction leaves its extra old rows current
  (revert the old batch first).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any, BinaryIO

from fundtrack.hookspecs import hookimpl
from fundtrack.ingest.filesafety import Prefixed
from fundtrack.money import SUM_CONTEXT, AmountError, parse_amount
from fundtrack.plugins import SNIFF_BYTES, ImportContext
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
from importers.countries import iso2_for_name

REPORTING_ORG = OrgRef(ref="XM-OECD-CRS", name="OECD DAC Creditor Reporting System")

#: (OECD bulk-file name, other spellings) for every column the importer reads.
COLUMNS: dict[str, tuple[str, ...]] = {
    "Year": (), "DonorCode": (), "DonorName": (), "AgencyCode": (), "AgencyName": (),
    "CrsID": (), "ProjectNumber": (), "InitialReport": (), "RecipientCode": (),
    "RecipientName": (), "RegionCode": (), "RegionName": (),
    "IncomegroupName": ("income_group_name",), "FlowCode": (), "FlowName": (),
    "Bi_Multi": ("bilateral_multilateral",), "Category": (), "Finance_t": ("finance_type",),
    "Aid_t": ("aid_type",), "USD_Commitment": (), "USD_Disbursement": (), "USD_Received": (),
    "USD_Commitment_Defl": ("usd_commitment_deflated",),
    "USD_Disbursement_Defl": ("usd_disbursement_deflated",),
    "USD_Received_Defl": ("usd_received_deflated",),
    "CurrencyCode": (), "Commitment_National": (), "Disbursement_National": (),
    "ShortDescription": (), "ProjectTitle": (), "PurposeCode": (), "PurposeName": (),
    "SectorCode": (), "ChannelCode": (), "ChannelName": (), "ChannelReportedName": (),
    "ParentChannelCode": ("channel_parent_category",), "ExpectedStartDate": (),
    "CompletionDate": (), "LongDescription": (), "commitmentdate": (),
    "GrantElement": (), "USD_GrantEquiv": ("usd_grant_equivalent",),
    "Gender": (), "Environment": (), "PDGG": (), "Trade": (), "Biodiversity": (),
    "ClimateMitigation": (), "ClimateAdaptation": (), "Desertification": (), "RMNCH": (),
    "DRR": (), "Disability": (), "Nutrition": (),
}
MARKERS = {"Gender": "1", "Environment": "2", "PDGG": "3", "Trade": "4", "Biodiversity": "5",
           "ClimateMitigation": "6", "ClimateAdaptation": "7", "Desertification": "8",
           "RMNCH": "9", "DRR": "10", "Disability": "11", "Nutrition": "12"}
AMOUNTS = (
    ("USD_Commitment", FlowKind.OUTGOING_COMMITMENT, "C", "Commitment_National"),
    ("USD_Disbursement", FlowKind.DISBURSEMENT, "D", "Disbursement_National"),
    ("USD_Received", FlowKind.LOAN_REPAYMENT, "R", None),
)
#: OECD DAC regional recipient codes (IATI Region vocabulary 1).
REGION_CODES = frozenset({
    "88", "89", "189", "289", "298", "380", "389", "489", "498", "589", "619", "679", "689",
    "789", "798", "889", "998", "1027", "1028", "1029", "1030", "1031", "1032", "1033", "1034",
    "1035",
})
EXTRA_FIELDS = {
    "DonorCode": "donor_code", "DonorName": "donor_name", "AgencyCode": "agency_code",
    "AgencyName": "agency_name", "CrsID": "crs_id", "ProjectNumber": "project_number",
    "InitialReport": "initial_report", "RecipientCode": "recipient_code",
    "RecipientName": "recipient_name", "RegionName": "region_name",
    "IncomegroupName": "income_group", "FlowCode": "crs_flow_code", "FlowName": "crs_flow_name",
    "Bi_Multi": "bi_multi", "PurposeName": "purpose_name", "SectorCode": "crs_sector_code",
    "ChannelCode": "channel_code", "ChannelName": "channel_name",
    "ChannelReportedName": "channel_reported_name", "ParentChannelCode": "parent_channel_code",
    "ProjectTitle": "project_title", "LongDescription": "long_description",
    "CurrencyCode": "dac_currency_code", "ExpectedStartDate": "expected_start_date",
    "CompletionDate": "completion_date", "GrantElement": "grant_element",
    "USD_GrantEquiv": "usd_grant_equivalent_millions",
}
UNITS = {"millions": Decimal(1_000_000), "thousands": Decimal(1000), "units": Decimal(1)}
UNIT_LABELS = {"millions": "USD million", "thousands": "USD thousand", "units": "USD"}
UNIT_SUFFIX = re.compile(r"(in)?(usd)?(thousands?|millions?|mln|units?|000)$")
DELIMITERS = ("|", "\t", ";", ",")
MAX_LIST = 10


def key(name: str) -> str:
    """Header names compared without case or punctuation: ``USD_Disbursement`` = ``usd_disbursement``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


ALIASES: dict[str, str] = {}
for _name, _others in COLUMNS.items():
    for _alias in (_name, *_others):
        ALIASES[key(_alias)] = _name

SNIFF_NEEDS = ({"donorcode"}, {"recipientcode"}, {"usdcommitment", "usddisbursement"})


# -- bytes to lines ------------------------------------------------------------------------

def detect_encoding(head: bytes, explicit: str | None = None) -> tuple[str, str | None]:
    """The encoding to read with, and a warning when it is a guess."""
    if explicit:
        try:
            codecs.lookup(explicit)
        except LookupError:
            raise FileRejected(f"unknown encoding {explicit!r}") from None
        return explicit, None
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", None
    sample = head[:2000]
    if len(sample) >= 4:
        if sample[1::2].count(0) > len(sample) // 4 * 1.6 and sample[0::2].count(0) == 0:
            return "utf-16-le", None
        if sample[0::2].count(0) > len(sample) // 4 * 1.6 and sample[1::2].count(0) == 0:
            return "utf-16-be", None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8", None
    except UnicodeDecodeError:
        pass
    if any(b in head for b in (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")):
        return "latin-1", ("no byte-order mark and not UTF-8: read as Latin-1 (ISO-8859-1); "
                           "name the encoding with the 'encoding' option if names look wrong")
    return "cp1252", ("no byte-order mark and not UTF-8: read as Windows-1252 (Latin-1 "
                      "family); name the encoding with the 'encoding' option if names look wrong")


def _clean(text: str) -> str:
    return text.replace("\ufeff", "").replace("\x00", "")


def _header_delimiter(line: str, explicit: str | None) -> str:
    if explicit:
        return {"tab": "\t", "pipe": "|", "comma": ",", "semicolon": ";"}.get(explicit, explicit)
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    if counts[best] == 0:
        raise FileRejected("the header line has no '|', tab, ';' or ',' delimiter", "line 1")
    return best


def _records(text: Iterable[str], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) per record, header included."""
    if delimiter == ",":
        chunks = (_clean(c) for c in text)
        reader = csv.reader(chunks, delimiter=",")
        last = 0
        for row in reader:
            yield last + 1, row
            last = reader.line_num
        return
    line_no = 0
    crlf: bool | None = None
    pending: list[str] = []
    start = 1
    for chunk in text:
        line_no += 1
        if not pending:
            start = line_no
        if crlf is None:
            crlf = chunk.endswith("\r\n")
        if crlf and not chunk.endswith("\r\n") and chunk.endswith(("\n", "\r")):
            pending.append(chunk.rstrip("\r\n"))  # a line break inside a field
            continue
        pending.append(chunk.rstrip("\r\n"))
        line = _clean(" ".join(pending))
        pending = []
        yield start, next(csv.reader([line], delimiter=delimiter))
    if pending:
        yield start, next(csv.reader([_clean(" ".join(pending))], delimiter=delimiter))


# -- rows to records -----------------------------------------------------------------------

def _code(value: str | None) -> str | None:
    """A code as text: ``5.0`` (a spreadsheet's number) -> ``5``."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"-?\d+\.0+", value):
        value = value.split(".")[0]
    return value or None


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _unit_of(header: str, option: str | None) -> tuple[str, Decimal]:
    if option:
        unit = option.lower().removeprefix("usd_").removeprefix("usd ")
        if unit not in UNITS:
            raise FileRejected(f"unknown unit {option!r}; use millions, thousands or units")
        return unit, UNITS[unit]
    low = header.lower()
    if "thousand" in low or re.search(r"(^|[^0-9])000($|[^0-9])", low):
        return "thousands", UNITS["thousands"]
    if "unit" in low:
        return "units", UNITS["units"]
    return "millions", UNITS["millions"]  # OECD bulk files and their copies (also "million")


class _RowReader:
    def __init__(self, header: list[str], options: dict[str, Any]) -> None:
        self.header = header
        self.index: dict[str, int] = {}
        for i, name in enumerate(header):
            canonical = ALIASES.get(key(name)) or ALIASES.get(UNIT_SUFFIX.sub("", key(name)))
            if canonical and canonical not in self.index:
                self.index[canonical] = i
        self.units = {col: _unit_of(header[self.index[col]], options.get("unit"))
                      for col, _, _, _ in AMOUNTS if col in self.index}
        self.occurrence: Counter[str] = Counter()
        self.unmatched: dict[str, int] = {}
        self.empty_rows: list[int] = []
        self.issues: list[Issue] = []

    def get(self, row: list[str], name: str) -> str | None:
        i = self.index.get(name)
        if i is None or i >= len(row):
            return None
        value = row[i].strip()
        return value or None

    def row(self, line: int, row: list[str]) -> list[FlowRecord]:
        get = self.get
        where = f"line {line}"
        year_text = _code(get(row, "Year"))
        if not year_text or not year_text.isdigit():
            self.issues.append(Issue(Severity.ERROR, f"Year {year_text!r} is not a year; row "
                                     "skipped", f'{where}, column "{self.header[self.index["Year"]]}"',
                                     "bad-year"))
            return []
        year = int(year_text)
        donor, agency = _code(get(row, "DonorCode")), _code(get(row, "AgencyCode"))
        crs_id = get(row, "CrsID") or get(row, "ProjectNumber") or f"line{line}"
        base = f"{year}-{donor}-{agency}-{crs_id}"
        self.occurrence[base] += 1
        base = f"{base}-{self.occurrence[base]}"
        where = f"line {line} (CrsID {crs_id})"
        agency_org = OrgRef(
            ref=f"XM-DAC-{donor}-{agency}" if donor and agency else
            (f"XM-DAC-{donor}" if donor else None),
            name=get(row, "AgencyName") or get(row, "DonorName"))
        channel = _code(get(row, "ChannelCode"))
        channel_name = get(row, "ChannelReportedName") or get(row, "ChannelName")
        channel_org = OrgRef(
            ref=f"XM-DAC-{channel}" if channel and channel.isdigit() and not channel.endswith("000")
            else None, name=channel_name)
        recipient_code = _code(get(row, "RecipientCode"))
        recipient_name = get(row, "RecipientName")
        country = region = None
        if recipient_code in REGION_CODES:
            region = recipient_code
        elif recipient_name:
            country = iso2_for_name(recipient_name)
            if country is None:
                label = f"{recipient_name} (DAC code {recipient_code})"
                if label not in self.unmatched:
                    self.unmatched[label] = line
        purpose = _code(get(row, "PurposeCode"))
        extra: dict[str, str] = {}
        for col, name in EXTRA_FIELDS.items():
            value = get(row, col)
            if value is not None:
                extra[name] = _code(value) if col.endswith("Code") else value
        markers = []
        for col, code in MARKERS.items():
            sig = _code(get(row, col))
            if sig is not None:
                markers.append(PolicyMarker(code, "1", sig))
                extra[f"policy_marker_{code}"] = sig  # the ledger keeps markers per activity only
        flows: list[FlowRecord] = []
        end_of_year = date(year, 12, 31)
        for col, kind, suffix, national in AMOUNTS:
            if col not in self.index:
                continue
            text = get(row, col)
            if text is None:
                continue
            try:
                reported = parse_amount(text)
            except AmountError as exc:
                self.issues.append(Issue(Severity.ERROR, f"{exc}; this amount skipped",
                                         f'{where}, column "{self.header[self.index[col]]}"',
                                         "bad-amount"))
                continue
            if reported == 0:
                continue
            unit, scale = self.units[col]
            amount = SUM_CONTEXT.multiply(reported, scale)
            flow_extra = dict(extra)
            flow_extra["reported_usd"] = f"{text} {UNIT_LABELS[unit]}"
            defl = get(row, f"{col}_Defl")
            if defl is not None:
                flow_extra["reported_usd_deflated"] = f"{defl} {UNIT_LABELS[unit]} (constant prices)"
            if national and get(row, national) is not None:
                flow_extra["national_amount"] = get(row, national) or ""
            when = end_of_year
            if kind is FlowKind.OUTGOING_COMMITMENT:
                when = _day(get(row, "commitmentdate")) or end_of_year
                flow_extra["date_basis"] = ("commitment date" if _day(get(row, "commitmentdate"))
                                            else "end of reporting year")
            else:
                flow_extra["date_basis"] = "end of reporting year"
            provider, receiver = agency_org, channel_org
            if kind is FlowKind.LOAN_REPAYMENT:
                provider, receiver = OrgRef(name=recipient_name), agency_org
            flows.append(FlowRecord(
                kind=kind, amount=amount, currency="USD", value_date=when, transaction_date=when,
                provider=provider, receiver=receiver,
                description=get(row, "ShortDescription") or get(row, "ProjectTitle"),
                ref=get(row, "CrsID"), external_id=f"{base}-{suffix}",
                reporting_org=REPORTING_ORG,
                sector=Coded(purpose, "1") if purpose else None,
                recipient_country=country, recipient_region=region,
                aid_type=_code(get(row, "Aid_t")), flow_type=_code(get(row, "Category")),
                finance_type=_code(get(row, "Finance_t")),
                humanitarian=True if purpose and purpose.startswith("7") else None,
                usd_amount=amount, usd_rate=Decimal(1), policy_markers=list(markers),
                extra=flow_extra, location=f"{where}, {self.header[self.index[col]]}",
            ))
        if not flows:
            self.empty_rows.append(line)
        return flows

    def closing_issues(self) -> list[Issue]:
        out = []
        for label, line in sorted(self.unmatched.items(), key=lambda x: x[1]):
            out.append(Issue(Severity.WARNING, f"recipient {label} matches no ISO country; "
                             "kept in extra without a recipient country", f"line {line}",
                             "unknown-recipient"))
        if self.empty_rows:
            shown = ", ".join(str(n) for n in self.empty_rows[:MAX_LIST])
            more = " ..." if len(self.empty_rows) > MAX_LIST else ""
            out.append(Issue(Severity.WARNING, f"{len(self.empty_rows)} row(s) carry no non-zero "
                             "USD commitment, disbursement or received amount; nothing imported "
                             "from them", f"lines {shown}{more}", "no-amount"))
        return out


class CrsImporter:
    """OECD CRS activity-level records (bulk ``|`` text and CSV)."""

    name = "crs"
    version = "1.0.0"
    title = "OECD DAC CRS activity-level records (bulk download text, CSV)"

    def sniff(self, head: bytes, filename: str) -> float | None:
        try:
            encoding, _ = detect_encoding(head)
            text = head.decode(encoding, errors="replace")
        except (FileRejected, LookupError):
            return None
        first = _clean(text).lstrip().split("\n", 1)[0]
        fields = re.split(r"[|\t;,]", first)
        if not re.fullmatch(r'"?[A-Za-z_][A-Za-z0-9_ ]*"?', fields[0].strip()):
            return None  # not a header line (an SQL dump, prose ...)
        names = {key(n) for n in fields}
        names = {ALIASES.get(n, n).lower().replace("_", "") for n in names}
        return 0.9 if all(names & need for need in SNIFF_NEEDS) else None

    def parse(self, stream: BinaryIO, context: ImportContext) -> Iterator[Record | Issue]:
        options = context.options or {}
        head = stream.read(SNIFF_BYTES)
        encoding, guess = detect_encoding(head, options.get("encoding"))
        if guess:
            yield Issue(Severity.WARNING, guess, "line 1", "encoding-guessed")
        raw = io.BufferedReader(Prefixed(head, stream), 1 << 16)
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        line = 0
        try:
            first = text.readline()
            header_line = _clean(first).rstrip("\r\n")
            delimiter = _header_delimiter(header_line, options.get("delimiter"))
            header = next(csv.reader([header_line], delimiter=delimiter))
            header = [h.strip() for h in header]
            reader = _RowReader(header, options)
            missing = [c for c in ("Year", "DonorCode") if c not in reader.index]
            if missing or not reader.units:
                raise FileRejected(
                    "not a CRS file: the header lacks " + ", ".join(
                        missing + ([] if reader.units else ["USD_Commitment/USD_Disbursement"])),
                    "line 1")
            rest = _chain_first(first, text)
            records = _records(rest, delimiter)
            next(records)  # the header again
            width = len(header)
            for line, row in records:
                if not any(f.strip() for f in row):
                    continue
                if len(row) == width + 1 and not row[-1].strip():
                    row = row[:-1]
                if len(row) != width:
                    yield Issue(Severity.ERROR, f"{len(row)} fields where the header has {width}; "
                                "row skipped", f"line {line}", "bad-row")
                    continue
                flows = reader.row(line, row)
                yield from reader.issues
                reader.issues.clear()
                yield from flows
        except UnicodeDecodeError as exc:
            raise FileRejected(
                f"the file is not valid {encoding} ({exc.reason}); name its encoding with the "
                "'encoding' option (e.g. utf-16, latin-1)", f"after line {line}") from None
        except csv.Error as exc:
            raise FileRejected(f"unreadable CSV: {exc}", f"line {line}") from None
        yield from reader.closing_issues()


def _chain_first(first: str, rest: Iterable[str]) -> Iterator[str]:
    yield first
    yield from rest


CRS = CrsImporter()


@hookimpl
def fundtrack_importers() -> list[Any]:
    return [CRS]
