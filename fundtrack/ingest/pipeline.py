"""The ingest pipeline: file -> importer -> canonical records -> validation -> ledger.

One file is one batch and one transaction. Records stream from the importer into
bulk writes (COPY on PostgreSQL, multi-row INSERT on SQLite) inside that transaction; at
the end a set-based merge marks the rows this batch replaces, and the transaction
commits. A file that cannot be read, or (with ``strict``) has any error, rolls back:
nothing of it is written. The same bytes again (same sha256) change nothing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, bindparam, exists, select, update
from sqlalchemy.orm import aliased

from fundtrack.db import dialect
from fundtrack.db.base import current
from fundtrack.derived import steps as derived
from fundtrack.ingest.issuelog import MAX_STORED_ISSUES, IssueLog
from fundtrack.ingest.validate import SKIPPED, Validator
from fundtrack.ledger import tables as m
from fundtrack.ledger.writer import (
    FLUSH_ROWS,
    LedgerWriter,
    RowBuilder,
    RowChunk,
    lock_ledger,
    supersede,
)
from fundtrack.plugins import SNIFF_BYTES, ImportContext, Importer, importers
from fundtrack.records import (
    ActivityRecord,
    FileRejected,
    FlowRecord,
    Issue,
    OrganisationRecord,
    Severity,
)

log = logging.getLogger(__name__)

#: Record kinds the reconciliation counts, in the order they are shown.
KINDS = ("activities", "flows", "budgets", "organisations")
#: Singular/plural words for a reconciliation line.
KIND_WORDS = {"activities": ("activity", "activities"), "flows": ("flow", "flows"),
              "budgets": ("budget", "budgets"),
              "organisations": ("organisation", "organisations")}


class NotPermitted(Exception):
    """The importing user may not write this report (not their organisation)."""


@dataclass
class ImportResult:
    """What happened to one file; printed by the CLI and returned by the API."""

    file_name: str
    sha256: str
    status: str  # applied | unchanged | rejected | dry-run
    importer: str | None = None
    batch_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: The first issues in full and every issue counted (``issues.total``, ``.kinds()``).
    issues: IssueLog = field(default_factory=IssueLog)
    message: str = ""
    #: Reconciliation, per record kind (:data:`KINDS`): found = imported + skipped.
    found: dict[str, int] = field(default_factory=dict)
    imported: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "rejected"

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def status_text(self) -> str:
        """``applied``, or ``applied, N skipped`` when records were left out."""
        return status_text(self.status, self.skipped_total)

    def reconciliation(self) -> str:
        """One line per record kind present: found = imported + skipped."""
        return reconciliation_text(self.found, self.imported, self.skipped)

    def summary(self) -> str:
        c = self.counts
        head = f"{self.file_name}: {self.status_text}"
        if self.status in ("applied", "dry-run"):
            head += (f" (batch {self.batch_id}) " if self.batch_id else " ") + (
                f"{c.get('activities', 0)} activities, {c.get('flows', 0)} flows, "
                f"{c.get('budgets', 0)} budgets, {c.get('organisations', 0)} organisations; "
                f"replaced {c.get('replaced_activities', 0)} activities; "
                f"skipped {c.get('skipped', 0)} records; {c.get('warnings', 0)} warnings; "
                f"{c.get('flows_without_usd', 0)} flows without USD rate"
            )
        if self.message:
            head += f" - {self.message}"
        if self.found:
            head += "\n  " + self.reconciliation()
        return head


def status_text(status: str, skipped: int | None) -> str:
    """A batch's status as people read it: never a plain "applied" if anything was left out."""
    if status in ("applied", "dry-run") and skipped:
        return f"{status}, {skipped:,} skipped"
    return status


def reconciliation_text(found: dict[str, int], imported: dict[str, int],
                        skipped: dict[str, int]) -> str:
    """``found in file: 5 activities = 2 imported + 3 skipped; ...`` for kinds present."""
    parts = []
    for kind in KINDS:
        if not found.get(kind):
            continue
        one, many = KIND_WORDS[kind]
        n = found[kind]
        parts.append(f"{n:,} {one if n == 1 else many} = {imported.get(kind, 0):,} imported"
                     f" + {skipped.get(kind, 0):,} skipped")
    return "found in file: " + ("; ".join(parts) if parts else "no records")


