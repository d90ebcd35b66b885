"""Checks every canonical record before it reaches the ledger, whatever importer made it.

Importers report what they cannot read; this module enforces the record contract
(exact Decimal amounts of sane size, known flow kinds, codes that fit their columns) and
flags codes that are not in the IATI codelists. Errors drop the offending record (an
issue with code :data:`SKIPPED` tells the pipeline to leave it out); warnings keep it.

Hostile values, and what happens to them (``tests/test_hostile_input.py``):

- an amount that is not finite (NaN, Infinity), or whose size is beyond any real
  report (``|amount| >= 10**18``, or more than 30 decimals, e.g. ``1e400``, ``1e-400``): error,
  the flow or budget is skipped (PostgreSQL's NUMERIC would take 1e400, but no sum or
  USD conversion of it means anything, and the exact FX arithmetic would overflow);
- ``-0`` is stored as ``0`` (SQLite would otherwise keep the text "-0");
- a value longer than the ledger column it goes to (PostgreSQL would refuse it
  mid-batch; SQLite would keep it): in an *essential* field (:data:`ESSENTIAL`: the
  activity identifier, the reporting organisation, the currency: what keys, attributes
  and converts the money) the record is skipped, naming the field, its length and the
  limit; in any other field (a status, an organisation type, a vocabulary, a country
  code ...) the value is shortened to fit and a warning names the field and what was
  reported, so a non-essential attribute never costs an activity or its money.
  Fields the ledger shortens on purpose (references, sector and policy-marker codes:
  real files have long ones) are shortened here to :data:`MAX_CODE` characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from fundtrack.db.metadata import metadata
from fundtrack.ingest.codelists import codes
from fundtrack.records import (
    ActivityRecord,
    BudgetRecord,
    FlowKind,
    FlowRecord,
    Issue,
    OrganisationRecord,
    Record,
    Severity,
)

#: Issue code that makes the pipeline leave a whole record out.
SKIPPED = "skipped"
#: No real report holds an amount of a quintillion or more, in any currency.
MAX_AMOUNT = Decimal(10) ** 18
MAX_DECIMALS = 30
MAX_INT = 2**31 - 1  # INTEGER columns (hierarchy, earmarking)
#: Longer than any real code, identifier or reference (IATI identifiers are < 100).
MAX_CODE = 1000
#: Fields whose value identifies the record or its money: too long -> record skipped.
ESSENTIAL = frozenset({"identifier", "reporting_org.ref", "default_currency", "currency",
                       "external_id", "ref"})


def _len(column: str) -> int:
    table, col = column.split(".")
    return metadata.tables[table].c[col].type.length  # type: ignore[attr-defined]


def _limits(exact: dict[str, str], cut: list[str]) -> dict[str, int]:
    """Field -> longest value accepted: its column's length for ``exact`` fields (stored
    as they are), :data:`MAX_CODE` for ``cut`` fields (the ledger shortens real-world
    long values of those to fit, e.g. free-text policy-marker codes)."""
    return {**{path: _len(column) for path, column in exact.items()},
            **dict.fromkeys(cut, MAX_CODE)}


#: Record field (dotted; ``[]`` walks a list) -> the ledger column it is stored in.
ACTIVITY_TEXT = _limits({
    "reporting_org.type": "activity.reporting_org_type", "status": "activity.status",
    "default_currency": "activity.default_currency",
    "recipient_regions[].vocabulary": "activity_region.vocabulary",
    "sectors[].vocabulary": "activity_sector.vocabulary",
    "participating_orgs[].role": "participating_org.role",
    "participating_orgs[].type": "participating_org.type",
    "tags[].vocabulary": "activity_tag.vocabulary",
}, ["identifier", "reporting_org.ref", "recipient_countries[].code", "recipient_regions[].code",
    "sectors[].code", "policy_markers[].code", "policy_markers[].vocabulary",
    "policy_markers[].significance", "policy_markers[].vocabulary_uri", "participating_orgs[].ref",
    "participating_orgs[].activity_id", "tags[].code"])
FLOW_TEXT = _limits({
    "currency": "flow.currency", "sector.vocabulary": "flow.sector_vocabulary",
    "recipient_country": "flow.recipient_country", "recipient_region": "flow.recipient_region",
    "aid_type": "flow.aid_type", "flow_type": "flow.flow_type", "finance_type": "flow.finance_type",
    "tied_status": "flow.tied_status", "disbursement_channel": "flow.disbursement_channel",
}, ["external_id", "reporting_org.ref", "provider.ref", "provider.activity_id", "provider.type",
    "receiver.ref", "receiver.activity_id", "receiver.type", "sector.code",
    "policy_markers[].code", "policy_markers[].vocabulary", "policy_markers[].significance",
    "policy_markers[].vocabulary_uri", "parent_external_ids[]"])
BUDGET_TEXT = _limits({
    "kind": "budget.kind", "budget_type": "budget.budget_type", "status": "budget.status",
    "currency": "budget.currency", "recipient_country": "budget.recipient_country",
    "recipient_region": "budget.recipient_region",
}, ["provider.ref", "receiver.ref"])
RELATED_TYPE = _len("related_activity.type")
ORGANISATION_TEXT = _limits({}, ["ref", "type", "default_currency", "reporting_org.ref"])


def _values(obj: Any, path: str) -> Iterator[Any]:
    """Every value at ``path`` in ``obj`` (``a.b``, ``items[].code``, ``items[]``)."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        for item in getattr(obj, head[:-2], None) or ():
            yield from (_values(item, rest) if rest else [item])
        return
    value = getattr(obj, head, None)
    if value is None:
        return
    if rest:
        yield from _values(value, rest)
    else:
        yield value


