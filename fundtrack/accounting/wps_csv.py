"""CSV import of WPS data: plans, their lines and domestic budget lines, stipulations and
fund targets. All or nothing: every row of every file is checked and written in the
caller's transaction; any error (named by file, row and field) rejects the whole import.

A file's kind is told by its header (the column layouts are in :data:`LAYOUTS` and
docs/wps-data.md). Rows are numbered as a spreadsheet shows them: the header is row 1.
Files are applied in dependency order (plans, lines, budget lines, stipulations, fund
targets), so one import can bring a plan with its lines.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from fundtrack.accounting import wps
from fundtrack.accounting.wps import Actor, FieldError, Invalid

#: kind -> (required columns, optional columns). Order of kinds = order of application.
LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "naps": (("code", "country", "title", "period_start", "period_end"), ("source",)),
    "nap_lines": (("nap_code", "code", "pillar"),
                  ("title", "costed_amount", "costed_currency", "costed_usd", "sectors",
                   "sector_ranges", "tags", "keywords", "source")),
    "nap_budget_lines": (("nap_code", "code", "year", "amount", "currency"),
                         ("institution", "line_code", "amount_usd", "source")),
    "stipulations": (("donor_ref", "recipient_ref", "kind", "min_share"),
                     ("year", "target", "source")),
    "fund_targets": (("fund_ref", "gender_principal_share"), ("source",)),
}
#: A file bigger than this is not a hand-kept table.
MAX_BYTES = 5 * 1024 * 1024
MAX_ERRORS = 200


class Rejected(Exception):
    """The import was refused; ``errors`` says where and why (nothing was written)."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__(f"{len(errors)} error(s); nothing was imported: "
                         + "; ".join(str(e) for e in errors[:5]))


@dataclass
class ImportSummary:
    files: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)  # "<kind> <created|updated|...>"

    def text(self) -> str:
        parts = [f"{n} {k}" for k, n in sorted(self.counts.items())]
        return ", ".join(parts) or "nothing to import"


def kind_of(header: list[str]) -> str | None:
    cols = set(header)
    for kind, (required, optional) in LAYOUTS.items():
        if set(required) <= cols <= set(required) | set(optional):
            return kind
    return None


def _read(name: str, data: bytes) -> tuple[str, list[str], list[dict[str, str]]]:
    if len(data) > MAX_BYTES:
        raise Rejected([FieldError("file", f"larger than {MAX_BYTES // 1024 // 1024} MiB",
                                   file=name)])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Rejected([FieldError("file", f"not UTF-8 text (byte {exc.start})", file=name)]) \
            from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise Rejected([FieldError("file", f"not a CSV file: {exc}", row=reader.line_num,
                                   file=name)]) from None
    if not rows:
        raise Rejected([FieldError("file", "empty: expected a header row", row=1, file=name)])
    header = [h.strip().lower() for h in rows[0]]
    kind = kind_of(header)
    if kind is None:
        return "", header, []
    out = []
    for n, r in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in r):
            continue
        if len(r) != len(header):
            raise Rejected([FieldError("row", f"{len(r)} cells, the header has {len(header)}",
                                       row=n, file=name)])
        out.append({"_row": str(n), **dict(zip(header, r, strict=True))})
    return kind, header, out


def _unknown_layout(name: str, header: list[str]) -> FieldError:
    best = max(LAYOUTS, key=lambda k: len(set(LAYOUTS[k][0]) & set(header)))
    required, optional = LAYOUTS[best]
    missing = [c for c in required if c not in header]
    extra = [c for c in header if c not in required + optional]
    why = "; ".join(x for x in (
        f"missing column(s) {', '.join(missing)}" if missing else "",
        f"unknown column(s) {', '.join(extra)}" if extra else "") if x)
    return FieldError("header", f"not a WPS table; closest is {best} ({why}); see "
                                "docs/wps-data.md for the layouts", row=1, file=name)


def _apply(conn: Connection, kind: str, r: dict[str, str], actor: Actor) -> str:
    v = {k: val for k, val in r.items() if k != "_row"}
    if kind == "naps":
        return wps.save_nap(conn, v, actor)[1]
    if kind == "nap_lines":
        return wps.save_line(conn, v.pop("nap_code", ""), v, actor)[1]
    if kind == "nap_budget_lines":
        return wps.save_budget_line(conn, v.pop("nap_code", ""), v, actor)[1]
    if kind == "stipulations":
        return wps.save_stipulation(conn, v, actor)[1]
    return wps.save_fund_target(conn, v, actor)[1]


def import_csv(conn: Connection, files: list[tuple[str, bytes]], actor: Actor,
               ) -> ImportSummary:
    """Check and write every row of ``files`` (name, bytes) in ``conn``'s transaction.

    Raises :class:`Rejected` with every error found (file, row, field); the caller rolls
    back. Row keys repeated within a file are an error (the second would silently win)."""
    errors: list[FieldError] = []
    parsed: list[tuple[str, str, str, list[dict[str, str]]]] = []
    for name, data in files:
        try:
            kind, header, rows = _read(name, data)
        except Rejected as exc:
            errors += exc.errors
            continue
        if not kind:
            errors.append(_unknown_layout(name, header))
            continue
        parsed.append((name, kind, hashlib.sha256(data).hexdigest()[:12], rows))
    summary = ImportSummary()
    order = list(LAYOUTS)
    for name, kind, sha, rows in sorted(parsed, key=lambda p: order.index(p[1])):
        file_actor = Actor(actor.who, f"csv:{name} sha256:{sha}")
        seen: dict[tuple[str, ...], int] = {}
        summary.files.append({"file": name, "kind": kind, "rows": len(rows), "sha256": sha})
        for r in rows:
            n = int(r["_row"])
            key = _row_key(kind, r)
            if key in seen:
                errors.append(FieldError(KEY_FIELDS[kind][-1], f"same {'/'.join(KEY_FIELDS[kind])}"
                                         f" as row {seen[key]}", row=n, file=name))
                continue
            seen[key] = n
            try:
                summary.counts[f"{kind} {_apply(conn, kind, r, file_actor)}"] += 1
            except Invalid as exc:
                errors += [FieldError(e.field, e.message, row=n, file=name)
                           for e in exc.errors]
            if len(errors) >= MAX_ERRORS:
                break
    if errors:
        raise Rejected(errors[:MAX_ERRORS])
    return summary


KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "naps": ("code",), "nap_lines": ("nap_code", "code"),
    "nap_budget_lines": ("nap_code", "code", "year"),
    "stipulations": ("donor_ref", "recipient_ref", "year", "kind", "target"),
    "fund_targets": ("fund_ref",),
}


def _row_key(kind: str, r: dict[str, str]) -> tuple[str, ...]:
    return tuple((r.get(k) or "").strip().upper() for k in KEY_FIELDS[kind])
