"""Spreadsheets (XLSX, CSV) read through a declarative TOML mapping.

A donor's own expenditure sheet has no standard shape, so the shape is declared, not
coded: the mapping names the sheet(s) and header row, which column (or constant, or
template of columns) goes to which field of the canonical :class:`FlowRecord`, value maps
(e.g. "Deposit" -> INCOMING_FUNDS), date formats, and rows to skip. ``docs/mappings.md``
is the guide and full reference; shipped mappings are in ``fundtrack/data/mappings``.

The mapping reaches the importer as ``context.options["mapping"]`` (a path;
``fundtrack import --mapping FILE``). Without one, the importer uses a shipped mapping
only if its ``[match] headers`` all appear in one header row of the file (sniffing is
just as conservative: a file is claimed only when a shipped mapping clearly matches).

Every row becomes at most one flow per ``[[sheet]]`` entry. Problems are reported where
they are: ``sheet "Expenditure", row 14, column "Amount"``. A formula in a mapped cell is
never evaluated: the row is skipped with an error that says so.
"""

from __future__ import annotations

import difflib
import html
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import fundtrack
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
    Coded,
    FileRejected,
    FlowKind,
    FlowRecord,
    Issue,
    OrgRef,
    PolicyMarker,
    Record,
    Severity,
    flow_kind_from_code,
)

SHIPPED = Path(fundtrack.__file__).resolve().parent / "data" / "mappings"
HEADER_SCAN_ROWS = 20

#: The canonical fields a mapping may fill, with a one-line meaning (the doc's reference
#: table is checked against this by a test).
FIELDS: dict[str, str] = {
    "kind": "flow kind: INCOMING_FUNDS, DISBURSEMENT, EXPENDITURE, OUTGOING_COMMITMENT ... "
            "or an IATI transaction type code (1-13)",
    "amount": "the amount, exact (numbers as written; text with the [source] separators)",
    "currency": "ISO 4217 code of the amount",
    "value_date": "date of the value (used for the USD rate)",
    "transaction_date": "date of the transaction",
    "provider_ref": "organisation identifier of who the money comes from",
    "provider_name": "name of who the money comes from",
    "provider_activity_id": "the provider's activity (project) identifier",
    "provider_type": "IATI organisation type code of the provider",
    "receiver_ref": "organisation identifier of who receives the money",
    "receiver_name": "name of who receives the money",
    "receiver_activity_id": "the receiver's activity (project) identifier",
    "receiver_type": "IATI organisation type code of the receiver",
    "reporting_org_ref": "identifier of the organisation reporting the sheet (required)",
    "reporting_org_name": "name of the organisation reporting the sheet",
    "activity_identifier": "the project this flow belongs to",
    "external_id": "stable identifier of the row; a re-import replaces rows with the same id",
    "ref": "the report's own reference for the transaction",
    "description": "free text",
    "sector": "sector code (DAC 5-digit unless sector_vocabulary says otherwise)",
    "sector_vocabulary": "IATI sector vocabulary code (default 1, DAC 5-digit)",
    "recipient_country": "ISO 3166-1 alpha-2 country code",
    "recipient_region": "IATI region code",
    "aid_type": "DAC aid type code",
    "flow_type": "DAC flow type code",
    "finance_type": "DAC finance type code",
    "earmarking": "Grand Bargain earmarking category 1-4",
    "humanitarian": "yes/no, true/false, 1/0",
    "gender_marker": "OECD DAC gender equality marker significance (0, 1, 2)",
    "usd_amount": "the report's own USD amount",
    "usd_rate": "the report's own rate, USD per one unit of the currency",
}
REQUIRED_FIELDS = ("kind", "amount", "reporting_org_ref")
SPEC_KEYS = {"column", "value", "template", "map", "default", "format", "scale", "unmapped",
             "optional", "transform"}
CONDITION_TESTS = {"equals", "matches", "empty", "not_empty", "in"}
TEMPLATE_REF = re.compile(r"\{([^{}]+)\}")


def norm(text: Any) -> str:
    """Header and value-map key normalisation: case, spaces, "&", leading "1." numbering."""
    t = str(text if text is not None else "").replace("\u00a0", " ").casefold()
    t = re.sub(r"\s+", " ", t).strip()
    return t


def norm_key(text: Any) -> str:
    t = norm(text).replace("&", " and ")
    t = re.sub(r"^\(?\d+(\.\d+)*[.)]?\s+", "", t)
    t = re.sub(r"[^\w]+", " ", t)
    return re.sub(r"\s+", " ", t).strip()


