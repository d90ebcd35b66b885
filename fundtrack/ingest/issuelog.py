"""The issues of one import, counted in full but kept only up to a cap.

A hostile or broken file can hold millions of problems (1.25M empty ``<iati-activity/>``
gave 1.25M "no identifier" issues: 700 MB of worker memory and a 198 MB answer).
:class:`IssueLog` is a list that counts every issue by severity and code but keeps only
the first :data:`MAX_STORED_ISSUES` (those are stored with the batch); the API answers
with the first :data:`ISSUES_IN_ANSWER` and the counts by kind. It also tallies the records
the issues left out (:func:`records_skipped`), over every issue, kept or not, so the
reconciliation (found = imported + skipped) stays exact past the cap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, SupportsIndex

from fundtrack.records import Issue, Severity

#: Issues kept in memory and stored with a batch (``batch_issue``); the rest are counted.
MAX_STORED_ISSUES = 5000
#: Issues given in full in an import's answer (API, web upload); the rest by count.
ISSUES_IN_ANSWER = 100


def records_skipped(issue: Issue) -> dict[str, int]:
    """Records an issue left out, by kind.

    An error without a ``skipped`` tally (plugins, older importers) left out one flow:
    every importer's error-level issue is "this record skipped". Warnings and the
    rejection of a whole file leave out nothing record by record.
    """
    if issue.severity is not Severity.ERROR or issue.code == "rejected":
        return {}
    return issue.skipped if issue.skipped is not None else {"flows": 1}


class IssueLog(list[Issue]):
    """A list of the first ``keep`` issues, with every issue counted by (severity, code)."""

    def __init__(self, issues: Iterable[Issue] = (), keep: int = MAX_STORED_ISSUES) -> None:
        super().__init__()
        self.keep = keep
        self.by_kind: Counter[tuple[str, str]] = Counter()
        self.total = 0
        #: Records left out by every issue seen, by kind (see :func:`records_skipped`).
        self.skipped: Counter[str] = Counter()
        self.extend(issues)

    def __reduce__(self) -> Any:
        """Pickled whole, counts included (a many-file import's parse process sends it)."""
        return (_restore, (list(self), self.keep, self.by_kind, self.total, self.skipped))

    def _count(self, issue: Issue) -> None:
        self.total += 1
        self.by_kind[(issue.severity.value, issue.code)] += 1
        self.skipped.update(records_skipped(issue))

    def append(self, issue: Issue) -> None:
        self._count(issue)
        if len(self) < self.keep:
            super().append(issue)

    def extend(self, issues: Iterable[Issue]) -> None:
        for issue in issues:
            self.append(issue)

    def __iadd__(self, issues: Iterable[Issue]) -> IssueLog:  # type: ignore[override]
        self.extend(issues)
        return self

    def insert(self, index: SupportsIndex, issue: Issue) -> None:
        """Insert (a file's rejection goes first); the last kept one drops out if full."""
        self._count(issue)
        super().insert(index, issue)
        if len(self) > self.keep:
            super().pop()

    def count_severity(self, severity: Severity) -> int:
        """How many issues of ``severity`` there were, kept or not."""
        return sum(n for (sev, _), n in self.by_kind.items() if sev == severity.value)

    @property
    def dropped(self) -> int:
        """Issues counted but not kept."""
        return self.total - len(self)

    def kinds(self) -> list[dict[str, Any]]:
        """Counts by kind, most frequent first: ``[{severity, code, count}]``."""
        return [{"severity": sev, "code": code, "count": n}
                for (sev, code), n in sorted(self.by_kind.items(), key=lambda kv: (-kv[1], kv[0]))]


def _restore(kept: list[Issue], keep: int, by_kind: Counter[tuple[str, str]], total: int,
             skipped: Counter[str]) -> IssueLog:
    log = IssueLog(keep=keep)
    list.extend(log, kept)
    log.by_kind, log.total, log.skipped = by_kind, total, skipped
    return log
