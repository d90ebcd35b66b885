"""Bench: the rollup step of one import, maintained by delta vs recomputed by years, same run.

    python bench/bench_rollup_delta.py --admin-url postgresql://postgres@127.0.0.1:55462/postgres \\
        --db ft_1m --empty ft_empty --flows 500 --rounds 3

Each named database (``--empty`` is created and migrated first, so it holds only the bench's
own files) gets, per round and per path, one freshly generated file of ``--flows`` flows
(value year 2023, ``bench_load_imports.write_file``) and then a re-issue of it (same
activity identifiers, new amounts: every flow superseded). The rollup step is timed alone
(its ``before_import`` and ``after_import`` hooks) by swapping the step in
``steps.STEPS`` for a timed one; ``years`` is the previous code (recompute every rollup
row of the batch's value years, kept in ``maintain._after_import_by_years``), ``delta`` the
current one. The two paths alternate, so load drift hits both. Wall seconds, this
process's CPU seconds and the PostgreSQL backend's CPU seconds (``/proc``, the cluster runs
on this machine) are printed, medians over the rounds, with the ratio years/delta.

Afterwards the maintained rollup is compared with a full rebuild (it must be equal).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load_imports import write_file  # noqa: E402

from fundtrack.db import make_engine  # noqa: E402
from fundtrack.db.migrate import upgrade  # noqa: E402
from fundtrack.derived import steps  # noqa: E402
from fundtrack.derived.rollup import maintain as rollup  # noqa: E402
from fundtrack.derived.rollup.tables import FlowRollup  # noqa: E402
from fundtrack.ingest.pipeline import import_file  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _backend_cpu(conn: Any) -> float:
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


class Timed:
    """The rollup step's hooks, timed (wall, own CPU, backend CPU) per import."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.spent = [0.0, 0.0, 0.0]
        self.recomputed = 0

    def _run(self, conn: Any, fn: Any, batch_id: int) -> dict[str, int]:
        w, c, b = time.perf_counter(), time.process_time(), _backend_cpu(conn)
        out = fn(conn, batch_id)
        self.spent[0] += time.perf_counter() - w
        self.spent[1] += time.process_time() - c
        self.spent[2] += _backend_cpu(conn) - b
        self.recomputed += out.get("rollup_recomputed", 0) + out.get("rollup_probed", 0)
        return out

    def before(self, conn: Any, batch_id: int) -> dict[str, int]:
        return self._run(conn, rollup.before_import, batch_id)

    def after(self, conn: Any, batch_id: int) -> dict[str, int]:
        fn = rollup.after_import if self.path == "delta" else rollup._after_import_by_years
        return self._run(conn, fn, batch_id)

    def step(self) -> steps.Step:
        return steps.Step("rollup", self.after, rollup.after_revert, rollup.rebuild,
                          reports_counts=False,
                          before_import=self.before if self.path == "delta" else None)


def one_import(eng: Any, path: Path, how: str) -> tuple[list[float], float, str]:
    saved = steps.STEPS
    timed = Timed(how)
    steps.STEPS = tuple(timed.step() if s.name == "rollup" else s for s in saved)
    try:
        t = time.perf_counter()
        res = import_file(eng, path)
        total = time.perf_counter() - t
    finally:
        steps.STEPS = saved
    return timed.spent, total, (f"{res.status} {res.counts.get('flows', 0)} flows, "
                                f"{res.counts.get('replaced_flows', 0)} replaced, "
                                f"{timed.recomputed} keys read from their flows")


def snapshot(eng: Any) -> list[tuple[Any, ...]]:
    r = FlowRollup.__table__
    cols = [c for c in r.c if c.name != "id"]
    with eng.connect() as c:
        return sorted((tuple(str(v) for v in row) for row in c.execute(
            r.select().with_only_columns(*cols))), key=repr)


def bench(url: str, n_flows: int, rounds: int, check: bool) -> None:
    eng = make_engine(url, statement_timeout_ms=0)
    with eng.connect() as c:
        flows = c.execute(text("SELECT count(*) FROM flow WHERE superseded_by IS NULL")).scalar()
    print(f"\n== {url.rsplit('/', 1)[1]}: {flows:,} current flows ==", flush=True)
    found: dict[tuple[str, str], list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as work:
        for r in range(rounds):
            for how in ("delta", "years") if r % 2 == 0 else ("years", "delta"):
                tag = f"{how}{r}{time.strftime('%H%M%S')}"
                f = Path(work) / f"{tag}.xml"
                for kind, seed in (("new file", 1), ("re-issue", 2)):
                    write_file(f, tag, n_flows, random.Random(seed + r))
                    spent, total, outcome = one_import(eng, f, how)
                    found.setdefault((kind, how), []).append([*spent, total])
                    print(f"  round {r} {kind:8} {how:5}: rollup {spent[0]:.3f} s wall, "
                          f"{spent[1]:.3f} s CPU here, {spent[2]:.2f} s CPU backend; "
                          f"import {total:.2f} s ({outcome})", flush=True)
    for kind in ("new file", "re-issue"):
        med = {how: [statistics.median(x[i] for x in found[(kind, how)]) for i in range(4)]
               for how in ("years", "delta")}
        y, d = med["years"], med["delta"]
        print(f"  {kind}: rollup median years {y[0]:.3f} s (CPU {y[1]:.3f} + backend {y[2]:.2f}) "
              f"vs delta {d[0]:.3f} s (CPU {d[1]:.3f} + backend {d[2]:.2f}): "
              f"{y[0] / max(d[0], 1e-6):.0f}x; import {y[3]:.2f} s vs {d[3]:.2f} s", flush=True)
    if check:
        before = snapshot(eng)
        t = time.perf_counter()
        with eng.begin() as c:
            rollup.rebuild(c)
        print(f"  rebuild {time.perf_counter() - t:.1f} s; maintained rollup equals the rebuild: "
              f"{snapshot(eng) == before} ({len(before):,} rows)", flush=True)
    eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:55462/postgres")
    ap.add_argument("--db", action="append", default=[], help="an existing (loaded) database")
    ap.add_argument("--empty", action="append", default=[], help="a database to (re)create empty")
    ap.add_argument("--flows", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--check", action="store_true", help="compare with a full rebuild at the end")
    a = ap.parse_args()
    base = a.admin_url.rsplit("/", 1)[0]
    for db in a.empty:
        with psycopg.connect(a.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}"')
        upgrade(f"{base}/{db}")
    with open("/proc/loadavg") as f:
        print("load average before:", f.read().strip(), flush=True)
    for db in [*a.empty, *a.db]:
        bench(f"{base}/{db}", a.flows, a.rounds, a.check)
    with open("/proc/loadavg") as f:
        print("load average after:", f.read().strip())


if __name__ == "__main__":
    main()