# -- the mapping ------------------------------------------------------------------------------


class MappingError(FileRejected):
    """The mapping file itself is wrong; the message says where in it."""


@dataclass
class Spec:
    """How one field gets its value."""

    column: str | None = None
    value: Any = None
    template: str | None = None
    map: dict[str, Any] | None = None
    default: Any = None
    format: str | None = None
    scale: Decimal | None = None
    unmapped: str = "keep"  # keep | empty | error
    optional: bool = False
    transform: str | None = None  # upper | lower | id

    def columns(self) -> list[str]:
        if self.column:
            return [self.column]
        if self.template:
            return TEMPLATE_REF.findall(self.template)
        return []


@dataclass
class Condition:
    column: str
    test: str
    arg: Any = None

    def holds(self, text: str | None) -> bool:
        if self.test == "empty":
            return not text
        if self.test == "not_empty":
            return bool(text)
        if self.test == "equals":
            return norm(text) == norm(self.arg)
        if self.test == "in":
            return norm(text) in {norm(a) for a in self.arg}
        return bool(re.search(self.arg, text or ""))


@dataclass
class SheetMap:
    """One ``[[sheet]]`` entry: a pass over every sheet it applies to."""

    index: int
    name: str | None
    header_row: int | None
    fields: dict[str, Spec]
    extra: dict[str, Spec]
    skip: list[Condition] = field(default_factory=list)
    keep: list[Condition] = field(default_factory=list)
    required: bool = False

    def needed_columns(self) -> set[str]:
        cols = {c for s in [*self.fields.values(), *self.extra.values()] if not s.optional
                for c in s.columns()}
        cols |= {c.column for c in [*self.skip, *self.keep]}
        return cols

    @property
    def label(self) -> str:
        return f"[[sheet]] {self.index}" + (f' ("{self.name}")' if self.name else "")


