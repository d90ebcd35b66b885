"""Many files in one go: parse processes feeding the writer, derived tables once at the end.

``fundtrack import`` of a folder or of many files used to pay, per file, the parse and the
write one after the other on one core, and the derived-table update (money trail,
classification, rollup) and planner statistics after every file. Here:

- **parse processes**, one per core (:func:`parse_processes`), read the files (sha256,
  format sniff, the importer's records, their validation, the rows they become): process
  ``k`` of ``n`` takes files ``k, k+n, ...`` and sends each file's rows through a bounded
  queue of its own (chunks of ``FLUSH_ROWS`` rows, at most :data:`QUEUE_CHUNKS` in
  flight: memory stays bounded whatever the files' sizes) while this process writes,
  taking file ``i`` from queue ``i mod n``, so files are written in the order given;
  importers stay pure, the parse processes never touch the database;
- every file is still **its own atomic batch** (:func:`pipeline.write_batch`, the code
  path of a single import): a file that fails is rejected and changes nothing, the others
  stand; the same bytes again are "unchanged";
- when one rebuild of the derived tables costs less than updating them after every file
  (:func:`derive_once_is_cheaper`), the batches are merged without the update, each marked
  in its own transaction (:data:`fundtrack.derived.steps.STALE`), and every step is rebuilt
  once at the end, which clears the marks. A set interrupted before that (``kill -9``)
  leaves whole batches only and the marks: the next ``fundtrack import`` (or ``fundtrack
  recompute``) rebuilds first. In that rebuild a second process computes the
  classification (:class:`_ClassifyBeside`) while this one rebuilds identity and the money
  trail: the parse processes are done (or wait on full queues) by then, and the two cores
  work again. A rebuild never holds more than ``Settings.rebuild_max_flows`` flows (its
  memory): the set's flows are counted as they are written, and past the limit the
  rebuild runs there and the rest of the set is updated file by file.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from queue import Empty
from typing import Any

from sqlalchemy import Connection, Engine, event, func, select

from fundtrack.accounting import stored as classification
from fundtrack.config import get_settings
from fundtrack.db import make_engine
from fundtrack.derived import steps as derived
from fundtrack.ingest.pipeline import (
    BatchRows,
    BuiltRows,
    ImportResult,
    _records,
    choose_importer,
    file_digest,
    validated,
    write_batch,
)
from fundtrack.ledger import tables as m
from fundtrack.ledger.writer import FLUSH_ROWS, RowChunk, lock_ledger
from fundtrack.plugins import SNIFF_BYTES, ImportContext, importers
from fundtrack.records import FileRejected

log = logging.getLogger(__name__)

#: Messages in flight: how far the parser may run ahead of the writer.
QUEUE_CHUNKS = 8

# The cost model behind "auto" (measured on this project's benches, docs/performance.md,
# issue 17): a full rebuild costs about REBUILD_S_PER_FLOW per current flow (53k real flows
# on SQLite: 4.2 s CPU; 1M synthetic flows on PostgreSQL: ~90 s); the update after one
# file costs about PER_FILE_S plus PER_FILE_S_PER_FLOW per flow already in the ledger (a
# conservative fit: a 500-flow file takes 0.64 s into an empty database, 0.76 s into 1M
# flows and 1.28 s into 10M on PostgreSQL) in about 100 MB. A rebuild's memory grows with
# the ledger, so it never holds more than ``Settings.rebuild_max_flows`` flows
# (FUNDTRACK_REBUILD_MAX_FLOWS): :func:`import_files` counts the set's flows as it writes
# them and, past the limit, rebuilds there and goes on file by file.
REBUILD_S_PER_FLOW = 100e-6
PER_FILE_S = 0.5
PER_FILE_S_PER_FLOW = 3e-6
#: For the estimate of a set's new flows from its size (D-Portal pages: ~4.3 kB a flow).
#: Only the choice rests on it: the memory limit is kept by counting (dense files, 234
#: bytes a flow, are 17 times more flows than this estimate).
BYTES_PER_FLOW = 4000


def derive_once_is_cheaper(ledger_flows: int, new_bytes: int, files: int,
                           max_flows: int) -> bool:
    """Whether one rebuild after the set costs less than an update after every file.

    A rebuild holds at most ``max_flows`` flows (``Settings.rebuild_max_flows``); the part
    of the set past it is updated file by file either way, so only the part below it is
    weighed."""
    if files < 2 or ledger_flows >= max_flows:
        return False
    new = new_bytes / BYTES_PER_FLOW
    fits = min(new, max_flows - ledger_flows)
    share = fits / new if new else 1.0
    rebuild = REBUILD_S_PER_FLOW * (ledger_flows + fits)
    per_file = share * files * (PER_FILE_S + PER_FILE_S_PER_FLOW * ledger_flows)
    return rebuild < per_file


def resolve_stale(engine: Engine) -> dict[str, Any] | None:
    """Rebuild the derived tables if a set of files was interrupted before its rebuild."""
    with engine.begin() as conn:
        lock_ledger(conn)
        stale = derived.stale_batches(conn)
        if not stale:
            return None
        log.warning("derived tables are stale: %d batch(es) (from %d) were merged without "
                    "their update and the rebuild did not run (interrupted?); rebuilding",
                    len(stale), stale[0])
        return derived.rebuild(conn)


class _Sender:
    """Puts on the queue of a child process (parse, classification), which ends as soon
    as the writer is gone (``kill -9``) wherever it waits: on a full queue, or at its
    exit, where Python waits for the queue's pipe to drain and no one reads it."""

    def __init__(self, queue: Any, writer_pid: int, leftover: str | None = None) -> None:
        self.queue = queue
        threading.Thread(target=self._watch, args=(writer_pid, leftover), daemon=True,
                         name="writer-watch").start()

    @staticmethod
    def _watch(writer_pid: int, leftover: str | None) -> None:
        """Exit once the writer is gone, removing ``leftover`` (a file it would have)."""
        while os.getppid() == writer_pid:
            time.sleep(0.5)
        if leftover is not None:
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        os._exit(1)

    def put(self, msg: Any) -> None:
        self.queue.put(msg)


