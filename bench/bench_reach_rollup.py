"""Bench: the full rebuild's donor rollup (``trail.reach.Rollup``) alone, in memory.

    .venv/bin/python bench/bench_reach_rollup.py [--flows 30000] [--runs 16] [--against OLD_REACH_PY]

A synthetic ledger (``bench_trace.generate``) is written to a temporary SQLite file and
recomputed once, recording every ``Rollup.add`` call; then ``Rollup`` is timed over those
recorded parts (CPU time of the process: waiting for a core on a busy machine does not
count). With ``--against`` another version of ``fundtrack/derived/trail/reach.py`` (e.g. from
``git show 6388ee0:fundtrack/trail/reach.py``) is loaded beside it, both must give the
same rows, and the two alternate run by run.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_trace import generate  # noqa: E402

from fundtrack.db import make_engine  # noqa: E402
from fundtrack.db.migrate import upgrade  # noqa: E402
from fundtrack.derived.trail import reach  # noqa: E402
from fundtrack.derived.trail.recompute import recompute  # noqa: E402


def _recorded_parts(n_flows: int) -> list[tuple[Any, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench_reach_") as tmp:
        url = f"sqlite:///{tmp}/ledger.db"
        upgrade(url)
        engine = make_engine(url)
        with engine.begin() as c:
            generate(c, n_flows)
        calls: list[tuple[Any, Any]] = []
        add = reach.Rollup.add

        def recording(self: reach.Rollup, mv: Any, ps: Any) -> None:
            calls.append((mv, ps))
            add(self, mv, ps)

        reach.Rollup.add = recording  # type: ignore[method-assign]
        try:
            with engine.begin() as c:
                recompute(c)
        finally:
            reach.Rollup.add = add  # type: ignore[method-assign]
        engine.dispose()
    return calls


def _timed(module: ModuleType, calls: list[tuple[Any, Any]]) -> tuple[float, list[tuple]]:
    start = time.process_time()
    rollup = module.Rollup()
    for mv, ps in calls:
        rollup.add(mv, ps)
    rows = rollup.rows()
    return (time.process_time() - start) * 1000, rows


@click.command()
@click.option("--flows", default=30_000, show_default=True)
@click.option("--runs", default=16, show_default=True)
@click.option("--against", type=click.Path(exists=True, dir_okay=False), default=None)
def main(flows: int, runs: int, against: str | None) -> None:
    calls = _recorded_parts(flows)
    print(f"{len(calls)} movements with parts")
    versions: dict[str, ModuleType] = {"this": reach}
    if against:
        spec = importlib.util.spec_from_file_location("reach_against", against)
        assert spec is not None and spec.loader is not None
        other = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(other)
        versions = {"against": other, "this": reach}
        assert _timed(other, calls)[1] == _timed(reach, calls)[1], "the versions' rows differ"
    times: dict[str, list[float]] = {k: [] for k in versions}
    for i in range(runs):
        for name in list(versions)[:: 1 if i % 2 else -1]:
            times[name].append(_timed(versions[name], calls)[0])
    for name, ts in times.items():
        print(f"{name}: CPU median {statistics.median(ts):.1f} ms, min {min(ts):.1f} ms "
              f"({len(ts)} runs)")
    if against:
        print(f"this / against (median): "
              f"{statistics.median(times['this']) / statistics.median(times['against']):.3f}")


if __name__ == "__main__":
    main()
