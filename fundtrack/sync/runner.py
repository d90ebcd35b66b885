"""One sync run: for each configured source, list, fetch, import, withdraw, record.

Every fetched document goes through :func:`fundtrack.ingest.pipeline.import_file` (one atomic
batch, sha256 idempotence, admin permissions: a sync may write any publisher's data, as
an admin's import may), with the URL it came from on the batch. A document's state is
written in its batch's own transaction, so a run killed at any moment resumes without
duplicates. A Registry dataset missing from a complete listing is withdrawn by a batch
of its own (revertable like any other), unless the listing holds fewer than
``min_listing_ratio`` (default 50 %) of the datasets of the last good listing.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, select, update

from fundtrack import __version__
from fundtrack.db.base import current
from fundtrack.derived import steps as derived
from fundtrack.ingest.pipeline import import_file, revert_batch
from fundtrack.ledger import tables as m
from fundtrack.ledger.writer import lock_ledger
from fundtrack.sync import state
from fundtrack.sync.config import ConfigError, SourceConfig, SyncConfig
from fundtrack.sync.http import Fetched, FetchError, HttpClient, HttpSettings
from fundtrack.sync.sources import (
    Document,
    ScopeListed,
    SyncSource,
    api_key_headers,
    source_types,
)

log = logging.getLogger(__name__)

DEFAULT_MIN_LISTING_RATIO = 0.5
COUNTERS = ("listed", "downloaded", "not_modified", "unchanged", "imported", "withdrawn",
            "failed", "bytes_downloaded")


@dataclass
class SourceSummary:
    """What one source's run did: printed per source by the CLI, stored as a sync_run."""

    name: str
    type: str
    run_id: int | None = None
    status: str = "running"
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    errors: list[dict[str, str]] = field(default_factory=list)
    message: str = ""

    def line(self) -> str:
        c = self.counts
        text = (f"{self.name} ({self.type}): {self.status}; {c['listed']} listed, "
                f"{c['downloaded']} downloaded ({c['bytes_downloaded']} bytes), "
                f"{c['not_modified']} not modified, {c['unchanged']} unchanged, "
                f"{c['imported']} imported, {c['withdrawn']} withdrawn, {c['failed']} failed")
        return text + (f" - {self.message}" if self.message else "")


