"""One batch's derived-table update, step by step, old code against new, same database.

    nice -n 10 .venv/bin/python bench/bench_trail_batch.py --pages 60 \\
        --code before=/tmp/h17t/base [--pg-template postgresql://.../ft_b]

(a) SQLite: a database holding ``--pages`` D-Portal pages (the 13 shared pages, copied
with suffixed identifiers as ``bench_many_files.py`` does; built once, cached), then one
more page (``dportal_100.xml``, 514 flows, a new copy) imported through the real
pipeline. (b) ``--pg-template``: a database made by ``bench_trace.py --flows N`` (full
trail), copied with ``CREATE DATABASE ... TEMPLATE`` for each run; the same page is
imported, then ``bench_trace.SMALL_FILE`` (money into an agency's project: a chain).

Each code tree (this one, and every ``--code LABEL=DIR``) runs in its own process on its
own copy of the same database. Per step: cumulative seconds from cProfile (the same
overhead on both sides; wall, or with ``--cpu`` this process's CPU: on SQLite that is all
the work, and it holds on a loaded machine), wall and CPU of the whole import. ``--check``: after the import,
the trail tables equal a full rebuild's (every row, exact).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT.parent / "shared" / "data" / "iati-activity" / "dportal-covid19-2021"
CACHE = Path(tempfile.gettempdir()) / "ft_bench_trail_batch"
PAGE = "dportal_100.xml"
_IDENT = re.compile(rb"(<iati-identifier>\s*)([^<]+?)(\s*</iati-identifier>)")
_REF = re.compile(rb'((?:provider|receiver)-activity-id=")([^"]+)(")')

#: (label, module, function): the steps of one batch
STEPS = [
    ("identity", "fundtrack.identity.incremental", "update_after"),
    ("trail links", "fundtrack.derived.trail.links", "after_import"),
    ("trail movements", "fundtrack.derived.trail.movements", "update"),
    ("trail attribution (all)", "fundtrack.derived.trail.attribution", "update"),
    ("  of which reach", "fundtrack.derived.trail.reach", "update"),
    ("trail (all)", "fundtrack.derived.trail.recompute", "after_import"),
    ("classification", "fundtrack.accounting.stored", "after_import"),
    ("rollup", "fundtrack.derived.rollup.maintain", "after_import"),
    ("derived (all)", "fundtrack.derived.steps", "after_import"),
]


def copy_page(src: Path, dest: Path, sfx: str) -> Path:
    """``src`` with every identifier and activity link suffixed: a new publisher's page."""
    s = sfx.encode()
    data = _IDENT.sub(lambda m: m[1] + m[2] + s + m[3], src.read_bytes())
    dest.write_bytes(_REF.sub(lambda m: m[1] + m[2] + s + m[3], data))
    return dest


def base_sqlite(pages: int) -> Path:
    """The cached SQLite database of ``pages`` pages (built with the derived tables once)."""
    db = CACHE / f"base{pages}.sqlite"
    if db.exists():
        return db
    sys.path.insert(0, str(ROOT))
    from fundtrack.db import make_engine
    from fundtrack.db.migrate import upgrade
    from fundtrack.ingest.many import import_files

    CACHE.mkdir(parents=True, exist_ok=True)
    src = sorted(PAGES.glob("*.xml"))
    files = []
    for n in range(pages):
        copy, p = divmod(n, len(src))
        dest = CACHE / f"p{n:03d}.xml"
        if copy == 0:
            shutil.copyfile(src[p], dest)
        else:
            copy_page(src[p], dest, f"-c{copy}")
        files.append(dest)
    tmp = db.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    upgrade(f"sqlite:///{tmp}")
    t0 = time.perf_counter()
    res = import_files(make_engine(f"sqlite:///{tmp}"), files, derive="once")
    print(f"built {db} ({sum(r.status == 'applied' for r in res)} pages applied) in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    tmp.rename(db)
    return db


CHILD = r"""
import cProfile, json, os, pstats, sys, time
from pathlib import Path
from fundtrack.db import make_engine
from fundtrack.ingest.pipeline import import_file
url, files, steps, check = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4] == "1"
engine = make_engine(url, statement_timeout_ms=0)
out = []
for f in files:
    prof = cProfile.Profile(time.process_time) if os.environ.get("BENCH_CPU") else cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    prof.enable()
    r = import_file(engine, f)
    prof.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if os.environ.get("BENCH_PROFILE"):
        prof.dump_stats(os.environ["BENCH_PROFILE"] + "." + Path(f).name)
    st = pstats.Stats(prof).stats
    got = {}
    for label, mod, fn in steps:
        path = mod.replace(".", "/") + ".py"
        got[label] = round(sum(v[3] for k, v in st.items() if k[0].endswith(path) and k[2] == fn), 3)
    out.append({"file": Path(f).name, "status": r.status, "wall": round(wall, 3), "cpu": round(cpu, 3),
                "steps": got, "reattributed": r.counts.get("reattributed_accounts")})
if check:
    sys.path.insert(0, os.environ["BENCH_DIR"])
    from bench_trail_batch import snapshot
    from fundtrack.derived.trail.recompute import recompute
    before = snapshot(engine)
    with engine.begin() as c:
        recompute(c)
    out.append({"incremental_equals_rebuild": before == snapshot(engine)})
print("RESULT " + json.dumps(out))
"""


def snapshot(engine) -> dict[str, list]:
    """Every trail row (movements named by flow, no generated ids), amounts as text."""
    from sqlalchemy import text

    q = {
        "movement": "SELECT flow_id, mirror_flow_id, method, kind, src_org, src_activity, "
                    "dst_org, dst_activity, amount, currency, amount_usd, earmarking, sort_key "
                    "FROM movement",
        "attribution": "SELECT m.flow_id, m.mirror_flow_id, a.originator_ref, "
                       "a.untraced_reason, a.amount, a.amount_usd, a.depth FROM attribution a "
                       "JOIN movement m ON m.id = a.movement_id",
        "trail_reach": "SELECT originator_ref, kind, org, activity, currency, amount, "
                       "amount_usd, rank, n, depth FROM trail_reach",
        "trail_link": "SELECT flow_id, kind, relation, target_ref, target_activity_id, "
                      "target_flow_id, resolved FROM trail_link",
        "flow_party": "SELECT flow_id, p.ref, r.ref, x.ref FROM flow_party fp "
                      "LEFT JOIN canonical_org p ON p.id = fp.provider_org_id "
                      "LEFT JOIN canonical_org r ON r.id = fp.receiver_org_id "
                      "LEFT JOIN canonical_org x ON x.id = fp.reporter_org_id",
    }
    with engine.connect() as c:
        return {t: sorted(tuple(str(v) for v in row) for row in c.execute(text(s)))
                for t, s in q.items()}


def run_child(tree: Path, url: str, files: list[Path], check: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), BENCH_DIR=str(ROOT / "bench"))
    p = subprocess.run([sys.executable, "-c", CHILD, url, json.dumps([str(f) for f in files]),
                        json.dumps(STEPS), "1" if check else "0"],
                       env=env, capture_output=True, text=True, cwd=str(tree))
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.split("RESULT ", 1)[1])


