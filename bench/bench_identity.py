"""Identity benchmark (issue 15): what resolving organisations costs.

    .venv/bin/python bench/bench_identity.py [--repeat 3] [--flows 1000000] [--pg URL]

1. The import of the 9.5 MB Sida sample (the file of docs/performance.md) into an empty
   SQLite database, with every derived step, against the same import with the identity
   step left out (the trail then reads reported refs): the added share.
2. ``identity.rebuild`` over ``--flows`` synthetic current flows (providers and receivers
   drawn from 20,000 refs and names, a fifth named only), as ``fundtrack recompute`` runs
   it: seconds to resolve and to write ``flow_party``; then the identity step after one
   more batch of 500 such flows (a tenth with new organisations): the incremental update
   (:mod:`fundtrack.identity.incremental`) against the rebuild it replaced.
3. ``--batch``: a database of every shared IATI activity file but ``dportal_100.xml``
   (imported one by one), then ``dportal_100.xml`` (514 flows) into a copy of it, once
   with the identity step incremental and once with the full rebuild after the import
   (what the step did before): the step's own time and the import's (SQLite).

Not a test: numbers depend on the machine; docs/performance.md records a run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared/data/iati-activity/assembled/sida-SE-0-dportal_36-39.assembled.xml"


def _import_seconds(with_identity: bool, url: str) -> float:
    from fundtrack.db.engine import make_engine
    from fundtrack.db.migrate import upgrade
    from fundtrack.derived import steps
    from fundtrack.ingest.pipeline import import_file

    upgrade(url)
    saved = steps.STEPS
    if not with_identity:
        steps.STEPS = tuple(s for s in saved if s.name != "identity")
    try:
        eng = make_engine(url)
        t0 = time.perf_counter()
        result = import_file(eng, SAMPLE)
        seconds = time.perf_counter() - t0
        assert result.status == "applied", result.summary()
        eng.dispose()
    finally:
        steps.STEPS = saved
    return seconds


def bench_import(repeat: int, pg: str | None) -> None:
    for label in ("sqlite",) + (("postgresql",) if pg else ()):
        times: dict[bool, list[float]] = {True: [], False: []}
        for i in range(repeat):
            for with_identity in (False, True):
                if label == "sqlite":
                    with tempfile.TemporaryDirectory() as d:
                        times[with_identity].append(_import_seconds(
                            with_identity, f"sqlite:///{d}/bench.db"))
                else:
                    times[with_identity].append(_import_seconds(with_identity, _fresh_pg(pg, i)))
        a, b = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {SAMPLE.name} | {label} | {a:.2f} s | {b:.2f} s | +{(b / a - 1) * 100:.1f}% |")


def _fresh_pg(pg: str | None, i: int) -> str:
    from sqlalchemy import create_engine

    assert pg
    name = f"bench_identity_{i}_{random.randrange(10**9)}"
    admin = create_engine(pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return pg.rsplit("/", 1)[0] + "/" + name


def bench_rebuild(n: int) -> None:
    from fundtrack.db.engine import make_engine
    from fundtrack.db.migrate import upgrade
    from fundtrack.identity import resolve
    from fundtrack.ledger import tables as m

    rng = random.Random(15)
    orgs = [(f"XX-BENCH-{i}", f"Bench Organisation {i}") for i in range(20_000)]
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/rebuild.db"
        upgrade(url)
        eng = make_engine(url)
        with eng.begin() as c:
            c.execute(insert(m.ImportBatch.__table__).values(
                id=1, importer="bench", importer_version="0", file_name="bench", sha256="0",
                size_bytes=0, created_at=datetime.now(UTC), status="applied", counts={}))
            rows = []
            for i in range(n):
                p, r = rng.choice(orgs), rng.choice(orgs)
                rows.append({"id": i + 1, "batch_id": 1, "kind": "DISBURSEMENT",
                             "amount": "1", "currency": "USD", "value_date": date(2020, 1, 1),
                             "reporting_org_ref": p[0],
                             "provider_ref": None if i % 5 == 0 else p[0], "provider_name": p[1],
                             "receiver_ref": None if i % 5 == 1 else r[0], "receiver_name": r[1]})
                if len(rows) == 50_000:
                    c.execute(insert(m.Flow.__table__), rows)
                    rows = []
            if rows:
                c.execute(insert(m.Flow.__table__), rows)
        with eng.begin() as c:
            t0 = time.perf_counter()
            out = resolve.rebuild(c)
            total = time.perf_counter() - t0
        print(f"| {n:,} flows | {out['parties']:,} parties | {out['organisations']:,} orgs | "
              f"resolve {out['seconds_identity_resolve']} s | write "
              f"{out['seconds_identity_write']} s | total {total:.1f} s |")
        _bench_batch_synthetic(eng, n, orgs, rng)
        eng.dispose()


def _bench_batch_synthetic(eng: object, n: int, orgs: list[tuple[str, str]],
                           rng: random.Random) -> None:
    """500 more flows as batch 2: the incremental step against a rebuild (rolled back)."""
    from fundtrack.identity import incremental, resolve
    from fundtrack.ledger import tables as m

    with eng.begin() as c:  # type: ignore[attr-defined]
        c.execute(insert(m.ImportBatch.__table__).values(
            id=2, importer="bench", importer_version="0", file_name="bench2", sha256="1",
            size_bytes=0, created_at=datetime.now(UTC), status="applied", counts={}))
        rows = []
        for i in range(500):
            p = rng.choice(orgs)
            r = (f"XX-NEW-{i}", f"New Organisation {i}") if i % 10 == 0 else rng.choice(orgs)
            rows.append({"id": n + i + 1, "batch_id": 2, "kind": "DISBURSEMENT",
                         "amount": "1", "currency": "USD", "value_date": date(2021, 1, 1),
                         "reporting_org_ref": p[0], "provider_ref": p[0],
                         "provider_name": p[1], "receiver_ref": r[0], "receiver_name": r[1]})
        c.execute(insert(m.Flow.__table__), rows)
    for label, run in (("incremental", lambda c: incremental.update_after(c, 2)),
                       ("rebuild", resolve.rebuild)):
        with eng.connect() as c:  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            out = run(c)
            total = time.perf_counter() - t0
            c.rollback()
        print(f"| +500 flows into {n:,} | identity step, {label} | {total:.2f} s | "
              f"{out.get('flows_written', '')} flow_party rows written |")


def bench_batch_real() -> None:
    """dportal_100.xml into a database of the other shared IATI files (SQLite)."""
    import shutil

    from fundtrack.db.engine import make_engine
    from fundtrack.db.migrate import upgrade
    from fundtrack.derived import steps
    from fundtrack.identity import resolve
    from fundtrack.ingest.pipeline import import_file

    data = ROOT.parent / "shared/data/iati-activity"
    one = data / "dportal-covid19-2021/dportal_100.xml"
    files = sorted(p for p in data.rglob("*.xml") if p != one)
    with tempfile.TemporaryDirectory() as d:
        base = f"{d}/base.db"
        upgrade(f"sqlite:///{base}")
        eng = make_engine(f"sqlite:///{base}")
        t0 = time.perf_counter()
        applied = sum(import_file(eng, p).status == "applied" for p in files)
        eng.dispose()
        print(f"base: {applied} of {len(files)} files applied in "
              f"{time.perf_counter() - t0:.1f} s")
        saved = steps.STEPS
        for label in ("incremental", "rebuild"):
            db = f"{d}/{label}.db"
            shutil.copy(base, db)
            spent: list[float] = []
            ident = saved[0]
            hook = ident.after_import if label == "incremental" else (
                lambda c, _b: resolve.rebuild(c) and {})

            def timed(c: object, b: int, hook: object = hook,
                      spent: list[float] = spent) -> dict[str, int]:
                t = time.perf_counter()
                hook(c, b)  # type: ignore[operator]
                spent.append(time.perf_counter() - t)
                return {}

            steps.STEPS = (steps.Step("identity", timed, ident.after_revert, ident.rebuild,
                                      reads_registry=True, reports_counts=False), *saved[1:])
            try:
                eng = make_engine(f"sqlite:///{db}")
                t0 = time.perf_counter()
                res = import_file(eng, one)
                total = time.perf_counter() - t0
                eng.dispose()
            finally:
                steps.STEPS = saved
            print(f"| {one.name} into the other {applied} files | identity step {label} | "
                  f"{spent[0]:.3f} s | import {total:.2f} s | {res.status} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--pg", default=None)
    ap.add_argument("--rebuild-only", action="store_true")
    ap.add_argument("--batch", action="store_true",
                    help="only the real-file batch benchmark (3.)")
    args = ap.parse_args()
    if args.batch:
        bench_batch_real()
        return
    if args.rebuild_only:
        bench_rebuild(args.flows)
        return
    print("| file | database | without identity | with identity | added |")
    print("|---|---|---|---|---|")
    bench_import(args.repeat, args.pg)
    print()
    bench_rebuild(args.flows)


if __name__ == "__main__":
    main()