def file_digest(stream: BinaryIO) -> tuple[str, int]:
    """sha256 and size of a seekable stream, leaving it at the start."""
    h = hashlib.sha256()
    size = 0
    stream.seek(0)
    while chunk := stream.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return h.hexdigest(), size


def choose_importer(head: bytes, filename: str, fmt: str | None,
                    registry: dict[str, Importer] | None = None) -> Importer:
    """The importer named by ``fmt``, else the one that sniffs the head most confidently."""
    registry = registry if registry is not None else importers()
    if fmt:
        if fmt not in registry:
            raise FileRejected(f"unknown format {fmt!r}; known formats: {', '.join(sorted(registry))}")
        return registry[fmt]
    best: tuple[float, str] | None = None
    for name, imp in sorted(registry.items()):
        try:
            score = imp.sniff(head, filename)
        except Exception:  # a plugin's bad sniff must not break the others
            log.warning("importer %r: sniff raised; it is skipped for %s", name, filename,
                        exc_info=True)
            score = None
        if score and (best is None or score > best[0]):
            best = (score, name)
    if best is None:
        raise FileRejected(
            "format not recognised; known formats: "
            + "; ".join(f"{n} ({registry[n].title})" for n in sorted(registry))
        )
    return registry[best[1]]


class _CountingReader(io.RawIOBase):
    """Wraps a stream to report bytes read, for progress bars on large files."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None]) -> None:
        self.raw = raw
        self.progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        if n:
            self.progress(n)
        return n


def _records(importer: Importer, stream: BinaryIO, ctx: ImportContext) -> Iterator[Any]:
    try:
        yield from importer.parse(stream, ctx)
    except FileRejected:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise FileRejected(f"{importer.name} could not read the file: {exc}") from exc
    except RecursionError:
        raise FileRejected(f"{importer.name} could not read the file: it is nested too deeply"
                           ) from None


def import_file(
    engine: Engine,
    source: str | os.PathLike[str] | BinaryIO,
    *,
    filename: str | None = None,
    fmt: str | None = None,
    dry_run: bool = False,
    strict: bool = False,
    imported_by: str | None = None,
    allowed_publishers: Iterable[str] | None = None,
    options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    registry: dict[str, Importer] | None = None,
    source_url: str | None = None,
    on_merge: Callable[[Connection, int], dict[str, int]] | None = None,
) -> ImportResult:
    """Import one file as one atomic batch and say what happened.

    ``allowed_publishers``: when given (a reporter's organisations), any record reported
    by another organisation rejects the whole file. ``source_url``: where the file was
    fetched from, kept on the batch. ``on_merge(conn, batch_id)``: called in the batch's
    transaction after the merge, before derived tables are refreshed (``fundtrack sync``
    retires what a dataset's new version no longer holds and records its state there).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        with path.open("rb") as fh:
            return import_file(engine, fh, filename=filename or path.name, fmt=fmt,
                               dry_run=dry_run, strict=strict, imported_by=imported_by,
                               allowed_publishers=allowed_publishers, options=options,
                               progress=progress, registry=registry, source_url=source_url,
                               on_merge=on_merge)
    stream = source
    name = filename or getattr(stream, "name", "upload")
    sha, size = file_digest(stream)
    result = ImportResult(file_name=str(name), sha256=sha, status="rejected")
    try:
        importer = choose_importer(stream.read(SNIFF_BYTES), str(name), fmt, registry)
    except FileRejected as exc:
        result.issues.insert(0, exc.as_issue())
        result.message = exc.message
        return result
    finally:
        stream.seek(0)
    result.importer = importer.name
    ctx = ImportContext(filename=str(name), options=options or {})
    reader: BinaryIO = stream
    if progress is not None:
        reader = io.BufferedReader(_CountingReader(stream, progress), 1 << 16)  # type: ignore[assignment]
    return write_batch(engine, importer, validated(_records(importer, reader, ctx)), ctx, result,
                       size=size, dry_run=dry_run, strict=strict, imported_by=imported_by,
                       allowed_publishers=allowed_publishers, source_url=source_url,
                       on_merge=on_merge)


def validated(records: Iterable[Any]) -> Iterator[tuple[Any, list[Issue] | None]]:
    """(record, its problems) for each record of one file, as :class:`Validator` finds
    them (it may repair the record in place); (issue, None) for an importer's issue. Pure:
    the parse process of a many-file import runs it beside the importer."""
    validator = Validator()
    for item in records:
        yield (item, None) if isinstance(item, Issue) else (item, validator.check(item))


class BatchRows:
    """The pure half of writing one file's batch: each validated record is checked (strict
    mode, the importing user's organisations, duplicate activities) and turned into rows
    (:class:`RowBuilder`); no database. A many-file import runs it in the parse process,
    so the writer only inserts; :func:`write_batch` runs it beside the writer otherwise."""

    def __init__(self, importer: str, *, sqlite: bool, strict: bool = False,
                 allowed: set[str] | None = None, issues: IssueLog | None = None) -> None:
        self.importer, self.strict, self.allowed = importer, strict, allowed
        self.rows = RowBuilder(sqlite)
        self.issues = issues if issues is not None else IssueLog()
        self.publishers: set[str] = set()
        self.first_seen: dict[tuple[str, str], str] = {}
        #: The flows left without USD, once per currency (after every other issue).
        self.rate_issues: list[Issue] = []

    def note(self, issue: Issue) -> None:
        if self.strict and issue.severity is Severity.ERROR:
            raise FileRejected(f"strict mode: {issue.message}", issue.location)
        self.issues.append(issue)

    def check_publisher(self, ref: str | None, where: str, verb: str = "reported by") -> None:
        if ref:
            self.publishers.add(ref)
        allowed = self.allowed
        if allowed is not None and ref not in allowed:
            raise NotPermitted(
                f"{where}: {verb} {ref or 'no organisation'}, which is not one of yours "
                f"({', '.join(sorted(allowed)) or 'none'}); file refused, nothing written")

    def add(self, item: Any, problems: list[Issue] | None) -> None:
        """One :func:`validated` item."""
        note, check_publisher = self.note, self.check_publisher
        if problems is None:  # an issue the importer reported
            note(item)
            return
        for problem in problems:
            note(problem)
        if any(p.code == SKIPPED for p in problems):
            return
        if isinstance(item, ActivityRecord):
            check_publisher(item.reporting_org.ref, item.location)
            key = (item.reporting_org.ref or "", item.identifier[:300])
            if key in self.first_seen:
                # Policy (docs/iati.md): every copy is kept, as the file says, and
                # reported; a later file with this identifier replaces all of them.
                # Dropping one would lose money the publisher reported.
                note(Issue(Severity.WARNING, f"activity {item.identifier} appears more than "
                           f"once in this file (first at {self.first_seen[key]}); every copy is "
                           "kept", item.location, "duplicate-activity"))
            else:
                self.first_seen[key] = item.location
            self.rows.add_activity(item)
        elif isinstance(item, FlowRecord):
            check_publisher(item.reporting_org.ref if item.reporting_org else None,
                            item.location)
            self.rows.add_flow(item, None)
        elif isinstance(item, OrganisationRecord):
            # The writer changes the organisation the file describes (its
            # organisation-identifier): that one must be the importer's, whatever
            # the file's reporting-org says.
            if item.reporting_org and item.reporting_org.ref:
                check_publisher(item.reporting_org.ref, item.location)
            check_publisher(item.ref.strip(), item.location, "describes organisation")
            self.rows.add_organisation(item)
        else:
            raise FileRejected(f"importer {self.importer} yielded an unknown record "
                               f"type {type(item).__name__}")

    def finish(self) -> None:
        """After the last record."""
        self.first_seen = {}
        self.rate_issues = self.rows.rate_issues()


class BuiltRows(ABC):
    """Where a batch's rows come from: built in this process (:class:`_BuildHere`) or in
    the parse process of a many-file import. :meth:`chunks` yields them; after the last,
    :attr:`batch` is the finished :class:`BatchRows` (without rows). Raises
    :class:`FileRejected` if the file failed."""

    batch: BatchRows | None = None

    @abstractmethod
    def chunks(self) -> Iterator[RowChunk]:
        """The rows, a chunk at a time."""


class _BuildHere(BuiltRows):
    """Rows built in this process from :func:`validated` items, :data:`FLUSH_ROWS` at a time."""

    def __init__(self, items: Iterable[Any], batch: BatchRows) -> None:
        self.items, self.pending = items, batch

    def chunks(self) -> Iterator[RowChunk]:
        batch, rows = self.pending, self.pending.rows
        for item, problems in self.items:
            batch.add(item, problems)
            if rows.pending >= FLUSH_ROWS:
                yield rows.take()
        yield rows.take()
        batch.finish()
        self.batch = batch


def write_batch(engine: Engine, importer: Importer, items: Iterable[Any], ctx: ImportContext,
                result: ImportResult, *, size: int, dry_run: bool = False, strict: bool = False,
                imported_by: str | None = None,
                allowed_publishers: Iterable[str] | None = None, source_url: str | None = None,
                on_merge: Callable[[Connection, int], dict[str, int]] | None = None,
                derive: bool = True) -> ImportResult:
    """Write one file's records (``items``: :func:`validated` records) as one atomic
    batch, in one transaction; fill in and return ``result``.

    ``derive=False`` leaves the derived tables for one rebuild after a set of files and
    marks the batch (:func:`fundtrack.derived.steps.mark_stale`) in the same transaction,
    so an interruption before that rebuild is seen and resolved on the next start.
    """
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            lock_ledger(conn)
            existing = conn.execute(
                select(m.ImportBatch.id, m.ImportBatch.publisher_ref)
                .where(m.ImportBatch.sha256 == result.sha256, m.ImportBatch.status == "applied")
                .order_by(m.ImportBatch.id.desc())
            ).first()
            if existing is not None and allowed_publishers is not None:
                # Permission first: another organisation's file is refused, whatever its
                # bytes; "unchanged" would tell a stranger the file was imported.
                allowed = set(allowed_publishers)
                theirs = {p for p in (existing.publisher_ref or "").split(",") if p}
                if not theirs or not theirs <= allowed:
                    raise NotPermitted(
                        f"this file is reported by {', '.join(sorted(theirs)) or 'no organisation'}"
                        f", which is not one of yours ({', '.join(sorted(allowed)) or 'none'}); "
                        "file refused, nothing written")
            if existing is not None:
                # The same bytes again: "unchanged", unless a newer file has replaced
                # what they hold since (then refused as older, never "unchanged").
                refuse_if_superseded_by_newer(conn, existing.id)
                trans.rollback()
                result.status = "unchanged"
                result.batch_id = existing.id
                result.message = (f"same file already imported as batch {existing.id}; "
                                  "nothing changed")
                return result
            batch_id = _run(conn, importer, items, ctx, result, size=size,
                            strict=strict, imported_by=imported_by,
                            allowed=set(allowed_publishers) if allowed_publishers is not None
                            else None,
                            source_url=source_url, on_merge=on_merge, derive=derive)
        except FileRejected as exc:
            trans.rollback()
            result.status = "rejected"
            result.batch_id = None
            result.issues.insert(0, exc.as_issue())  # what refused the file comes first
            result.message = exc.message + (f" at {exc.location}" if exc.location else "")
            return result
        except BaseException:
            trans.rollback()
            raise
        if dry_run:
            trans.rollback()
            result.status = "dry-run"
            result.batch_id = None
            result.message = "dry run: nothing written"
        else:
            trans.commit()
            result.status = "applied"
            result.batch_id = batch_id
    return result


def _run(conn: Connection, importer: Importer, items: Iterable[Any], ctx: ImportContext,
         result: ImportResult, *, size: int, strict: bool, imported_by: str | None,
         allowed: set[str] | None, source_url: str | None = None,
         on_merge: Callable[[Connection, int], dict[str, int]] | None = None,
         derive: bool = True) -> int:
    batch = m.ImportBatch.__table__
    name = ctx.filename
    batch_id = conn.execute(
        batch.insert().values(
            importer=importer.name, importer_version=importer.version, file_name=name,
            sha256=result.sha256, size_bytes=size, imported_by=imported_by,
            created_at=datetime.now(UTC), status="applied", counts={}, source_url=source_url,
        ).returning(batch.c.id)
    ).scalar_one()
    source = items if isinstance(items, BuiltRows) else _BuildHere(
        items, BatchRows(importer.name, sqlite=conn.dialect.name == "sqlite", strict=strict,
                         allowed=allowed, issues=result.issues))
    writer = LedgerWriter(conn, batch_id)
    try:
        for chunk in source.chunks():
            writer.write(chunk)
        writer.wait()
    finally:
        writer.close()
    built = source.batch
    assert built is not None
    issues = result.issues = built.issues
    publishers = built.publishers
    counts = built.rows.counts
    dialect.first_statistics(conn)  # a new database: before its first queries of the rows
    counts.update(supersede(conn, batch_id, built.rows.described_orgs))
    refuse_if_older(conn, batch_id, ctx.meta.get("generated"))
    if on_merge is not None:
        counts.update(on_merge(conn, batch_id))
    counts["organisations"] = writer.upsert_organisations(built.rows)
    if derive:
        counts.update(derived.after_import(conn, batch_id))
    else:
        derived.mark_stale(counts)
    issues.extend(built.rate_issues)
    skipped = {kind: issues.skipped.get(kind, 0) for kind in KINDS}
    imported = {kind: counts.get(kind, 0) for kind in KINDS}
    found = {kind: imported[kind] + skipped[kind] for kind in KINDS}
    counts["skipped"] = sum(skipped.values())
    counts["warnings"] = issues.count_severity(Severity.WARNING)
    if sum(imported.values()) == 0:
        raise FileRejected("the file holds no records fundtrack can import"
                           + (f" ({counts['skipped']} skipped)" if counts["skipped"] else ""))
    result.counts = counts
    result.found, result.imported, result.skipped = found, imported, skipped
    if issues:
        conn.execute(m.BatchIssue.__table__.insert(), [
            {"batch_id": batch_id, "severity": i.severity.value, "code": i.code,
             "location": i.location, "message": i.message}
            for i in issues[:MAX_STORED_ISSUES]
        ])
    if issues.dropped:
        counts["issues_not_stored"] = issues.dropped
    if publishers:
        conn.execute(m.BatchPublisher.__table__.insert(),
                     [{"batch_id": batch_id, "org_ref": ref[:200]} for ref in sorted(publishers)])
    generated = ctx.meta.get("generated")
    conn.execute(update(m.ImportBatch).where(m.ImportBatch.id == batch_id).values(
        counts=counts, publisher_ref=",".join(sorted(publishers)) or None,
        file_generated=str(generated)[:40] if generated else None,
        **{f"{kind}_{what}": n for what, tally in
           (("found", found), ("imported", imported), ("skipped", skipped))
           for kind, n in tally.items() if kind in KINDS}))
    return batch_id


def batch_publishers(conn: Connection, batch_id: int) -> set[str]:
    """Every organisation whose reports the batch holds (what revert permission reads)."""
    t = m.BatchPublisher.__table__
    return set(conn.execute(select(t.c.org_ref).where(t.c.batch_id == batch_id)).scalars())


def refuse_if_superseded_by_newer(conn: Connection, batch_id: int) -> None:
    """The older-file policy for the same bytes as batch ``batch_id``: if a later file
    has replaced its activities with newer versions, the file is refused as older."""
    act = m.Activity.__table__
    if not conn.execute(select(exists().where(act.c.batch_id == batch_id,
                                              act.c.superseded_by.is_not(None)))).scalar():
        return
    cur = aliased(m.Activity)
    batch, mine = m.ImportBatch.__table__, aliased(m.ImportBatch)
    rows = conn.execute(
        select(act.c.iati_identifier, cur.last_updated, cur.batch_id, act.c.last_updated,
               batch.c.file_name, batch.c.file_generated, mine.file_generated)
        .join(cur, (cur.iati_identifier == act.c.iati_identifier)
              & (cur.reporting_org_ref == act.c.reporting_org_ref)
              & current(cur))
        .join(batch, batch.c.id == cur.batch_id)
        .join(mine, mine.id == act.c.batch_id)
        .where(act.c.batch_id == batch_id, act.c.superseded_by.is_not(None))
    ).all()
    _refuse_older([r[:6] for r in rows], rows[0][6] if rows else None)


def _moment(text: str | None) -> str | None:
    """An IATI datetime as a comparable ``YYYY-MM-DDTHH:MM:SS`` (time zone dropped),
    or None if it is not one."""
    if not text:
        return None
    t = text.strip().replace(" ", "T")
    if len(t) < 10:
        return None
    try:
        datetime.fromisoformat(t[:10])
    except ValueError:
        return None
    t = t[:19]
    return t + "T00:00:00"[len(t) - 10:] if len(t) < 19 else t


def refuse_if_older(conn: Connection, batch_id: int, generated: str | None) -> None:
    """Policy: a file older than what it would replace is refused, nothing written.

    Older means: one of its activities carries a ``last-updated-datetime`` before that
    of the current version it replaces, or the file's ``generated-datetime`` is before
    that of a file whose activities it replaces. (Reinstating an older version is a
    revert of the newer batch, which says what it brings back.) Dates missing on
    either side are not compared. Runs after :func:`supersede`, over the rows it marked
    (one statement with a join, whatever the number of activities).
    """
    rows = conn.execute(_replaced_statement(), {"batch": batch_id}).all()
    _refuse_older(rows, generated)


@lru_cache(maxsize=1)
def _replaced_statement() -> Any:
    """What :func:`refuse_if_older` reads, built once (``:batch``): Core aliases, as the
    ORM's ``aliased()`` cost ~10 ms a file to adapt, and building them each time ~1 ms."""
    act = m.Activity.__table__
    new = act.alias("new")
    batch, batch_id = m.ImportBatch.__table__, bindparam("batch")
    return (select(act.c.iati_identifier, act.c.last_updated, act.c.batch_id,
                   new.c.last_updated, batch.c.file_name, batch.c.file_generated)
            .join(new, (new.c.iati_identifier == act.c.iati_identifier)
                  & (new.c.reporting_org_ref == act.c.reporting_org_ref)
                  & (new.c.batch_id == batch_id))
            .join(batch, batch.c.id == act.c.batch_id)
            .where(act.c.superseded_by == batch_id))


def _refuse_older(rows: Iterable[Any], generated: str | None) -> None:
    """Raise if, for any (identifier, current last-updated, current batch, this file's
    last-updated, current file name, current generated) row, this file is older."""
    mine = _moment(generated)
    for ident, old_updated, old_batch, new_updated, old_file, old_generated in rows:
        old_u, new_u = _moment(old_updated), _moment(new_updated)
        if old_u and new_u and new_u < old_u:
            raise FileRejected(
                f"this file is older than what is imported: activity {ident} was last updated "
                f"{new_updated} in this file but {old_updated} in batch {old_batch} "
                f"({old_file}); nothing written. To go back to the older version, revert "
                f"batch {old_batch}")
        theirs = _moment(old_generated)
        if mine and theirs and mine < theirs:
            raise FileRejected(
                f"this file is older than what is imported: it was generated {generated}, "
                f"batch {old_batch} ({old_file}) was generated {old_generated} and holds "
                f"activity {ident}; nothing written. To go back to the older version, revert "
                f"batch {old_batch}")


def revert_batch(engine: Engine, batch_id: int) -> dict[str, int]:
    """Undo an applied batch: delete its rows, restore what it replaced. Atomic."""
    from fundtrack.ledger.writer import revert

    with engine.begin() as conn:
        lock_ledger(conn)
        status = conn.execute(
            select(m.ImportBatch.status).where(m.ImportBatch.id == batch_id)).scalar()
        if status is None:
            raise LookupError(f"no import batch {batch_id}")
        if status != "applied":
            raise ValueError(f"batch {batch_id} is {status}, not applied")
        counts = revert(conn, batch_id)
        counts.update(derived.after_revert(conn, batch_id))
        return counts