_Steps = tuple[tuple[str, bool], ...]
#: A limits table's paths, split once: (path, limit, steps (attribute, is a list)).
_COMPILED: dict[int, list[tuple[str, int, _Steps]]] = {}


def _compiled(limits: dict[str, int]) -> list[tuple[str, int, _Steps]]:
    key = id(limits)
    if key not in _COMPILED:
        _COMPILED[key] = [(path, limit, tuple((p[:-2], True) if p.endswith("[]") else (p, False)
                                              for p in path.split(".")))
                          for path, limit in limits.items()]
    return _COMPILED[key]


def _holders(obj: Any, steps: _Steps) -> list[Any]:
    """The objects holding the last attribute of ``steps`` (what :func:`_slots` gives,
    without a generator per level: this runs for every record of every file)."""
    objs = [obj]
    for name, many in steps[:-1]:
        nxt: list[Any] = []
        for o in objs:
            value = getattr(o, name, None)
            if many:
                nxt.extend(value or ())
            elif value is not None:
                nxt.append(value)
        if not nxt:
            return nxt
        objs = nxt
    return [] if steps[-1][1] else objs  # a path ending in "[]" names no attribute


#: A limits table's fields grouped by the objects that hold them: (steps to the holders,
#: ((attribute, limit), ...)); paths ending in ``[]`` name no attribute and are left out.
_Groups = list[tuple[_Steps, tuple[tuple[str, int], ...]]]
_GROUPED: dict[int, _Groups] = {}


def _grouped(limits: dict[str, int]) -> _Groups:
    key = id(limits)
    if key not in _GROUPED:
        groups: dict[_Steps, list[tuple[str, int]]] = {}
        for _path, limit, steps in _compiled(limits):
            if not steps[-1][1]:
                groups.setdefault(steps[:-1], []).append((steps[-1][0], limit))
        _GROUPED[key] = [(prefix, tuple(fields)) for prefix, fields in groups.items()]
    return _GROUPED[key]


