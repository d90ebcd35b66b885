"""Identity benchmark (issue 15): what resolving organisations costs.

    .venv/bin/python bench/bench_identity.py [--repeat 3] [--flows 1000000] [--pg URL]

1. The import of the 9.5 MB Sida sample (the file of docs/performance.md) into an empty
   SQLite database, with every derived step, against the same import with the identity
   step left out (the trail then reads reported refs): the added share.
2. ``identity.rebuild`` over ``--flows`` synthetic current flows (providers and receivers
   drawn from 20,000 refs and names, a fifth named only), as ``fundtrack recompute`` runs
   it: seconds to resolve and to write ``flow_party``.

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
        eng.dispose()
    print(f"| {n:,} flows | {out['parties']:,} parties | {out['organisations']:,} orgs | "
          f"resolve {out['seconds_identity_resolve']} s | write "
          f"{out['seconds_identity_write']} s | total {total:.1f} s |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--pg", default=None)
    ap.add_argument("--rebuild-only", action="store_true")
    args = ap.parse_args()
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