def _parse_files(paths: list[str], fmt: str | None, options: dict[str, Any],
                 known: set[str], out: Any, writer_pid: int, sqlite: bool = True,
                 strict: bool = False) -> None:
    """The parse process: for each file, ("file", sha, size, importer|None, rejected|None),
    then ("rows", RowChunk) messages, then ("end", meta, BatchRows without rows) or
    ("rejected", message, location, issues so far).

    It parses, validates and builds the rows (:class:`BatchRows`: checks, USD conversion,
    values as the driver stores them), so the writer only maps ids and inserts; rows of
    plain values also cost less to pickle than the records."""
    queue = _Sender(out, writer_pid)
    registry = importers()
    for path in paths:
        try:
            with open(path, "rb") as fh:
                sha, size = file_digest(fh)
                try:
                    importer = choose_importer(fh.read(SNIFF_BYTES), Path(path).name, fmt,
                                               registry)
                except FileRejected as exc:
                    queue.put(("file", sha, size, None, (exc.message, exc.location)))
                    continue
                finally:
                    fh.seek(0)
                queue.put(("file", sha, size, importer.name, None))
                if sha in known:  # the writer will find it "unchanged": do not parse it
                    queue.put(("end", {}, None))
                    continue
                ctx = ImportContext(filename=Path(path).name, options=options)
                batch = BatchRows(importer.name, sqlite=sqlite, strict=strict)
                rows = batch.rows
                try:
                    for item, problems in validated(_records(importer, fh, ctx)):
                        batch.add(item, problems)
                        if rows.pending >= FLUSH_ROWS:
                            queue.put(("rows", rows.take()))
                except FileRejected as exc:
                    queue.put(("rejected", exc.message, exc.location, batch.issues))
                    continue
                queue.put(("rows", rows.take()))
                batch.finish()
                queue.put(("end", ctx.meta, batch))
        except OSError as exc:
            queue.put(("file", "", 0, None, (f"could not read the file: {exc}", None)))
        except BaseException:
            queue.put(("crash", traceback.format_exc()))
            return