@dataclass
class Mapping:
    name: str
    title: str
    path: str
    sheets: list[SheetMap]
    match_headers: list[str]
    encoding: str | None = None
    delimiter: str | None = None
    thousands: str = ","
    decimal: str = "."


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; a mistake raises :class:`MappingError` naming where."""
    p = Path(path)
    where = f"mapping {p.name}"
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"cannot read the mapping: {exc}", where) from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"the mapping is not valid TOML: {exc}", where) from None
    except UnicodeDecodeError:
        raise MappingError("the mapping must be saved as UTF-8", where) from None
    _known(data, {"mapping", "source", "match", "defaults", "sheet"}, where)
    meta = data.get("mapping", {})
    source = data.get("source", {})
    _known(source, {"encoding", "delimiter", "thousands", "decimal"}, f"{where} [source]")
    defaults = _specs(data.get("defaults", {}), f"{where} [defaults]", FIELDS)
    sheets_raw = data.get("sheet")
    if not isinstance(sheets_raw, list) or not sheets_raw:
        raise MappingError("the mapping has no [[sheet]] entry", where)
    sheets = []
    for i, raw in enumerate(sheets_raw, start=1):
        at = f"{where} [[sheet]] {i}"
        _known(raw, {"name", "header_row", "fields", "extra", "skip", "keep", "required"}, at)
        fields = {**defaults, **_specs(raw.get("fields", {}), f"{at} fields", FIELDS)}
        for req in REQUIRED_FIELDS:
            if req not in fields:
                raise MappingError(f"field {req!r} is required (in fields or [defaults])", at)
        extra = _specs(raw.get("extra", {}), f"{at} extra", None)
        hr = raw.get("header_row")
        if hr is not None and (not isinstance(hr, int) or hr < 1):
            raise MappingError("header_row must be a row number (1 = first row)", at)
        sheets.append(SheetMap(
            index=i, name=raw.get("name"), header_row=hr, fields=fields, extra=extra,
            skip=_conditions(raw.get("skip", []), f"{at} skip"),
            keep=_conditions(raw.get("keep", []), f"{at} keep"),
            required=bool(raw.get("required", False)),
        ))
    match = data.get("match", {})
    return Mapping(
        name=str(meta.get("name") or p.stem), title=str(meta.get("title") or p.stem),
        path=str(p), sheets=sheets, match_headers=list(match.get("headers", [])),
        encoding=source.get("encoding"), delimiter=source.get("delimiter"),
        thousands=source.get("thousands", ","), decimal=source.get("decimal", "."),
    )


def _known(table: Any, allowed: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise MappingError("expected a table", where)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise MappingError(f"unknown key {key!r}{hint}; allowed: {', '.join(sorted(allowed))}",
                               where)


def _specs(table: Any, where: str, allowed: dict[str, str] | None) -> dict[str, Spec]:
    if not isinstance(table, dict):
        raise MappingError("expected a table", where)
    out: dict[str, Spec] = {}
    for name, raw in table.items():
        if allowed is not None and name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise MappingError(f"unknown field {name!r}{hint}; see docs/mappings.md", where)
        at = f"{where}.{name}"
        if isinstance(raw, str):
            raw = {"column": raw}
        if not isinstance(raw, dict):
            raise MappingError("a field is a column title or a table like { column = \"...\" }", at)
        _known(raw, SPEC_KEYS, at)
        sources = [k for k in ("column", "value", "template") if k in raw]
        if len(sources) != 1:
            raise MappingError("give exactly one of column, value or template", at)
        scale = raw.get("scale")
        try:
            scale_d = Decimal(str(scale)) if scale is not None else None
        except InvalidOperation:
            raise MappingError(f"scale {scale!r} is not a number", at) from None
        if raw.get("unmapped", "keep") not in ("keep", "empty", "error"):
            raise MappingError("unmapped must be keep, empty or error", at)
        mapping = raw.get("map")
        if mapping is not None and not isinstance(mapping, dict):
            raise MappingError("map must be a table of value = replacement", at)
        out[name] = Spec(
            column=raw.get("column"), value=raw.get("value"), template=raw.get("template"),
            map={norm_key(k): v for k, v in mapping.items()} if mapping else None,
            default=raw.get("default"), format=raw.get("format"), scale=scale_d,
            unmapped=raw.get("unmapped", "keep"), optional=bool(raw.get("optional", False)),
            transform=raw.get("transform"),
        )
        if name == "kind" and out[name].value is not None and _kind(out[name].value) is None:
            raise MappingError(f"unknown flow kind {out[name].value!r}", at)
    return out


def _conditions(raw: Any, where: str) -> list[Condition]:
    if isinstance(raw, dict):
        raw = [raw]
    out = []
    for n, c in enumerate(raw or [], start=1):
        at = f"{where} {n}"
        if not isinstance(c, dict) or "column" not in c:
            raise MappingError("a condition is a table with a column and one test "
                               f"({', '.join(sorted(CONDITION_TESTS))})", at)
        tests = [k for k in c if k in CONDITION_TESTS]
        _known(c, {"column", *CONDITION_TESTS}, at)
        if len(tests) != 1:
            raise MappingError("give exactly one test per condition", at)
        test = tests[0]
        arg = c[test]
        if test == "matches":
            try:
                re.compile(arg)
            except re.error as exc:
                raise MappingError(f"bad regular expression {arg!r}: {exc}", at) from None
        out.append(Condition(c["column"], test, arg))
    return out


@lru_cache(maxsize=1)
def _shipped() -> tuple[Mapping, ...]:
    return tuple(load_mapping(p) for p in sorted(SHIPPED.glob("*.toml")))


def shipped_mappings() -> list[Mapping]:
    """The mappings shipped in ``fundtrack/data/mappings`` (read once per process)."""
    return list(_shipped())


# -- values -------------------------------------------------------------------------------------


class RowError(Exception):
    """A cell that cannot be read; the row is skipped with this message."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


def _kind(value: Any) -> FlowKind | None:
    if isinstance(value, FlowKind):
        return value
    text = str(value).strip()
    name = re.sub(r"[\s-]+", "_", text).upper()
    if name in FlowKind.__members__:
        return FlowKind[name]
    return flow_kind_from_code(text)


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        value = value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        value = value.isoformat()
    text = str(value).strip()
    return text or None


class _Row:
    """One data row with its header, giving cells by title."""

    def __init__(self, cells: list[Cell], columns: dict[str, int], titles: list[str]) -> None:
        self.cells = cells
        self.columns = columns
        self.titles = titles

    def cell(self, title: str) -> tuple[Cell, str]:
        i = self.columns.get(norm(title))
        if i is None:
            return Cell(), title
        c = self.cells[i] if i < len(self.cells) else Cell()
        return c, self.titles[i]

    def text(self, title: str) -> str | None:
        c, real = self.cell(title)
        if c.formula:
            raise RowError(f"formula {c.formula[:60]} is not evaluated; enter the value", real)
        if c.error:
            raise RowError(f"Excel error {c.error}", real)
        return _cell_text(c.value)