def _any_too_long(record: Any, limits: dict[str, int]) -> bool:
    """Whether any field of ``limits`` is longer than its limit: each holder is walked to
    once for all its fields (nearly every record has none too long; :func:`_too_long`
    then reports them in the table's order)."""
    for prefix, fields in _grouped(limits):
        for holder in (_holders(record, (*prefix, ("", False))) if prefix else (record,)):
            for name, limit in fields:
                value = getattr(holder, name, None)
                if isinstance(value, str) and len(value) > limit:
                    return True
    return False


def _too_long(record: Any, limits: dict[str, int], where: str, what: str,
              issues: list[Issue] | None = None) -> Issue | None:
    """An error if an essential field is too long; other fields are cut to fit, with a
    warning in ``issues``."""
    if not _any_too_long(record, limits):
        return None
    for path, limit, steps in _compiled(limits):
        name = steps[-1][0]
        for holder in _holders(record, steps):
            value = getattr(holder, name, None)
            if not isinstance(value, str) or len(value) <= limit:
                continue
            if path in ESSENTIAL or issues is None:
                return Issue(Severity.ERROR, f"{path} is {len(value):,} characters long, above the "
                             f"limit of {limit} for this field ({value[:20]!r}...); {what} skipped",
                             where, SKIPPED)
            setattr(holder, name, value[:limit])
            issues.append(Issue(Severity.WARNING, f"{path} is {len(value):,} characters long, above "
                                f"the limit of {limit} for this field; kept shortened to "
                                f"{value[:min(limit, 60)]!r}{'...' if limit > 60 else ''} "
                                f"(reported: {value[:60]!r}"
                                f"{'...' if len(value) > 60 else ''})", where, "value-shortened"))
    return None


