"""The 1325 classification step (``flow_classification``) on real files: before vs after.

    .venv/bin/python bench/bench_classify.py [--before REF | --code before=DIR]
        [--repeat 3] [--keep DIR]

Imports a fixed set of real files once into a temporary SQLite database (every IATI
activity file under ``../shared/data/iati-activity`` except ``assembled/``, which is four
D-Portal pages joined), then, each in its own process and alternating trees so load drifts
hit both alike, times on that same database:

- ``stored.rebuild``: every current flow classified afresh and its rows written;
- ``stored.after_import`` of the largest batch (its flows and their activities' flows),
  rolled back after timing.

Each twice in the child: "cold" is the first call in a fresh process (plugin entry points
loaded, statements compiled, regexes built), "warm" the second (as in an import or a
server, where those are done already).

"before" is ``git archive REF`` (default ``main``) unpacked to a temporary folder, or a
source tree given with ``--code before=DIR``; "after" is this tree. Printed per tree: the
best CPU seconds (process time of the child) and wall seconds of each step, their ratio
before/after, and a SHA-256 of the stored rows each tree wrote (they must be equal: the
same rows byte for byte). Load average before and after is printed: the machine is shared.
Not a test: numbers go in the report / docs/performance.md by the lead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

CHILD = r"""
import hashlib, json, sys, time
from sqlalchemy import func, select
from fundtrack.db.engine import make_engine
from fundtrack.accounting import stored
from fundtrack.accounting.tables import FlowClassification
from fundtrack.ledger import tables as m

url, step = sys.argv[1], sys.argv[2]
engine = make_engine(url)
t = FlowClassification.__table__
out = {}
with engine.connect() as conn:
    if step == "rebuild":
        for run in ("cold", "warm"):
            with conn.begin():
                c0, w0 = time.process_time(), time.perf_counter()
                n = stored.rebuild(conn)["classified_flows"]
                out[run] = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}
        out["flows"] = n
        h = hashlib.sha256()
        for r in conn.execute(select(t.c.flow_id, t.c.dimension, t.c.is_in, t.c.rules)
                              .order_by(t.c.flow_id, t.c.dimension)):
            h.update(repr((r.flow_id, r.dimension, bool(r.is_in), r.rules)).encode())
        out["rows"] = conn.execute(select(func.count()).select_from(t)).scalar()
        out["sha256"] = h.hexdigest()[:16]
    else:
        f = m.Flow.__table__
        batch = conn.execute(select(f.c.batch_id).group_by(f.c.batch_id)
                             .order_by(func.count().desc(), f.c.batch_id).limit(1)).scalar()
        conn.rollback()
        for run in ("cold", "warm"):
            tx = conn.begin()
            c0, w0 = time.process_time(), time.perf_counter()
            n = stored.after_import(conn, batch)["classified_flows"]
            out[run] = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}
            tx.rollback()
        out.update(flows=n, batch=batch)
print(json.dumps(out))
"""

LOAD = r"""
import sys
from pathlib import Path
from fundtrack.db.engine import make_engine
from fundtrack.db.migrate import upgrade
from fundtrack.ingest.pipeline import import_file

url = sys.argv[1]
upgrade(url)
engine = make_engine(url)
for p in sys.argv[2:]:
    try:
        import_file(engine, p)
    except Exception as e:  # a broken real file: the others stand
        print(f"skipped {Path(p).name}: {e!s:.100}", file=sys.stderr)
"""


def files() -> list[Path]:
    return sorted(p for p in (DATA / "iati-activity").rglob("*.xml")
                  if "assembled" not in p.relative_to(DATA).parts)


def child(tree: Path, script: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("FUNDTRACK_ACCOUNTING_DATA", None)
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, env=env, cwd=tree)
    if proc.returncode:
        sys.exit(f"{tree}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="main", help="git ref of the 'before' code")
    ap.add_argument("--code", action="append", default=[], help="before=DIR: a source tree")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="keep (and reuse) the database in this folder")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-classify-"))
    try:
        trees: dict[str, Path] = {}
        for spec in a.code:
            name, _, path = spec.partition("=")
            trees[name] = Path(path).resolve()
        if "before" not in trees:
            tar = work / "before.tar"
            subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(tar), a.before],
                           check=True)
            with tarfile.open(tar) as tf:
                tf.extractall(work / "before", filter="data")
            trees["before"] = work / "before"
        trees["after"] = ROOT

        src = files()
        mb = sum(p.stat().st_size for p in src) / 1e6
        dbdir = Path(a.keep) if a.keep else work
        dbdir.mkdir(parents=True, exist_ok=True)
        db = dbdir / "classify.db"
        url = f"sqlite:///{db}"
        if not db.exists():
            t = time.perf_counter()
            child(ROOT, LOAD, url, *map(str, src))
            print(f"loaded {len(src)} files ({mb:.1f} MB) in {time.perf_counter() - t:.0f} s")
        print(f"load average before: {os.getloadavg()}")

        best: dict[tuple[str, str, str], dict] = {}
        info: dict[str, dict] = {}
        sha: dict[str, str] = {}
        for _ in range(a.repeat):
            for name in ("before", "after"):
                for step in ("rebuild", "after_import"):
                    r = child(trees[name], CHILD, url, step)
                    info[step] = r
                    if "sha256" in r and sha.setdefault(name, r["sha256"]) != r["sha256"]:
                        sys.exit(f"{name}: rows differ between runs")
                    for run in ("cold", "warm"):
                        k = (name, step, run)
                        if k not in best or r[run]["cpu"] < best[k]["cpu"]:
                            best[k] = r[run]
        print(f"load average after: {os.getloadavg()}")
        for step in ("rebuild", "after_import"):
            for run in ("cold", "warm"):
                b, n = best[("before", step, run)], best[("after", step, run)]
                print(f"{step:12s} {run} flows={info[step]['flows']:6d}  before cpu "
                      f"{b['cpu']:6.2f} s wall {b['wall']:6.2f} s | after cpu {n['cpu']:6.2f} s "
                      f"wall {n['wall']:6.2f} s | ratio cpu {b['cpu'] / n['cpu']:4.1f}x "
                      f"wall {b['wall'] / n['wall']:4.1f}x")
        print(f"rows={info['rebuild']['rows']} sha256 before {sha['before']} after "
              f"{sha['after']}: {'IDENTICAL' if sha['before'] == sha['after'] else 'DIFFER'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
