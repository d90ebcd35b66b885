"""WPS data that people manage: National Action Plans (costed lines, domestic budget
lines), stipulations on funds and fund targets.

The one place for their validation and writes: the GraphQL mutations, the ``fundtrack
naps`` / ``fundtrack funds`` commands and the CSV import all call these functions, so a
rule (what a code, an amount or a year may be) is checked the same way everywhere. Every
write records who changed what in ``wps_change`` (before and after, as JSON), in the
caller's transaction: a rolled-back write leaves no history either.

Nothing here is derived: coverage, stipulation checks and fund scorecards read these
tables on demand, so no ledger lock or rebuild is needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from fundtrack.accounting.classify import pillars as rule_pillars
from fundtrack.accounting.stipulations import KINDS as STIPULATION_KINDS
from fundtrack.accounting.tables import (
    FundTarget,
    NapBudgetLine,
    NapLine,
    NationalActionPlan,
    Stipulation,
    WpsChange,
)
from fundtrack.ingest import codelists
from fundtrack.money import AmountError, parse_amount

#: Years a plan, a budget line or a stipulation may be about (as the API's report cards).
FIRST_YEAR, LAST_YEAR = 1950, 2100
#: Plan, line and budget-line codes: what people write in plans ("1.1", "P2-O3", "GE-2018").
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,59}$")
DAC_SECTOR = re.compile(r"^\d{5}$")
#: Lines that serve every pillar (coordination, monitoring, accountability).
CROSS_CUTTING = "cross-cutting"
#: Rule keys a NAP line may use; keywords only narrow a code condition (never alone).
RULE_CODE_KEYS = ("sectors", "sector_ranges", "tags")
RULE_KEYS = (*RULE_CODE_KEYS, "keywords")
MAX_DECIMALS = 2


@dataclass(frozen=True)
class FieldError:
    """One problem with one field (and, in a CSV file, one row: the header is row 1)."""

    field: str
    message: str
    row: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = f"row {self.row}, " if self.row is not None else ""
        where = f"{self.file}: {where}" if self.file else where
        return f"{where}field {self.field}: {self.message}"


class Invalid(ValueError):
    """Input that fundtrack will not store; ``errors`` names every field at fault."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class Actor:
    """Who makes a change (``token:3 analyst``, ``cli:alice``) and through what."""

    who: str
    via: str = "api"


def pillar_names() -> list[str]:
    return [*rule_pillars(), CROSS_CUTTING]


# --- field cleaners: each returns the clean value or appends a FieldError -------------------