def pg_copy(template: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    base, db = template.rsplit("/", 1)
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        c.execute(text(f"CREATE DATABASE {name} TEMPLATE {db}"))
    admin.dispose()
    return f"{base}/{name}"


def table(label: str, results: dict[str, list[dict]]) -> None:
    labels = list(results)
    print(f"\n### {label}\n")
    print("| file | step | " + " | ".join(f"{x} s" for x in labels)
          + (f" | {labels[1]} / {labels[0]}" if len(labels) > 1 else "") + " |")
    print("|---|---|" + "---|" * (len(labels) + (len(labels) > 1)))
    first = results[labels[0]]
    for i, r in enumerate(first):
        if "file" not in r:
            continue
        rows = [(s[0], [results[x][i]["steps"][s[0]] for x in labels]) for s in STEPS]
        rows += [("import wall", [results[x][i]["wall"] for x in labels]),
                 ("import CPU (this process)", [results[x][i]["cpu"] for x in labels])]
        for name, vals in rows:
            ratio = (f" | {vals[1] / vals[0]:.1f}x" if len(vals) > 1 and vals[0] else
                     " | -" if len(vals) > 1 else "")
            print(f"| {r['file']} | {name} | " + " | ".join(f"{v:.3f}" for v in vals)
                  + ratio + " |")
        print(f"| {r['file']} | accounts re-attributed | "
              + " | ".join(str(results[x][i]["reattributed"]) for x in labels)
              + (" | |" if len(labels) > 1 else " |"))
    for x in labels:
        for r in results[x]:
            if "incremental_equals_rebuild" in r:
                print(f"\n{x}: incremental == full rebuild: {r['incremental_equals_rebuild']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=60)
    ap.add_argument("--code", action="append", default=[], help="LABEL=DIR")
    ap.add_argument("--pg-template", help="a bench_trace.py database (case b)")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--cpu", action="store_true",
                    help="per step: this process's CPU seconds, not wall (SQLite: all of it)")
    ap.add_argument("--pg-files", default="page,small",
                    help="case (b): which files, in order (page: the D-Portal page, small: "
                         "bench_trace's chain file)")
    args = ap.parse_args()
    codes = [("this tree", ROOT)] + [(c.split("=", 1)[0], Path(c.split("=", 1)[1]))
                                     for c in args.code]
    if args.cpu:
        os.environ["BENCH_CPU"] = "1"
    work = Path(tempfile.mkdtemp(prefix="ft_bench_batch_"))
    page = copy_page(PAGES / PAGE, work / "page.xml", "-new")
    print(f"load average before: {os.getloadavg()}")
    if not args.no_sqlite:
        db = base_sqlite(args.pages)
        res = {}
        for label, tree in codes:
            copy = work / f"{len(res)}.sqlite"
            shutil.copyfile(db, copy)
            res[label] = run_child(tree, f"sqlite:///{copy}", [page], args.check)
            copy.unlink()
        table(f"(a) SQLite, {args.pages} pages, then {PAGE} (a new copy)", res)
    if args.pg_template:
        sys.path.insert(0, str(ROOT))
        sys.path.insert(0, str(ROOT / "bench"))
        from bench_trace import SMALL_FILE

        small = work / "small.xml"
        small.write_text(SMALL_FILE.replace("XB-NGO-NEW", "XB-NGO-NEWB"))
        res = {}
        for i, (label, tree) in enumerate(codes):
            url = pg_copy(args.pg_template, f"ft_batch_{i}")
            pick = {"page": page, "small": small}
            res[label] = run_child(tree, url, [pick[x] for x in args.pg_files.split(",")],
                                   args.check)
        table(f"(b) PostgreSQL, {args.pg_template.rsplit('/', 1)[1]}, then {PAGE} and "
              "bench_trace's small file", res)
    print(f"\nload average after: {os.getloadavg()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