class _Values:
    """Evaluates field specs against a row."""

    def __init__(self, mapping: Mapping) -> None:
        self.m = mapping

    def raw(self, spec: Spec, row: _Row) -> tuple[Any, str | None]:
        """The value before conversion, and the column it came from."""
        if spec.value is not None:
            return spec.value, None
        if spec.template is not None:
            parts = []
            for piece in re.split(r"(\{[^{}]+\})", spec.template):
                if piece.startswith("{") and piece.endswith("}"):
                    parts.append(row.text(piece[1:-1]) or "")
                else:
                    parts.append(piece)
            return "".join(parts), None
        assert spec.column is not None
        c, real = row.cell(spec.column)
        if c.formula:
            raise RowError(f"formula {c.formula[:60]} is not evaluated; enter the value", real)
        if c.error:
            raise RowError(f"Excel error {c.error}", real)
        value = c.value
        if isinstance(value, str):
            value = value.strip() or None
        return value, real

    def get(self, spec: Spec, row: _Row) -> tuple[Any, str | None]:
        value, col = self.raw(spec, row)
        if spec.map is not None and value is not None:
            key = norm_key(_cell_text(value))
            if key in spec.map:
                value = spec.map[key]
            elif spec.unmapped == "error":
                raise RowError(f"value {_cell_text(value)!r} is not in the mapping's map "
                               f"({', '.join(sorted(spec.map))[:200]})", col)
            elif spec.unmapped == "empty":
                value = None
        if value is None or value == "":
            value = spec.default
        if isinstance(value, str) and spec.transform:
            if spec.transform == "upper":
                value = value.upper()
            elif spec.transform == "lower":
                value = value.lower()
            elif spec.transform == "id":
                value = re.sub(r"[^A-Za-z0-9._:/-]+", "-", value).strip("-")
        return value, col

    def text(self, spec: Spec | None, row: _Row) -> str | None:
        if spec is None:
            return None
        value, _ = self.get(spec, row)
        return _cell_text(value)

    def amount(self, spec: Spec, row: _Row) -> Decimal:
        value, col = self.get(spec, row)
        try:
            if value is None:
                raise AmountError("no amount")
            if isinstance(value, bool):
                raise AmountError(f"not an amount: {value!r}")
            if isinstance(value, int):
                amount = Decimal(value)
            elif isinstance(value, float):
                amount = parse_amount(repr(value))  # the number as written in the file
            elif isinstance(value, Decimal):
                amount = value
            else:
                amount = parse_amount(self._clean_number(str(value)))
        except AmountError as exc:
            raise RowError(str(exc), col) from None
        if spec.scale is not None:
            amount = amount * spec.scale
        return amount

    def _clean_number(self, text: str) -> str:
        t = text.strip().replace("\u00a0", "").replace(" ", "")
        negative = t.startswith("(") and t.endswith(")")
        if negative:
            t = t[1:-1]
        if self.m.thousands:
            group = re.escape(self.m.thousands)
            dec = re.escape(self.m.decimal)
            if re.fullmatch(rf"-?\d{{1,3}}({group}\d{{3}})+({dec}\d+)?", t):
                t = t.replace(self.m.thousands, "")
        if self.m.decimal != ".":
            t = t.replace(self.m.decimal, ".")
        return ("-" + t) if negative else t

    def date(self, spec: Spec | None, row: _Row) -> date | None:
        if spec is None:
            return None
        value, col = self.get(spec, row)
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        fmt = spec.format
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if fmt in (None, "%Y") and float(value).is_integer() and 1900 <= value <= 2200:
                return date(int(value), 1, 1)
            if fmt in (None, "excel") and 1 < value < 2958466:
                from openpyxl.utils.datetime import from_excel

                return from_excel(value).date()
            raise RowError(f"{value!r} is not a date", col)
        text = str(value).strip()
        try:
            if fmt and fmt != "excel":
                return datetime.strptime(text, fmt).date()
            if re.fullmatch(r"\d{4}", text):
                return date(int(text), 1, 1)
            return date.fromisoformat(text[:10])
        except ValueError:
            raise RowError(f"{text[:30]!r} is not a date in the form {fmt or 'YYYY-MM-DD'}",
                           col) from None


