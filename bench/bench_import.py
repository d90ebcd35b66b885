"""Import benchmark: end-to-end IATI import against the parse-only floor, same run.

    .venv/bin/python bench/bench_import.py [--repeat 3] [--big-mb 100] [--pg URL]

For each file (the 9 MB assembled Sida sample and a generated ~100 MB file) it measures,
each in a fresh subprocess so peak memory (max RSS) belongs to that run alone:

- floor: the IATI importer's parse (iterparse + field extraction), no database;
- SQLite and PostgreSQL: ``import_file`` into an empty migrated database, once for the
  ledger alone and once with the money-trail update (links, movements, attribution) that
  every import also runs inside its transaction.

It prints a Markdown table with MB/s, flows/s, the ratio to the floor and peak RSS.
Not a test: numbers depend on the machine; docs/performance.md records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared/data/iati-activity/assembled/sida-SE-0-dportal_36-39.assembled.xml"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def generate_big(target_mb: int, out: Path) -> Path:
    """Repeat the sample's activities with new identifiers until the file is ~target_mb."""
    if out.exists() and out.stat().st_size >= target_mb * 1_000_000 * 0.95:
        return out
    text = SAMPLE.read_text(encoding="utf-8")
    start = text.index("<iati-activity ")
    end = text.rindex("</iati-activities>")
    head, body = text[:start], text[start:end]
    copies = max(1, int(target_mb * 1_000_000 / len(body.encode())))
    with out.open("w", encoding="utf-8") as fh:
        fh.write(head)
        for n in range(copies):
            fh.write(re.sub(r"<iati-identifier>([^<]+)</iati-identifier>",
                            rf"<iati-identifier>\1-copy{n}</iati-identifier>", body))
        fh.write("</iati-activities>\n")
    return out


def child(mode: str, path: str, url: str | None) -> None:
    """Run one measurement and print JSON (runs in its own process)."""
    sys.path.insert(0, str(ROOT))
    from fundtrack.plugins import ImportContext
    from importers.iati import IATI

    if mode == "parse":
        t = time.perf_counter()
        flows = 0
        with open(path, "rb") as fh:
            for rec in IATI.parse(fh, ImportContext(Path(path).name)):
                flows += len(getattr(rec, "flows", ()))
        seconds = time.perf_counter() - t
    else:
        from fundtrack.db import make_engine
        from fundtrack.derived import steps as derived
        from fundtrack.ingest.pipeline import import_file

        if mode == "import-ledger":  # the ledger alone, without the money-trail update
            derived.after_import = lambda conn, batch_id: {}
        engine = make_engine(url)
        t = time.perf_counter()
        result = import_file(engine, path)
        seconds = time.perf_counter() - t
        assert result.status == "applied", result.summary()
        flows = result.counts["flows"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "flows": flows, "peak_mb": peak_mb}))


def fresh_db(kind: str, pg_base: str, workdir: Path, n: int) -> str:
    from fundtrack.db.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{workdir}/bench{n}.db"
    else:
        from sqlalchemy import create_engine, text

        from fundtrack.db import normalise_url

        admin = create_engine(normalise_url(pg_base), isolation_level="AUTOCOMMIT")
        name = f"ft_bench_{os.getpid()}_{n}"
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = pg_base.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    return url


def drop_db(url: str) -> None:
    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        return
    from sqlalchemy import create_engine, text

    from fundtrack.db import normalise_url

    base, name = url.rsplit("/", 1)
    admin = create_engine(normalise_url(base + "/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def measure(mode: str, path: Path, url: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path)] + ([url] if url else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big-mb", type=int, default=100)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2] if len(args.child) > 2 else None)
        return
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="ft-bench-"))
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [SAMPLE, generate_big(args.big_mb, out_dir / "big-iati.xml")]
    rows = []
    n = 0
    for path in files:
        mb = path.stat().st_size / 1e6
        results: dict[str, list[dict]] = {"floor": []}
        for _ in range(args.repeat):
            results["floor"].append(measure("parse", path, None))
            for kind in ("sqlite", "postgresql"):
                for mode, label in (("import-ledger", "ledger"), ("import", "+ money trail")):
                    n += 1
                    url = fresh_db(kind, args.pg, work, n)
                    try:
                        results.setdefault(f"{kind} {label}", []).append(
                            measure(mode, path, url))
                    finally:
                        drop_db(url)
        floor = statistics.median(r["seconds"] for r in results["floor"])
        for kind, runs in results.items():
            sec = statistics.median(r["seconds"] for r in runs)
            flows = runs[0]["flows"]
            rows.append((path.name, f"{mb:.1f}", kind, f"{sec:.2f}", f"{mb / sec:.1f}",
                         f"{flows / sec:,.0f}", f"{sec / floor:.2f}",
                         f"{max(r['peak_mb'] for r in runs):.0f}"))
    print(f"median of {args.repeat} runs; ratio = time / parse-only floor time in the same run\n")
    print("| file | MB | run | seconds | MB/s | flows/s | x floor | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