class _Run:
    """One source's run; the context its source sees."""

    def __init__(self, engine: Engine, cfg: SourceConfig, source: SyncSource,
                 http: HttpSettings, clock: dict[str, float],
                 sleep: Callable[[float], None], bar: Any) -> None:
        self.engine = engine
        self.name = cfg.name
        self.options = cfg.options
        self.source = source
        settings = HttpSettings(**{**http.__dict__,
                                   "headers": {**http.headers, **api_key_headers(cfg.options)}})
        self.client = HttpClient(settings, sleep=sleep)
        self.client._last = clock  # one rate limit per host across sources
        self.summary = SourceSummary(cfg.name, cfg.type)
        self.ratio = float(cfg.options.get("min_listing_ratio", DEFAULT_MIN_LISTING_RATIO))
        self.bar = bar

    # -- the SourceContext protocol ------------------------------------------------------
    def fetch(self, key: str, url: str) -> Fetched:
        prev = state.read(self.engine, self.name, key)
        conditional = prev is not None and prev["url"] == url and prev["sha256"] is not None
        fetched = self.client.get(url, etag=prev["etag"] if conditional else None,
                                  last_modified=prev["last_modified"] if conditional else None)
        if fetched.not_modified:
            self.summary.counts["not_modified"] += 1
        else:
            self.summary.counts["downloaded"] += 1
            self.summary.counts["bytes_downloaded"] += fetched.size
        return fetched

    def fail(self, key: str, url: str, message: str) -> None:
        log.error("%s: %s (%s)", self.name, message, url)
        self.summary.counts["failed"] += 1
        self.summary.errors.append({"key": key, "url": url, "error": message[:2000]})

    def state_meta(self, key: str) -> dict[str, Any]:
        prev = state.read(self.engine, self.name, key)
        return dict(prev["meta"] or {}) if prev else {}

    # -- documents -----------------------------------------------------------------------
    def process(self, doc: Document) -> None:
        self.summary.counts["listed"] += 1
        prev = state.read(self.engine, self.name, doc.key)
        if prev is not None and prev["status"] == "withdrawn":
            self._reinstate(prev)
            prev = state.read(self.engine, self.name, doc.key)
        try:
            fetched = doc.fetched or self.fetch(doc.key, doc.url)
        except FetchError as exc:
            self.fail(doc.key, doc.url, str(exc))
            # A known document keeps its URL and validators (they describe its current
            # batch); a new one is remembered as failed, to be tried again next run.
            state.put_now(self.engine, self.name, doc.key, last_error=str(exc)[:2000],
                          **({} if prev else {"status": "failed", "scope": doc.scope,
                                              "url": doc.url, "name": doc.name}))
            return
        try:
            self._settle(doc, prev, fetched)
        finally:
            fetched.discard()

    def _settle(self, doc: Document, prev: RowMapping | None, fetched: Fetched) -> None:
        common = {"scope": doc.scope, "url": doc.url, "name": doc.name,
                  "meta": {**doc.meta, "final_url": fetched.final_url}}
        if fetched.not_modified:
            state.put_now(self.engine, self.name, doc.key, **common, last_error=None,
                          etag=fetched.etag, last_modified=fetched.last_modified)
            return
        validators = {"etag": fetched.etag, "last_modified": fetched.last_modified,
                      "sha256": fetched.sha256}
        with self.engine.connect() as conn:
            prev_applied = prev is not None and state.batch_status(conn, prev["batch_id"]) == "applied"
        if prev is not None and prev["sha256"] == fetched.sha256 and prev_applied:
            self.summary.counts["unchanged"] += 1
            state.put_now(self.engine, self.name, doc.key, **common, **validators,
                          status="current", last_error=None)
            return
        retire = prev["batch_id"] if (self.source.whole_datasets and prev_applied
                                      and prev is not None) else None

        def on_merge(conn: Connection, batch_id: int) -> dict[str, int]:
            counts = {}
            if retire is not None:
                counts["retired_activities"] = _retire(conn, retire, batch_id)
            state.put(conn, self.name, doc.key, **common, **validators, batch_id=batch_id,
                      status="current", last_error=None)
            return counts

        assert fetched.path is not None
        result = import_file(self.engine, fetched.path, filename=doc.name, fmt=doc.fmt,
                             imported_by=f"sync:{self.name}", source_url=fetched.final_url,
                             on_merge=on_merge)
        log.info("%s: %s", self.name, result.summary())
        if result.status == "applied":
            self.summary.counts["imported"] += 1
        elif result.status == "unchanged":
            # These bytes are an applied batch already (another dataset, or this one's
            # earlier version back again): point at it, and when this dataset's newer
            # batch had replaced it, revert that batch so the earlier content is current.
            self.summary.counts["unchanged"] += 1
            if (retire is not None and result.batch_id != retire and prev is not None
                    and prev["sha256"] != fetched.sha256):
                revert_batch(self.engine, retire)
            state.put_now(self.engine, self.name, doc.key, **common, **validators,
                          batch_id=result.batch_id, status="current", last_error=None)
        else:
            # The previous batch stays current and the state keeps describing it, so the
            # file is fetched and tried again next run (and reported again).
            self.fail(doc.key, doc.url, f"rejected: {result.message}")
            state.put_now(self.engine, self.name, doc.key,
                          last_error=f"rejected: {result.message}"[:2000],
                          **({} if prev else {**common, "status": "failed"}))

    # -- datasets that come and go -------------------------------------------------------
    def listed(self, item: ScopeListed) -> None:
        last_good = state.last_good_count(self.engine, self.name, item.scope)
        n = len(item.keys)
        if last_good and n < self.ratio * last_good:
            self.fail(f"listing:{item.scope}", "", (
                f"listing of {item.scope} holds {n} datasets, the last good listing "
                f"{last_good}: fewer than {self.ratio:.0%} of it, so it is not trusted and "
                "nothing is withdrawn"))
            return
        for row in state.current_in_scope(self.engine, self.name, item.scope):
            if row["doc_key"] not in item.keys:
                self._withdraw(row)
        state.set_last_good_count(self.engine, self.name, item.scope, n)

    def _withdraw(self, row: RowMapping) -> None:
        """A batch that supersedes what the dataset's batch still holds current."""
        with self.engine.begin() as conn:
            lock_ledger(conn)
            meta = dict(row["meta"] or {})
            if state.batch_status(conn, row["batch_id"]) == "applied":
                b = m.ImportBatch.__table__
                stamp = state.now()
                wid = conn.execute(b.insert().values(
                    importer="sync-withdraw", importer_version=__version__,
                    file_name=f"withdrawn: {row['name'] or row['doc_key']}",
                    sha256=hashlib.sha256(f"withdraw {self.name} {row['doc_key']} {stamp}"
                                          .encode()).hexdigest(),
                    size_bytes=0, imported_by=f"sync:{self.name}", created_at=stamp,
                    status="applied", counts={}, source_url=row["url"],
                    publisher_ref=conn.execute(select(b.c.publisher_ref).where(
                        b.c.id == row["batch_id"])).scalar(),
                ).returning(b.c.id)).scalar_one()
                counts = _retire_all(conn, row["batch_id"], wid)
                counts |= derived.after_revert(conn, wid)
                conn.execute(update(b).where(b.c.id == wid).values(counts=counts))
                meta["withdrawn_by"] = wid
                log.warning("%s: dataset %s withdrawn from the listing: batch %d withdraws "
                            "%d activities of batch %d", self.name, row["name"], wid,
                            counts["withdrawn_activities"], row["batch_id"])
            state.put(conn, self.name, row["doc_key"], status="withdrawn", meta=meta)
        self.summary.counts["withdrawn"] += 1

    def _reinstate(self, prev: RowMapping) -> None:
        """A withdrawn dataset is listed again: revert its withdrawal."""
        wid = (prev["meta"] or {}).get("withdrawn_by")
        with self.engine.connect() as conn:
            applied = state.batch_status(conn, wid) == "applied"
        if wid is not None and applied:
            revert_batch(self.engine, wid)
            log.info("%s: dataset %s listed again: withdrawal batch %d reverted",
                     self.name, prev["name"], wid)
        state.put_now(self.engine, self.name, prev["doc_key"], status="current")