#: At most this many parse processes (each reads every N-th file of the set).
MAX_PARSERS = 4


def parse_processes(files: int) -> int:
    """How many parse processes for a set of ``files``: one per core this process may
    run on, at most :data:`MAX_PARSERS` and never more than the files. The writer mostly
    waits on them (the 100-file bench: the writer's own work is about a third of the
    parse's), so on 2 cores two parsers and the writer share them."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(files, cores, MAX_PARSERS))


class _Parsers:
    """The parse processes of a set: process ``k`` of ``n`` parses files ``k, k+n, ...``
    in order into its own bounded queue, so the writer takes file ``i``'s messages from
    queue ``i % n`` and the files are written in the order given, whatever finishes
    first. Killed on the way out if still running (the writer failed)."""

    def __init__(self, paths: list[str], fmt: str | None, options: dict[str, Any],
                 known: set[str], sqlite: bool, strict: bool) -> None:
        self.args = (fmt, options, known)
        self.paths, self.sqlite, self.strict = paths, sqlite, strict

    def __enter__(self) -> _Parsers:
        # fork: the parse processes start before this process holds threads or a
        # transaction and need none of its state but the importers; spawn where there is
        # no fork.
        mp: Any = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        n = parse_processes(len(self.paths))
        self.queues = [mp.Queue(maxsize=QUEUE_CHUNKS) for _ in range(n)]
        self.procs = [mp.Process(target=_parse_files,
                                 args=(self.paths[k::n], *self.args, self.queues[k],
                                       os.getpid(), self.sqlite, self.strict),
                                 name=f"fundtrack-parse-{k}", daemon=True)
                      for k in range(n)]
        for proc in self.procs:
            proc.start()
        log.debug("%d parse process(es)", n)
        return self

    def queue_of(self, i: int) -> Any:
        """The queue that carries file ``i``'s messages."""
        return self.queues[i % len(self.queues)]

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.join(timeout=30 if exc[0] is None else 0)
            if proc.is_alive():
                proc.kill()
                proc.join()


class _Rows(BuiltRows):
    """One file's rows from the parse process; its end sets ``ctx.meta`` and
    :attr:`batch`; a rejection hands over the issues noted before it."""

    def __init__(self, queue: Any, ctx: ImportContext, result: ImportResult) -> None:
        self.queue, self.ctx, self.result, self.done = queue, ctx, result, False

    def chunks(self) -> Iterator[RowChunk]:
        while not self.done:
            msg = self.queue.get()
            if msg[0] == "rows":
                yield msg[1]
                continue
            self.done = True
            if msg[0] == "end":
                self.ctx.meta.update(msg[1])
                self.batch = msg[2]
            elif msg[0] == "rejected":
                self.result.issues = msg[3]
                raise FileRejected(msg[1], msg[2])
            else:
                raise RuntimeError(f"parse process failed:\n{msg[1]}")

    def drain(self) -> None:
        """Skip what the writer did not read (an unchanged or refused file)."""
        while not self.done:
            msg = self.queue.get()
            self.done = msg[0] != "rows"
            if msg[0] == "crash":
                raise RuntimeError(f"parse process failed:\n{msg[1]}")


def _classify(url: str, out: Any, writer_pid: int, spill: str) -> None:
    """The classification process: :func:`stored.rebuild_chunks` on a connection of its
    own (read only), each chunk pickled onto the end of the file ``spill`` and announced
    as ("rows", offset, length), then ("end",) or ("crash", tb).

    Never waits for the writer: it reads every flow in one go and ends its transaction
    (a long read of ``flow`` would hold a lock the rebuild may need), and the rows wait on
    disk, not in memory, however far ahead of the writer it is."""
    queue = _Sender(out, writer_pid, leftover=spill)
    try:
        engine = make_engine(url, statement_timeout_ms=0)
        with engine.connect() as conn, open(spill, "ab") as fh:
            conn.execution_options(readonly=True)  # SQLite: a deferred BEGIN, no write lock
            for chunk in classification.rebuild_chunks(conn):
                data = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
                offset = fh.tell()
                fh.write(data)
                fh.flush()
                queue.put(("rows", offset, len(data)))
        engine.dispose()
        queue.put(("end",))
    except BaseException:
        queue.put(("crash", traceback.format_exc()))


