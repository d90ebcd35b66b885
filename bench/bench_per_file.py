"""The fixed cost of one file in a many-file import: many tiny real files, profiled.

    .venv/bin/python bench/bench_per_file.py [--files 60] [--url URL] [--derived once|each]

Copies a small shared IATI file (``iati-flattener-fixtures/fcdo-activity.xml``, one
activity) ``--files`` times with its identifier suffixed, imports them with
:func:`fundtrack.ingest.many.import_files` into a fresh SQLite database (or ``--url``, an
empty migrated database), and prints the writer's wall and CPU time per file and the
functions that take it (cProfile, per file). The parse process is not in the profile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT.parent / "shared/data/iati-activity/iati-flattener-fixtures/fcdo-activity.xml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--url")
    ap.add_argument("--derived", default="once")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from fundtrack.db import make_engine
    from fundtrack.db.migrate import upgrade
    from fundtrack.ingest.many import import_files

    work = Path(tempfile.mkdtemp(prefix="ft_per_file_"))
    data = SMALL.read_bytes()
    files = []
    for n in range(args.files):
        p = work / f"f{n:04d}.xml"
        p.write_bytes(re.sub(rb"(<iati-identifier>[^<]+)", rb"\1-" + str(n).encode(), data))
        files.append(p)
    url = args.url or f"sqlite:///{work}/db.sqlite"
    if not args.url:
        upgrade(url)
    engine = make_engine(url)
    prof = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    prof.enable()
    results = import_files(engine, files, derive=args.derived)
    prof.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert all(r.status == "applied" for r in results), [r.summary() for r in results]
    n = len(files)
    print(f"{n} files, derived {args.derived}: writer wall {wall / n * 1000:.1f} ms/file, "
          f"CPU {cpu / n * 1000:.1f} ms/file (whole run {wall:.2f} s)")
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()