def _retire(conn: Connection, old_batch: int, new_batch: int) -> int:
    """What a dataset's previous batch still holds current, superseded by its new batch
    (an activity the new version no longer has is gone from the dataset)."""
    return _retire_all(conn, old_batch, new_batch)["withdrawn_activities"]


def _retire_all(conn: Connection, old_batch: int, by_batch: int) -> dict[str, int]:
    act, flow, budget = m.Activity.__table__, m.Flow.__table__, m.Budget.__table__
    out = {}
    for key, t in (("withdrawn_activities", act), ("withdrawn_flows", flow),
                   ("withdrawn_budgets", budget)):
        out[key] = conn.execute(update(t).where(t.c.batch_id == old_batch,
                                                current(t))
                                .values(superseded_by=by_batch)).rowcount
    return out


def _start_run(engine: Engine, cfg: SourceConfig, url: str) -> int:
    with engine.begin() as conn:
        conn.execute(update(state.RUN).where(state.RUN.c.source == cfg.name,
                                             state.RUN.c.status == "running")
                     .values(status="interrupted", message="the process stopped before the "
                             "run finished; the next run resumed it"))
        return conn.execute(state.RUN.insert().values(
            source=cfg.name, source_type=cfg.type, url=url[:2000], started_at=state.now(),
            status="running", errors=[], **dict.fromkeys(COUNTERS, 0),
        ).returning(state.RUN.c.id)).scalar_one()


def _finish_run(engine: Engine, summary: SourceSummary) -> None:
    with engine.begin() as conn:
        conn.execute(update(state.RUN).where(state.RUN.c.id == summary.run_id).values(
            status=summary.status, finished_at=state.now(), message=summary.message or None,
            errors=summary.errors[:200], **summary.counts))


def sync_source(engine: Engine, cfg: SourceConfig, source: SyncSource, http: HttpSettings,
                *, clock: dict[str, float] | None = None, progress: bool = False,
                sleep: Callable[[float], None] = time.sleep) -> SourceSummary:
    """Run one source to the end; the summary is also stored as a ``sync_run``."""
    from tqdm import tqdm

    bar = tqdm(desc=cfg.name, unit="file", disable=not progress, leave=False)
    run = _Run(engine, cfg, source, http, clock if clock is not None else {}, sleep, bar)
    run.summary.run_id = _start_run(engine, cfg, str(cfg.options.get("url", "")))
    try:
        for item in source.documents(run):
            if isinstance(item, ScopeListed):
                run.listed(item)
                continue
            bar.set_postfix_str(item.name[-40:], refresh=False)
            try:
                run.process(item)
            except FetchError as exc:
                run.fail(item.key, item.url, str(exc))
            bar.update(1)
    except KeyboardInterrupt:
        run.summary.status = "interrupted"
        run.summary.message = "interrupted; the next run resumes where this one stopped"
        _finish_run(engine, run.summary)
        raise
    except Exception as exc:  # a broken source must not stop the others
        log.exception("%s failed", cfg.name)
        run.fail("", str(cfg.options.get("url", "")),
                 f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
        run.summary.message = f"stopped by {type(exc).__name__}: {exc}"
    finally:
        bar.close()
    if run.summary.status == "running":
        run.summary.status = "failed" if run.summary.counts["failed"] else "ok"
    _finish_run(engine, run.summary)
    return run.summary


def run_sync(engine: Engine, config: SyncConfig, *, only: Iterable[str] | None = None,
             progress: bool = False, sleep: Callable[[float], None] = time.sleep,
             ) -> list[SourceSummary]:
    """Sync every configured source (or the ones named in ``only``), in config order."""
    types = source_types()
    wanted = set(only or [])
    unknown = wanted - {s.name for s in config.sources}
    if unknown:
        raise ConfigError(f"no source named {', '.join(sorted(unknown))} in "
                          f"{config.path or 'the config'}; configured: "
                          f"{', '.join(s.name for s in config.sources)}")
    chosen = [s for s in config.sources if not wanted or s.name in wanted]
    for cfg in chosen:  # every source checked before anything is fetched
        if cfg.type not in types:
            raise ConfigError(f"source {cfg.name}: unknown type {cfg.type!r}; known: "
                              f"{', '.join(sorted(types))}")
        try:
            types[cfg.type].check(cfg.options)
        except ConfigError as exc:
            raise ConfigError(f"source {cfg.name}: {exc}") from None
    clock: dict[str, float] = {}
    return [sync_source(engine, cfg, types[cfg.type], config.http, clock=clock,
                        progress=progress, sleep=sleep) for cfg in chosen]