#: SQLite: WAL pages between automatic checkpoints while a set loads (SQLite's default,
#: 1,000 pages, is a checkpoint and its fsyncs every few files: 1.2-1.9 s of the writer's
#: commits waited on the disk for the 100-file bench, 0.17 s of it CPU); the WAL file stays
#: under ~64 MB, and the default is back on the connection when it returns to the pool.
SET_CHECKPOINT_PAGES = 16_384


@contextlib.contextmanager
def _fewer_checkpoints(engine: Engine) -> Iterator[None]:
    """SQLite: :data:`SET_CHECKPOINT_PAGES` on the engine's connections for the set."""
    if engine.dialect.name != "sqlite":
        yield
        return

    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        record.info["wal_autocheckpoint"] = dbapi_conn.execute(
            "PRAGMA wal_autocheckpoint").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={SET_CHECKPOINT_PAGES}")

    def checkin(dbapi_conn: Any, record: Any) -> None:
        pages = record.info.pop("wal_autocheckpoint", None)
        if dbapi_conn is not None and pages is not None:
            dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    try:
        yield
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "checkin", checkin)


def _in_memory(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


class _ClassifyBeside:
    """The final rebuild's classification computed by a second process while this one
    rebuilds identity and the money trail (which it does not read): the parse processes are
    done by then, so the second core works; this process only inserts the rows.

    Started after the rebuild's transaction took the ledger lock, so the ledger and the
    hand decisions it reads are those the rebuild sees (no other writer until it ends).
    Its rows wait in a temporary file (a chunk of 5,000 flows in memory at a time, on
    either side): with a bounded queue instead (16 chunks), a set of 1M flows had 80,000
    classified when the writer came for them, and the other 920,000 were classified in
    the writer's own time (29 s of the rebuild's 123 s on PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.url = engine.url.render_as_string(hide_password=False)
        self.done = False

    def __enter__(self) -> _ClassifyBeside:
        mp: Any = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        self.fd, self.spill = tempfile.mkstemp(prefix="fundtrack-classify-", suffix=".pickle")
        self.queue = mp.Queue()  # announcements only: (offset, length) of each chunk
        self.proc = mp.Process(target=_classify,
                               args=(self.url, self.queue, os.getpid(), self.spill),
                               name="fundtrack-classify", daemon=True)
        self.proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.done:  # every row read: it is ending by itself
            self.proc.join(timeout=5)
        if self.proc.is_alive():  # the rebuild failed or never read the rows
            self.proc.kill()
            self.proc.join()
        os.close(self.fd)
        with contextlib.suppress(OSError):
            os.unlink(self.spill)

    def _chunks(self) -> Iterator[classification.Chunk]:
        while True:
            try:
                msg = self.queue.get(timeout=1)
            except Empty:
                if not self.proc.is_alive():
                    raise RuntimeError("the classification process ended without its rows"
                                       ) from None
                continue
            if msg[0] == "rows":
                yield pickle.loads(os.pread(self.fd, msg[2], msg[1]))
            elif msg[0] == "end":
                self.done = True
                return
            else:
                raise RuntimeError(f"classification process failed:\n{msg[1]}")

    def rebuild(self, conn: Connection) -> dict[str, Any]:
        """The classification step's rebuild, with the rows the other process computed."""
        return classification.rebuild(conn, self._chunks())


def import_files(engine: Engine, paths: Sequence[str | os.PathLike[str]], *,
                 fmt: str | None = None, dry_run: bool = False, strict: bool = False,
                 imported_by: str | None = None, options: dict[str, Any] | None = None,
                 derive: str = "auto",
                 on_result: Callable[[ImportResult], None] | None = None) -> list[ImportResult]:
    """Import the files in order, each its own atomic batch; return their results.

    ``derive``: ``"each"`` updates the derived tables after every file (as a single
    import does), ``"once"`` rebuilds them once after the set, ``"auto"`` picks the cheaper
    (:func:`derive_once_is_cheaper`) and keeps a rebuild within
    ``Settings.rebuild_max_flows``: once the ledger and the flows written so far pass it,
    the derived tables are rebuilt there and the rest of the set is updated file by file.
    ``on_result`` is called as each file is done.
    """
    files = [str(p) for p in paths]
    options = options or {}
    registry = importers()
    max_flows = get_settings().rebuild_max_flows
    if not dry_run:
        resolve_stale(engine)
    with engine.connect() as conn:
        b = m.ImportBatch.__table__
        known = set(conn.execute(select(b.c.sha256).where(b.c.status == "applied")).scalars())
        ledger_flows = conn.execute(select(func.max(m.Flow.id))).scalar() or 0
    new_bytes = sum(os.path.getsize(p) for p in files)
    once = not dry_run and (derive == "once" or (
        derive == "auto" and derive_once_is_cheaper(ledger_flows, new_bytes, len(files),
                                                    max_flows)))
    log.info("%d files, %.1f MB; derived tables %s", len(files), new_bytes / 1e6,
             "rebuilt once at the end" if once else "updated after each file")
    sqlite = engine.dialect.name == "sqlite"
    results: list[ImportResult] = []
    stale = 0  # batches merged without their update, since the last rebuild
    flows = ledger_flows
    with _fewer_checkpoints(engine):
        with _Parsers(files, fmt, options, known, sqlite, strict) as parsers:
            for i, path in enumerate(files):
                queue = parsers.queue_of(i)
                msg = queue.get()
                if msg[0] == "crash":
                    raise RuntimeError(f"parse process failed:\n{msg[1]}")
                _, sha, size, importer_name, refused = msg
                result = ImportResult(file_name=Path(path).name, sha256=sha, status="rejected")
                if refused is not None:
                    issue = FileRejected(refused[0], refused[1]).as_issue()
                    result.issues.insert(0, issue)
                    result.message = refused[0]
                else:
                    result.importer = importer_name
                    ctx = ImportContext(filename=Path(path).name, options=options)
                    items = _Rows(queue, ctx, result)
                    write_batch(engine, registry[importer_name], items, ctx, result, size=size,
                                dry_run=dry_run, strict=strict, imported_by=imported_by,
                                derive=not once)
                    items.drain()
                    if once and result.status == "applied":
                        stale += 1
                        flows += result.counts.get("flows", 0)
                results.append(result)
                if on_result is not None:
                    on_result(result)
                if once and derive == "auto" and flows > max_flows and i + 1 < len(files):
                    log.info("%d flows with the set's files so far, over "
                             "FUNDTRACK_REBUILD_MAX_FLOWS (%d), at file %d of %d: the derived "
                             "tables are rebuilt now and the rest of the set updated file by "
                             "file", flows, max_flows, i + 1, len(files))
                    _rebuild(engine, stale)
                    once, stale = False, 0
        # Interrupted before here: the batches' marks stay and the next start rebuilds.
        if stale:
            _rebuild(engine, stale)
    return results


def _rebuild(engine: Engine, batches: int) -> None:
    """Rebuild every derived table once, for ``batches`` batches merged without their
    update (which clears their marks); the classification computed beside."""
    started = time.perf_counter()
    with engine.begin() as conn:
        lock_ledger(conn)
        if _in_memory(engine):  # another connection would see another database
            derived.rebuild(conn)
        else:
            with _ClassifyBeside(engine) as beside:
                derived.rebuild(conn, given={"classification": beside.rebuild})
    log.info("derived tables rebuilt once for %d batch(es) in %.1f s", batches,
             time.perf_counter() - started)