class Validator:
    def __init__(self) -> None:
        self.currencies = codes("Currency")
        self.countries = codes("Country")

    def check(self, record: Record) -> list[Issue]:
        """Problems of ``record``; an issue with code :data:`SKIPPED` means leave it out.

        May repair the record in place: flows and budgets that fail are dropped from an
        activity, and ``-0`` amounts become ``0``.
        """
        issues: list[Issue] = []
        if isinstance(record, ActivityRecord):
            bad = _too_long(record, ACTIVITY_TEXT, record.location, "activity", issues)
            related = []
            for rtype, ref in record.related_activities:
                if len(rtype or "") > RELATED_TYPE or len(ref) > MAX_CODE:
                    issues.append(Issue(Severity.WARNING, "related-activity type or ref is too "
                                        f"long ({len(rtype or '')}, {len(ref)} characters; limits "
                                        f"{RELATED_TYPE}, {MAX_CODE}); kept shortened",
                                        record.location, "value-shortened"))
                related.append(((rtype or "")[:RELATED_TYPE], ref[:MAX_CODE]))
            record.related_activities = related
            if record.hierarchy is not None and not 0 <= record.hierarchy <= MAX_INT:
                issues.append(Issue(Severity.WARNING, f"hierarchy {record.hierarchy} is out of "
                                    "range; ignored", record.location, "bad-hierarchy"))
                record.hierarchy = None
            if bad is not None:
                bad.skipped = {"activities": 1, "flows": len(record.flows),
                               "budgets": len(record.budgets)}
                return [bad]
            for c in record.recipient_countries:
                self._country(c.code, record.location, issues)
            for coded in (*record.recipient_countries, *record.recipient_regions, *record.sectors):
                if coded.percentage is not None and not self._amount(coded.percentage,
                                                                     record.location, [], ""):
                    issues.append(Issue(Severity.WARNING, f"percentage {str(coded.percentage)[:40]} "
                                        f"of {coded.code[:20]!r} is out of range; ignored",
                                        record.location, "bad-percentage"))
                    coded.percentage = None
            record.flows = [f for f in record.flows if self._flow(f, issues)]
            record.budgets = [b for b in record.budgets if self._budget(b, issues)]
        elif isinstance(record, FlowRecord):
            if not self._flow(record, issues):
                issues.append(Issue(Severity.ERROR, "flow skipped", record.location, SKIPPED,
                                    {}))  # the reason above already counted the flow
        elif isinstance(record, OrganisationRecord):
            bad = _too_long(record, ORGANISATION_TEXT, record.location, "organisation", issues)
            if bad is not None:
                bad.skipped = {"organisations": 1, "budgets": len(record.budgets)}
                return [bad]
            record.budgets = [b for b in record.budgets if self._budget(b, issues)]
        return issues

    def _country(self, code: str | None, where: str, issues: list[Issue]) -> None:
        if code and code not in self.countries:
            issues.append(Issue(Severity.WARNING, f"recipient country {code[:20]!r} is not in the "
                                "IATI Country codelist", where, "unknown-country"))

    def _amount(self, amount: object, where: str, issues: list[Issue], what: str = "amount",
                ) -> bool:
        if not isinstance(amount, Decimal) or not amount.is_finite():
            issues.append(Issue(Severity.ERROR, f"{what} {str(amount)[:40]!r} is not an exact "
                                "finite Decimal (importers must never use float); skipped",
                                where, "not-decimal"))
            return False
        if abs(amount) >= MAX_AMOUNT or -amount.as_tuple().exponent > MAX_DECIMALS:  # type: ignore[operator]
            issues.append(Issue(Severity.ERROR, f"{what} {str(amount)[:40]} is out of range (at most "
                                f"18 digits before and {MAX_DECIMALS} after the decimal point); "
                                "skipped", where, "amount-out-of-range"))
            return False
        return True

    def _money(self, amount: object, currency: str | None, where: str,
               issues: list[Issue]) -> bool:
        if not self._amount(amount, where, issues):
            return False
        if currency is not None and currency not in self.currencies:
            issues.append(Issue(Severity.WARNING, f"currency {currency[:20]!r} is not in the IATI "
                                "Currency codelist", where, "unknown-currency"))
        return True

    def _flow(self, f: FlowRecord, issues: list[Issue]) -> bool:
        if not isinstance(f.kind, FlowKind):
            issues.append(Issue(Severity.ERROR, f"flow kind {f.kind!r} is not a FlowKind; skipped",
                                f.location, "bad-kind"))
            return False
        bad = _too_long(f, FLOW_TEXT, f.location, "flow", issues)
        if bad is not None:
            bad.code = "too-long"  # this flow only; SKIPPED would leave out its activity
            issues.append(bad)
            return False
        if f.earmarking is not None and not 0 <= f.earmarking <= MAX_INT:
            issues.append(Issue(Severity.WARNING, f"earmarking {f.earmarking} is out of range; "
                                "ignored", f.location, "bad-earmarking"))
            f.earmarking = None
        for what in ("usd_amount", "usd_rate"):
            value = getattr(f, what)
            if value is not None and not self._amount(value, f.location, issues, what):
                return False
        self._country(f.recipient_country, f.location, issues)
        if not self._money(f.amount, f.currency, f.location, issues):
            return False
        f.amount = _no_negative_zero(f.amount)
        return True

    def _budget(self, b: BudgetRecord, issues: list[Issue]) -> bool:
        bad = _too_long(b, BUDGET_TEXT, b.location, "budget", issues)
        if bad is not None:
            bad.code = "too-long"
            bad.skipped = {"budgets": 1}
            issues.append(bad)
            return False
        if not self._money(b.amount, b.currency, b.location, issues):
            issues[-1].skipped = {"budgets": 1}
            return False
        b.amount = _no_negative_zero(b.amount)
        return True


def _no_negative_zero(amount: Decimal) -> Decimal:
    """``-0`` (and ``-0.00``) as ``0``: the same text on SQLite as the value on PostgreSQL."""
    return amount.copy_abs() if amount.is_zero() else amount