# -- reading tables ---------------------------------------------------------------------------


@dataclass
class Table:
    """A sheet (or the CSV) as rows of cells, read lazily."""

    name: str | None
    rows: Any  # callable -> Iterator[tuple[int, list[Cell]]]

    def prefix(self) -> str:
        return f'sheet "{self.name}", ' if self.name is not None else ""


def _find_header(table: Table, sm: SheetMap) -> tuple[int, list[str]] | None:
    needed = {norm(c) for c in sm.needed_columns()}
    for n, cells in table.rows():
        titles = [_cell_text(c.value) or "" for c in cells]
        if sm.header_row is not None:
            if n == sm.header_row:
                return n, titles
            continue
        if needed and needed <= {norm(t) for t in titles}:
            return n, titles
        if n >= HEADER_SCAN_ROWS:
            return None
    return None


def _headers_in(table: Table) -> set[str]:
    found: set[str] = set()
    for n, cells in table.rows():
        found |= {norm(_cell_text(c.value)) for c in cells if isinstance(c.value, str)}
        if n >= HEADER_SCAN_ROWS:
            break
    return found


class _Reader:
    def __init__(self, mapping: Mapping) -> None:
        self.m = mapping
        self.values = _Values(mapping)
        self.warned_no_id: set[int] = set()
        self.seen_ids: dict[tuple[str, str], str] = {}

    def run(self, tables: list[Table]) -> Iterator[Record | Issue]:
        applied = 0
        for sm in self.m.sheets:
            targets = [t for t in tables
                       if sm.name is None or t.name is None or norm(t.name) == norm(sm.name)]
            if sm.name is not None and not targets and sm.required:
                names = ", ".join(f'"{t.name}"' for t in tables)
                raise FileRejected(f'{sm.label} of mapping {self.m.name}: no sheet "{sm.name}" '
                                   f"(sheets: {names})", "workbook")
            for table in targets:
                found = _find_header(table, sm)
                if found is None:
                    if sm.required or (sm.name is not None and table.name is not None):
                        missing = self._missing(table, sm)
                        raise FileRejected(
                            f"{sm.label} of mapping {self.m.name}: header row not found; "
                            f"missing column(s) {', '.join(repr(c) for c in missing)}",
                            table.prefix() + f"rows 1-{HEADER_SCAN_ROWS}")
                    continue
                applied += 1
                yield from self.table(table, sm, *found)
        if not applied:
            raise FileRejected(
                f"no sheet matches mapping {self.m.name}: "
                + "; ".join(f"{sm.label} needs columns "
                            + ", ".join(repr(c) for c in sorted(sm.needed_columns()))
                            for sm in self.m.sheets),
                "workbook")

    def _missing(self, table: Table, sm: SheetMap) -> list[str]:
        have = _headers_in(table)
        return sorted(c for c in sm.needed_columns() if norm(c) not in have)

    def table(self, table: Table, sm: SheetMap, header_n: int,
              titles: list[str]) -> Iterator[Record | Issue]:
        prefix = table.prefix()
        columns: dict[str, int] = {}
        for i, t in enumerate(titles):
            if t:
                columns.setdefault(norm(t), i)
        missing = [c for c in sm.needed_columns() if norm(c) not in columns]
        if missing:
            raise FileRejected(f"{sm.label} of mapping {self.m.name}: missing column(s) "
                               f"{', '.join(repr(c) for c in sorted(missing))}",
                               f"{prefix}row {header_n}")
        width = max(columns.values()) + 1
        if "external_id" not in sm.fields and sm.index not in self.warned_no_id:
            self.warned_no_id.add(sm.index)
            yield Issue(Severity.WARNING, f"{sm.label} of mapping {self.m.name} builds no "
                        "external_id: a corrected re-upload will add rows instead of replacing "
                        "them", f"{prefix}row {header_n}", "no-external-id")
        for n, cells in table.rows():
            if n <= header_n:
                continue
            cells = cells[:width]
            if all(c.empty for c in cells):
                continue
            row = _Row(cells, columns, titles)
            where = f"{prefix}row {n}"
            try:
                if any(c.holds(row.text(c.column)) for c in sm.skip):
                    continue
                if sm.keep and not all(c.holds(row.text(c.column)) for c in sm.keep):
                    continue
                flow = self.flow(sm, row, where)
            except RowError as exc:
                loc = where + (f', column "{exc.column}"' if exc.column else "")
                yield Issue(Severity.ERROR, f"{exc.message}; row skipped", loc, "bad-cell")
                continue
            key = (flow.reporting_org.ref or "", flow.external_id or "") if flow.reporting_org \
                else ("", "")
            if flow.external_id:
                if key in self.seen_ids:
                    yield Issue(Severity.WARNING, f"external id {flow.external_id!r} also at "
                                f"{self.seen_ids[key]}; both kept, and a re-import replaces both",
                                where, "duplicate-external-id")
                else:
                    self.seen_ids[key] = where
            yield flow

    def flow(self, sm: SheetMap, row: _Row, where: str) -> FlowRecord:
        f = sm.fields
        v = self.values
        kind_value, kind_col = v.get(f["kind"], row)
        kind = _kind(kind_value) if kind_value is not None else None
        if kind is None:
            raise RowError(f"flow kind {_cell_text(kind_value)!r} is not known (use a map)",
                           kind_col)
        amount = v.amount(f["amount"], row)
        reporting = v.text(f["reporting_org_ref"], row)
        if not reporting:
            raise RowError("no reporting organisation", None)
        currency = v.text(f.get("currency"), row)
        if currency:
            currency = currency.upper()
            if not re.fullmatch(r"[A-Z]{3}", currency):
                raise RowError(f"currency {currency[:10]!r} is not an ISO 4217 code",
                               f["currency"].column)
        sector_code = v.text(f.get("sector"), row)
        sector = None
        if sector_code:
            sector = Coded(sector_code, v.text(f.get("sector_vocabulary"), row) or "1")
        earmarking = v.text(f.get("earmarking"), row)
        if earmarking is not None and earmarking not in ("1", "2", "3", "4"):
            raise RowError(f"earmarking {earmarking!r} is not 1-4", f["earmarking"].column)
        humanitarian = v.text(f.get("humanitarian"), row)
        gender = v.text(f.get("gender_marker"), row)
        extra = {name: text for name, spec in sm.extra.items()
                 if (text := v.text(spec, row)) is not None}
        usd_amount = v.amount(f["usd_amount"], row) if "usd_amount" in f else None
        usd_rate = v.amount(f["usd_rate"], row) if "usd_rate" in f else None
        return FlowRecord(
            kind=kind, amount=amount, currency=currency,
            value_date=v.date(f.get("value_date"), row),
            transaction_date=v.date(f.get("transaction_date"), row),
            provider=OrgRef(ref=v.text(f.get("provider_ref"), row),
                            name=v.text(f.get("provider_name"), row),
                            type=v.text(f.get("provider_type"), row),
                            activity_id=v.text(f.get("provider_activity_id"), row)),
            receiver=OrgRef(ref=v.text(f.get("receiver_ref"), row),
                            name=v.text(f.get("receiver_name"), row),
                            type=v.text(f.get("receiver_type"), row),
                            activity_id=v.text(f.get("receiver_activity_id"), row)),
            description=v.text(f.get("description"), row),
            ref=v.text(f.get("ref"), row),
            external_id=v.text(f.get("external_id"), row),
            reporting_org=OrgRef(ref=reporting, name=v.text(f.get("reporting_org_name"), row)),
            activity_identifier=v.text(f.get("activity_identifier"), row),
            sector=sector,
            recipient_country=(v.text(f.get("recipient_country"), row) or "").upper() or None,
            recipient_region=v.text(f.get("recipient_region"), row),
            aid_type=v.text(f.get("aid_type"), row),
            flow_type=v.text(f.get("flow_type"), row),
            finance_type=v.text(f.get("finance_type"), row),
            earmarking=int(earmarking) if earmarking else None,
            humanitarian=None if humanitarian is None
            else norm(humanitarian) in ("1", "yes", "true", "y"),
            policy_markers=[PolicyMarker("1", "1", gender)] if gender is not None else [],
            usd_amount=usd_amount if usd_amount is not None else None,
            usd_rate=usd_rate,
            extra={"mapping": self.m.name, **extra},
            location=where,
        )


