"""Checks every canonical record before it reaches the ledger, whatever importer made it.

Importers report what they cannot read; this module enforces the record contract
(exact Decimal amounts, known flow kinds) and flags codes that are not in the IATI
codelists. Errors drop the offending flow or budget; warnings keep it.
"""

from __future__ import annotations

from decimal import Decimal

from fundtrack.codelists import codes
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


class Validator:
    def __init__(self) -> None:
        self.currencies = codes("Currency")
        self.countries = codes("Country")

    def check(self, record: Record) -> list[Issue]:
        issues: list[Issue] = []
        if isinstance(record, ActivityRecord):
            for c in record.recipient_countries:
                self._country(c.code, record.location, issues)
            record.flows = [f for f in record.flows if self._flow(f, issues)]
            record.budgets = [b for b in record.budgets if self._budget(b, issues)]
        elif isinstance(record, FlowRecord):
            if not self._flow(record, issues):
                issues.append(Issue(Severity.ERROR, "flow skipped", record.location, "skipped"))
        elif isinstance(record, OrganisationRecord):
            record.budgets = [b for b in record.budgets if self._budget(b, issues)]
        return issues

    def _country(self, code: str | None, where: str, issues: list[Issue]) -> None:
        if code and code not in self.countries:
            issues.append(Issue(Severity.WARNING, f"recipient country {code!r} is not in the "
                                "IATI Country codelist", where, "unknown-country"))

    def _money(self, amount: object, currency: str | None, where: str,
               issues: list[Issue]) -> bool:
        if not isinstance(amount, Decimal) or not amount.is_finite():
            issues.append(Issue(Severity.ERROR, f"amount {amount!r} is not an exact Decimal "
                                "(importers must never use float); skipped", where, "not-decimal"))
            return False
        if currency is not None and currency not in self.currencies:
            issues.append(Issue(Severity.WARNING, f"currency {currency!r} is not in the IATI "
                                "Currency codelist", where, "unknown-currency"))
        return True

    def _flow(self, f: FlowRecord, issues: list[Issue]) -> bool:
        if not isinstance(f.kind, FlowKind):
            issues.append(Issue(Severity.ERROR, f"flow kind {f.kind!r} is not a FlowKind; skipped",
                                f.location, "bad-kind"))
            return False
        self._country(f.recipient_country, f.location, issues)
        return self._money(f.amount, f.currency, f.location, issues)

    def _budget(self, b: BudgetRecord, issues: list[Issue]) -> bool:
        return self._money(b.amount, b.currency, b.location, issues)