class _Fields:
    """Collects the errors of one record while its fields are cleaned."""

    def __init__(self, values: Mapping[str, Any]):
        self.values = values
        self.errors: list[FieldError] = []

    def fail(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def raw(self, field: str) -> Any:
        v = self.values.get(field)
        if isinstance(v, str):
            v = v.strip()
            return v or None
        return v

    def given(self, field: str, required: bool) -> Any:
        """The raw value, None when empty (and an error when it is required)."""
        v = self.raw(field)
        if v is None and required:
            self.fail(field, "required")
        return v

    def text(self, field: str, required: bool = False, max_len: int = 2000) -> str | None:
        v = self.given(field, required)
        if v is None:
            return None
        v = str(v)
        if len(v) > max_len:
            self.fail(field, f"longer than {max_len} characters")
        return v

    def code(self, field: str, required: bool = True) -> str | None:
        v = self.text(field, required)
        if v is not None and not CODE.match(v):
            self.fail(field, f"{v[:70]!r} is not a code: letters, digits and . _ / - "
                             "only, starting with a letter or digit, at most 60 characters")
        return v

    def ref(self, field: str, required: bool = True) -> str | None:
        v = self.text(field, required, max_len=200)
        if v is not None and any(c.isspace() for c in v):
            self.fail(field, f"{v[:70]!r} is not an organisation reference (no spaces)")
        return v

    def _listed(self, field: str, required: bool, codelist: str, what: str) -> str | None:
        """A code of an IATI codelist, upper-cased."""
        v = self.text(field, required)
        if v is None:
            return None
        up = v.upper()
        if up not in codelists.codes(codelist):
            self.fail(field, f"{v[:20]!r} is not {what}")
        return up

    def country(self, field: str, required: bool = True) -> str | None:
        return self._listed(field, required, "Country", "an ISO 3166-1 alpha-2 country code "
                            "(IATI Country codelist), e.g. GE, LR, JO")

    def currency(self, field: str, required: bool = False) -> str | None:
        return self._listed(field, required, "Currency",
                            "an ISO 4217 currency code, e.g. USD, GEL")

    def amount(self, field: str, required: bool = False) -> Decimal | None:
        v = self.given(field, required)
        if v is None:
            return None
        if isinstance(v, float):
            self.fail(field, "give the amount as a decimal string, not a float")
            return None
        try:
            d = v if isinstance(v, Decimal) else parse_amount(str(v))
        except AmountError as exc:
            hint = (" (write it without thousands separators: "
                    f"{str(v).replace(',', '')})" if re.fullmatch(r"[\d,]+(\.\d+)?", str(v))
                    else "")
            self.fail(field, f"{exc}{hint}")
            return None
        if d < 0:
            self.fail(field, f"{d} is negative")
        elif -d.as_tuple().exponent > MAX_DECIMALS:  # type: ignore[operator]
            self.fail(field, f"{d} has more than {MAX_DECIMALS} decimals")
        return d

    def share(self, field: str, required: bool = True) -> Decimal | None:
        v = self.given(field, required)
        if v is None:
            return None
        try:
            d = v if isinstance(v, Decimal) else parse_amount(str(v))
        except AmountError as exc:
            self.fail(field, str(exc))
            return None
        if not Decimal(0) <= d <= Decimal(1):
            self.fail(field, f"{d} is not a share between 0 and 1 (15% is 0.15)")
        return d

    def year(self, field: str, required: bool = True) -> int | None:
        v = self.given(field, required)
        if v is None:
            return None
        try:
            y = v if isinstance(v, int) and not isinstance(v, bool) else int(str(v), 10)
        except ValueError:
            self.fail(field, f"{str(v)[:20]!r} is not a year")
            return None
        if not FIRST_YEAR <= y <= LAST_YEAR:
            self.fail(field, f"year {y} is out of range ({FIRST_YEAR}-{LAST_YEAR})")
            return None
        return y

    def day(self, field: str, end: bool) -> date | None:
        """A date, or a year alone (1 January for a start, 31 December for an end)."""
        v = self.given(field, True)
        if v is None:
            return None
        if isinstance(v, datetime):
            v = v.date()
        if isinstance(v, date):
            d = v
        elif re.fullmatch(r"\d{4}", str(v)):
            d = date(int(str(v)), 12, 31) if end else date(int(str(v)), 1, 1)
        else:
            try:
                d = date.fromisoformat(str(v))
            except ValueError:
                self.fail(field, f"{str(v)[:20]!r} is not a year (2018) or a date (2018-01-01)")
                return None
        if not FIRST_YEAR <= d.year <= LAST_YEAR:
            self.fail(field, f"year {d.year} is out of range ({FIRST_YEAR}-{LAST_YEAR})")
            return None
        return d

    def codes(self, field: str, pattern: re.Pattern[str] | None = None, what: str = "") -> list[str]:
        """A list: given as a list, or as text separated by spaces, commas or semicolons."""
        v = self.values.get(field)
        if v is None:
            return []
        items = [str(x).strip() for x in v] if isinstance(v, list | tuple) else \
            [x for x in re.split(r"[;,\s]+", str(v)) if x]
        items = [x for x in items if x]
        for x in items:
            if pattern is not None and not pattern.match(x):
                self.fail(field, f"{x[:30]!r} is not {what}")
        return items

    def keywords(self, field: str) -> list[str]:
        """Keywords (phrases), separated by semicolons."""
        v = self.values.get(field)
        if v is None:
            return []
        items = [str(x) for x in v] if isinstance(v, list | tuple) else str(v).split(";")
        return [" ".join(x.split()) for x in items if x.strip()]

    def check(self) -> None:
        if self.errors:
            raise Invalid(self.errors)


def clean_rule(f: _Fields) -> dict[str, Any] | None:
    """A line's matching rule from its fields; None when it has none."""
    sectors = f.codes("sectors", DAC_SECTOR, "a 5-digit DAC sector code (e.g. 15170)")
    ranges = []
    for r in f.codes("sector_ranges", re.compile(r"^\d{5}-\d{5}$"),
                     "a range of DAC sector codes like 15210-15261"):
        lo, _, hi = r.partition("-")
        if lo > hi:
            f.fail("sector_ranges", f"{r!r}: the first code is above the second")
        ranges.append([lo, hi])
    tags = f.codes("tags")
    keywords = f.keywords("keywords")
    if keywords and not (sectors or ranges or tags):
        f.fail("keywords", "keywords only narrow a code condition: give sectors, "
                           "sector_ranges or tags too (a word alone matches too much)")
    rule: dict[str, Any] = {}
    for key, val in (("sectors", sectors), ("sector_ranges", ranges), ("tags", tags),
                     ("keywords", keywords)):
        if val:
            rule[key] = val
    return rule or None


# --- rows as JSON (history) -----------------------------------------------------------------

def _json(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, Decimal):
            v = format(v, "f")
        elif isinstance(v, date | datetime):
            v = v.isoformat()
        out[k] = v
    return out


def _record(conn: Connection, actor: Actor, action: str, entity: str, entity_id: int | None,
            key: str, nap_id: int | None, before: Any, after: Any) -> None:
    conn.execute(insert(WpsChange).values(
        at=datetime.now(UTC), actor=actor.who[:200], action=action, entity=entity,
        entity_id=entity_id, entity_key=key[:300], nap_id=nap_id, before=_json(before),
        after=_json(after), via=actor.via))


def _row(conn: Connection, table: Any, *where: Any) -> dict[str, Any] | None:
    r = conn.execute(select(table.__table__).where(*where)).mappings().first()
    return dict(r) if r else None


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    return _json(before) != _json(after)


def _upsert(conn: Connection, table: Any, existing: dict[str, Any] | None,
            clean: dict[str, Any], actor: Actor, entity: str, key: str,
            nap_id: int | None = None, *, parent: Mapping[str, Any] | None = None,
            own_nap: bool = False) -> tuple[dict[str, Any], str]:
    """Insert ``clean`` (with the ``parent`` columns) or change ``existing`` to it, and
    record who did it; returns the row and ``created`` | ``updated`` | ``unchanged``.
    ``own_nap``: the row is a plan, its history is filed under itself."""
    if existing is None:
        pk = conn.execute(insert(table).values(**(parent or {}), **clean)
                          .returning(table.id)).scalar_one()
        row = _row(conn, table, table.id == pk)
        _record(conn, actor, "create", entity, pk, key, pk if own_nap else nap_id, None, row)
        return row, "created"  # type: ignore[return-value]
    if not _changed({k: existing[k] for k in clean}, clean):
        return existing, "unchanged"
    conn.execute(update(table).where(table.id == existing["id"]).values(**clean))
    row = _row(conn, table, table.id == existing["id"])
    _record(conn, actor, "update", entity, existing["id"], key,
            existing["id"] if own_nap else nap_id, existing, row)
    return row, "updated"  # type: ignore[return-value]


def _merge(existing: Mapping[str, Any] | None, values: Mapping[str, Any],
           fields: tuple[str, ...]) -> dict[str, Any]:
    """The record to validate: the stored one with the given fields replaced."""
    out = {k: (existing or {}).get(k) for k in fields}
    out.update({k: v for k, v in values.items() if k in fields})
    return out


# --- National Action Plans ------------------------------------------------------------------

NAP_FIELDS = ("code", "country", "title", "period_start", "period_end", "source")


def get_nap(conn: Connection, code: str) -> dict[str, Any] | None:
    return _row(conn, NationalActionPlan, NationalActionPlan.code == code)


def _need_nap(conn: Connection, code: str | None, field: str = "nap_code") -> dict[str, Any]:
    plan = get_nap(conn, code) if code else None
    if plan is None:
        raise Invalid([FieldError(field, f"no National Action Plan with code {code!r}")])
    return plan


def _plan_or_errors(conn: Connection, code: str | None,
                    ) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """The plan, or the error naming it (so a row's other fields are checked too)."""
    try:
        return _need_nap(conn, code), []
    except Invalid as exc:
        return None, exc.errors


def save_nap(conn: Connection, values: Mapping[str, Any], actor: Actor,
             ) -> tuple[dict[str, Any], str]:
    """Create the plan ``values["code"]`` or change the fields given; returns the row and
    ``created`` | ``updated`` | ``unchanged``."""
    code = str(values.get("code") or "").strip()
    existing = get_nap(conn, code) if code else None
    f = _Fields(_merge(existing, values, NAP_FIELDS))
    clean: dict[str, Any] = {"code": f.code("code"), "country": f.country("country"),
             "title": f.text("title", required=True, max_len=500),
             "period_start": f.day("period_start", end=False),
             "period_end": f.day("period_end", end=True), "source": f.text("source")}
    if clean["period_start"] and clean["period_end"] and \
            clean["period_start"] > clean["period_end"]:
        f.fail("period_end", f"{clean['period_end']} is before the start "
                             f"{clean['period_start']}")
    f.check()
    return _upsert(conn, NationalActionPlan, existing, clean, actor, "nap", code, own_nap=True)


def delete_nap(conn: Connection, code: str, actor: Actor) -> dict[str, Any]:
    """Delete a plan with its lines and budget lines (history keeps them all)."""
    plan = _need_nap(conn, code, "code")
    before = {**plan,
              "lines": [_json(r) for r in conn.execute(select(NapLine.__table__).where(
                  NapLine.nap_id == plan["id"]).order_by(NapLine.id)).mappings()],
              "budget_lines": [_json(r) for r in conn.execute(
                  select(NapBudgetLine.__table__).where(NapBudgetLine.nap_id == plan["id"])
                  .order_by(NapBudgetLine.id)).mappings()]}
    conn.execute(delete(NapBudgetLine).where(NapBudgetLine.nap_id == plan["id"]))
    from fundtrack.accounting.tables import NapLink

    conn.execute(delete(NapLink).where(NapLink.nap_line_id.in_(
        select(NapLine.id).where(NapLine.nap_id == plan["id"]))))
    conn.execute(delete(NapLine).where(NapLine.nap_id == plan["id"]))
    conn.execute(delete(NationalActionPlan).where(NationalActionPlan.id == plan["id"]))
    _record(conn, actor, "delete", "nap", plan["id"], code, plan["id"], before, None)
    return plan


LINE_FIELDS = ("code", "pillar", "title", "costed_amount", "costed_currency", "costed_usd",
               "sectors", "sector_ranges", "tags", "keywords", "source")


def _rule_fields(rule: Mapping[str, Any] | None) -> dict[str, Any]:
    rule = rule or {}
    return {"sectors": rule.get("sectors"), "tags": rule.get("tags"),
            "keywords": rule.get("keywords"),
            "sector_ranges": [f"{lo}-{hi}" for lo, hi in rule.get("sector_ranges", [])] or None}


def _usd(f: _Fields, amount: Decimal | None, currency: str | None, usd: Decimal | None,
         on: date | None, fields: tuple[str, str, str]) -> Decimal | None:
    """The USD figure: given; the amount itself in USD; or the ECB rate on ``on``.
    ``fields``: the names of the amount, currency and USD fields (for errors)."""
    field, currency_field, usd_field = fields
    if amount is None or usd is not None:
        if usd is not None and amount is None:
            f.fail(field, f"give the amount as stated in the plan beside {usd_field}")
        return usd
    if currency is None:
        if not any(e.field == currency_field for e in f.errors):
            f.fail(currency_field, "required with an amount")
        return None
    if currency == "USD":
        return amount
    from fundtrack.ledger.fx import to_usd

    conv = to_usd(amount, currency, on) if on else None
    if conv is None:
        f.fail(usd_field, f"no ECB reference rate for {currency} on {on}: give the USD "
                          "figure the source states")
        return None
    return conv.amount_usd


def save_line(conn: Connection, nap_code: str, values: Mapping[str, Any], actor: Actor,
              ) -> tuple[dict[str, Any], str]:
    """Create or change the costed line ``values["code"]`` of plan ``nap_code``."""
    plan, nap_errors = _plan_or_errors(conn, nap_code)
    code = str(values.get("code") or "").strip()
    existing = _row(conn, NapLine, NapLine.nap_id == plan["id"], NapLine.code == code) \
        if code and plan else None
    merged = _merge({**existing, **_rule_fields(existing.get("rule"))} if existing else None,
                    values, LINE_FIELDS)
    if "costed_amount" in values and "costed_usd" not in values:
        merged["costed_usd"] = None  # a new amount: its USD figure follows it
    f = _Fields(merged)
    pillar = f.text("pillar", required=True)
    if pillar is not None:
        pillar = pillar.lower()
        if pillar not in pillar_names():
            f.fail("pillar", f"{pillar!r} is not one of {', '.join(pillar_names())}")
    amount = f.amount("costed_amount")
    currency = f.currency("costed_currency")
    usd = f.amount("costed_usd")
    clean = {"code": f.code("code"), "pillar": pillar,
             "title": f.text("title", max_len=1000), "costed_amount": amount,
             "costed_currency": currency if amount is not None else None,
             "costed_usd": _usd(f, amount, currency, usd, plan["period_start"],
                                ("costed_amount", "costed_currency", "costed_usd"))
             if plan else usd,
             "rule": clean_rule(f), "source": f.text("source")}
    f.errors[:0] = nap_errors
    f.check()
    assert plan is not None
    return _upsert(conn, NapLine, existing, clean, actor, "nap_line", f"{plan['code']}/{code}",
                   plan["id"], parent={"nap_id": plan["id"]})


def delete_line(conn: Connection, nap_code: str, code: str, actor: Actor) -> dict[str, Any]:
    plan = _need_nap(conn, nap_code)
    row = _row(conn, NapLine, NapLine.nap_id == plan["id"], NapLine.code == code)
    if row is None:
        raise Invalid([FieldError("code", f"plan {nap_code} has no line {code!r}")])
    from fundtrack.accounting.tables import NapLink

    conn.execute(delete(NapLink).where(NapLink.nap_line_id == row["id"]))
    conn.execute(delete(NapLine).where(NapLine.id == row["id"]))
    _record(conn, actor, "delete", "nap_line", row["id"], f"{nap_code}/{code}", plan["id"],
            row, None)
    return row


BUDGET_FIELDS = ("code", "year", "institution", "line_code", "amount", "currency",
                 "amount_usd", "source")


def save_budget_line(conn: Connection, nap_code: str, values: Mapping[str, Any], actor: Actor,
                     ) -> tuple[dict[str, Any], str]:
    """Create or change the domestic budget line (``code``, ``year``) of plan ``nap_code``."""
    plan, nap_errors = _plan_or_errors(conn, nap_code)
    pre = _Fields(values)
    code, year = str(values.get("code") or "").strip(), pre.year("year")
    existing = _row(conn, NapBudgetLine, NapBudgetLine.nap_id == plan["id"],
                    NapBudgetLine.code == code, NapBudgetLine.year == year) \
        if code and year and plan else None
    stored = {**existing, "line_code": existing["nap_line_code"]} if existing else None
    merged = _merge(stored, values, BUDGET_FIELDS)
    if "amount" in values and "amount_usd" not in values:
        merged["amount_usd"] = None
    f = _Fields(merged)
    year = f.year("year")
    if plan and year is not None and \
            not plan["period_start"].year <= year <= plan["period_end"].year:
        f.fail("year", f"{year} is outside the plan's period "
                       f"{plan['period_start'].year}-{plan['period_end'].year}")
    line_code = f.code("line_code", required=False)
    if plan and line_code and conn.execute(select(NapLine.id).where(
            NapLine.nap_id == plan["id"], NapLine.code == line_code)).first() is None:
        f.fail("line_code", f"plan {plan['code']} has no line {line_code!r}")
    amount = f.amount("amount", required=True)
    currency = f.currency("currency", required=True)
    usd = f.amount("amount_usd")
    clean = {"code": f.code("code"), "year": year,
             "institution": f.text("institution", max_len=500), "nap_line_code": line_code,
             "amount": amount, "currency": currency,
             "amount_usd": _usd(f, amount, currency, usd, date(year, 1, 1) if year else None,
                                ("amount", "currency", "amount_usd")) if plan else usd,
             "source": f.text("source")}
    f.errors[:0] = nap_errors
    f.check()
    assert plan is not None
    return _upsert(conn, NapBudgetLine, existing, clean, actor, "nap_budget_line",
                   f"{plan['code']}/budget/{code}/{year}", plan["id"],
                   parent={"nap_id": plan["id"]})


def delete_budget_line(conn: Connection, nap_code: str, code: str, year: int, actor: Actor,
                       ) -> dict[str, Any]:
    plan = _need_nap(conn, nap_code)
    row = _row(conn, NapBudgetLine, NapBudgetLine.nap_id == plan["id"],
               NapBudgetLine.code == code, NapBudgetLine.year == year)
    if row is None:
        raise Invalid([FieldError("code", f"plan {nap_code} has no budget line {code!r} "
                                          f"for {year}")])
    conn.execute(delete(NapBudgetLine).where(NapBudgetLine.id == row["id"]))
    _record(conn, actor, "delete", "nap_budget_line", row["id"],
            f"{nap_code}/budget/{code}/{year}", plan["id"], row, None)
    return row


# --- stipulations and fund targets ----------------------------------------------------------

STIPULATION_FIELDS = ("donor_ref", "recipient_ref", "year", "kind", "target", "min_share",
                      "source")


def _stipulation_key(r: Mapping[str, Any]) -> str:
    return (f"{r['donor_ref']}->{r['recipient_ref']}/{r['year'] or 'any'}/{r['kind']}"
            + (f":{r['target']}" if r.get("target") else ""))


def _clean_stipulation(values: Mapping[str, Any]) -> dict[str, Any]:
    f = _Fields(values)
    kind = f.text("kind", required=True)
    if kind is not None and kind not in STIPULATION_KINDS:
        f.fail("kind", f"{kind!r} is not one of {', '.join(STIPULATION_KINDS)}")
    target = f.text("target", max_len=60)
    if kind == "pillar":
        if target is None:
            f.fail("target", "required for kind pillar: the pillar")
        elif target not in rule_pillars():
            f.fail("target", f"{target!r} is not one of {', '.join(rule_pillars())}")
    elif kind == "country":
        target = f.country("target")
    elif target is not None and kind in STIPULATION_KINDS:
        f.fail("target", f"kind {kind} takes no target")
    clean = {"donor_ref": f.ref("donor_ref"), "recipient_ref": f.ref("recipient_ref"),
             "year": f.year("year", required=False), "kind": kind, "target": target,
             "min_share": f.share("min_share"), "source": f.text("source")}
    f.check()
    return clean


def save_stipulation(conn: Connection, values: Mapping[str, Any], actor: Actor,
                     stipulation_id: int | None = None) -> tuple[dict[str, Any], str]:
    """Change stipulation ``stipulation_id`` (fields given), or create one; without an id,
    one with the same donor, recipient, year, kind and target is changed instead."""
    t = Stipulation
    existing = None
    if stipulation_id is not None:
        existing = _row(conn, Stipulation, t.id == stipulation_id)
        if existing is None:
            raise Invalid([FieldError("id", f"no stipulation {stipulation_id}")])
    clean = _clean_stipulation(_merge(existing, values, STIPULATION_FIELDS))
    if existing is None:
        existing = _row(conn, Stipulation, t.donor_ref == clean["donor_ref"],
                        t.recipient_ref == clean["recipient_ref"], t.kind == clean["kind"],
                        t.year.is_(None) if clean["year"] is None else t.year == clean["year"],
                        t.target.is_(None) if clean["target"] is None
                        else t.target == clean["target"])
    return _upsert(conn, Stipulation, existing, clean, actor, "stipulation",
                   _stipulation_key(clean))


def delete_stipulation(conn: Connection, stipulation_id: int, actor: Actor) -> dict[str, Any]:
    t = Stipulation
    row = _row(conn, Stipulation, t.id == stipulation_id)
    if row is None:
        raise Invalid([FieldError("id", f"no stipulation {stipulation_id}")])
    conn.execute(delete(t).where(t.id == stipulation_id))
    _record(conn, actor, "delete", "stipulation", stipulation_id, _stipulation_key(row), None,
            row, None)
    return row


def save_fund_target(conn: Connection, values: Mapping[str, Any], actor: Actor,
                     ) -> tuple[dict[str, Any], str]:
    """Set a pooled fund's own target for its gender-principal share (0..1)."""
    from fundtrack.derived.trail.funds import pooled_refs

    t = FundTarget
    ref = str(values.get("fund_ref") or "").strip()
    existing = _row(conn, FundTarget, t.fund_ref == ref) if ref else None
    f = _Fields(_merge(existing, values, ("fund_ref", "gender_principal_share", "source")))
    clean = {"fund_ref": f.ref("fund_ref"),
             "gender_principal_share": f.share("gender_principal_share"),
             "source": f.text("source")}
    if clean["fund_ref"] and clean["fund_ref"] not in pooled_refs(conn):
        f.fail("fund_ref", f"{clean['fund_ref']!r} is not a pooled fund in the registry "
                           "(add it with `fundtrack funds add` or upsertFund)")
    f.check()
    return _upsert(conn, FundTarget, existing, clean, actor, "fund_target", ref)


def delete_fund_target(conn: Connection, fund_ref: str, actor: Actor) -> dict[str, Any]:
    t = FundTarget
    row = _row(conn, FundTarget, t.fund_ref == fund_ref)
    if row is None:
        raise Invalid([FieldError("fund_ref", f"no target for fund {fund_ref!r}")])
    conn.execute(delete(t).where(t.id == row["id"]))
    _record(conn, actor, "delete", "fund_target", row["id"], fund_ref, None, row, None)
    return row


# --- reading --------------------------------------------------------------------------------

def history(conn: Connection, *, entity: str | None = None, nap_code: str | None = None,
            key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Changes, newest first: of one kind of record, of one plan (its lines and budget
    lines included, deleted ones too) or of one record key."""
    t = WpsChange.__table__
    q = select(t).order_by(t.c.id.desc()).limit(limit)
    if entity:
        q = q.where(t.c.entity == entity)
    if nap_code:
        ids = select(t.c.nap_id).where(t.c.entity == "nap", t.c.entity_key == nap_code)
        q = q.where(t.c.nap_id.in_(ids))
    if key:
        q = q.where(t.c.entity_key == key)
    return [dict(r) for r in conn.execute(q).mappings()]


def stipulations(conn: Connection, donor: str | None = None) -> list[dict[str, Any]]:
    t = Stipulation.__table__
    q = select(t).order_by(t.c.id)
    if donor:
        q = q.where(t.c.donor_ref == donor)
    return [dict(r) for r in conn.execute(q).mappings()]


def fund_targets(conn: Connection) -> list[dict[str, Any]]:
    t = FundTarget.__table__
    return [dict(r) for r in conn.execute(select(t).order_by(t.c.fund_ref)).mappings()]