# -- the importer ------------------------------------------------------------------------------


class SpreadsheetImporter:
    """XLSX and CSV sheets read through a TOML mapping (``--mapping FILE``)."""

    name = "spreadsheet"
    version = "1.0.0"
    title = "Spreadsheet (XLSX or CSV) with a column mapping (a TOML file)"

    def sniff(self, head: bytes, filename: str) -> float | None:
        """Claim a file only when a shipped mapping's ``[match] headers`` are all in it."""
        if is_zip(head):
            text = xlsx_head_text(head)
            if text is None:
                return None
            text = html.unescape(text)
        else:
            if b"\x00" in head[:4096]:
                return None
            text = "\n".join(head.decode("utf-8", "replace").splitlines()[:HEADER_SCAN_ROWS])
        haystack = norm(text)
        try:
            mappings = shipped_mappings()
        except FileRejected:
            return None
        for mp in mappings:
            if mp.match_headers and all(norm(h) in haystack for h in mp.match_headers):
                return 0.6
        return None

    def parse(self, stream: BinaryIO, context: ImportContext) -> Iterator[Record | Issue]:
        limits = Limits.from_options(context.options)
        given = context.options.get("mapping")
        mapping = load_mapping(given) if given else None
        head = peek(stream)
        if is_zip(head):
            wb = open_xlsx(stream, limits)
            try:
                tables = [Table(ws.title, lambda ws=ws: xlsx_rows(ws, limits))
                          for ws in wb.worksheets]
                mapping = mapping or _choose(tables)
                yield from _Reader(mapping).run(tables)
            finally:
                wb.close()
            return
        yield from self._csv(stream, context, mapping)

    def _csv(self, stream: BinaryIO, context: ImportContext,
             mapping: Mapping | None) -> Iterator[Record | Issue]:
        hint = ("`encoding` in the mapping's [source] table (or the `encoding` import option), "
                'e.g. encoding = "cp1252"')
        encoding = context.options.get("encoding") or (mapping.encoding if mapping else None)
        source = open_text(stream, encoding, hint)
        if source.how == "detected":
            yield Issue(Severity.WARNING, f"text encoding not stated; detected {source.encoding}; "
                        f"state it with {hint} to be sure", "file", "encoding-detected")
        delimiter = context.options.get("delimiter") or (mapping.delimiter if mapping else None)
        # CSV rows can be read once only: buffer the header scan, then continue the stream
        rows = csv_rows(source, delimiter, hint)
        scan_rows = max([HEADER_SCAN_ROWS, *(sm.header_row or 0 for sm in
                                             (mapping.sheets if mapping else []))])
        head_rows: list[tuple[int, list[Cell]]] = []
        for item in rows:
            head_rows.append(item)
            if len(head_rows) >= scan_rows:
                break
        state = {"used": False}

        def replay() -> Iterator[tuple[int, list[Cell]]]:
            """The buffered first rows again on every call; the rest of the file once."""
            yield from head_rows
            if len(head_rows) >= scan_rows:
                if state["used"]:
                    raise FileRejected("a CSV file is read once: only one [[sheet]] entry of a "
                                       "mapping can apply to it", "mapping")
                state["used"] = True
                yield from rows

        def scan() -> Iterator[tuple[int, list[Cell]]]:
            return iter(head_rows)

        mapping = mapping or _choose([Table(None, scan)])
        probe = Table(None, scan)
        usable = [sm for sm in mapping.sheets if _find_header(probe, sm) is not None]
        if not usable:
            yield from _Reader(mapping).run([probe])  # raises the "no sheet matches" error
            return
        single = Mapping(**{**mapping.__dict__, "sheets": usable[:1]})
        if len(usable) > 1:
            yield Issue(Severity.WARNING, f"{len(usable)} [[sheet]] entries of mapping "
                        f"{mapping.name} fit this CSV; only the first ({usable[0].label}) is "
                        "used", "file", "several-entries")
        yield from _Reader(single).run([Table(None, replay)])


def _choose(tables: list[Table]) -> Mapping:
    """The shipped mapping whose [match] headers all appear in one table's first rows."""
    found = [_headers_in(t) for t in tables]
    for mp in shipped_mappings():
        if mp.match_headers and any(all(norm(h) in hs for h in mp.match_headers) for hs in found):
            return mp
    names = ", ".join(p.stem for p in sorted(SHIPPED.glob("*.toml")))
    raise FileRejected("no mapping given and no shipped mapping matches this file's headers; "
                       f"write one (docs/mappings.md) and import the file with it: the mapping "
                       f"field of the upload page, or --mapping FILE (shipped: {names})",
                       "header")


SPREADSHEET = SpreadsheetImporter()


@hookimpl
def fundtrack_importers() -> list[Any]:
    return [SPREADSHEET]
