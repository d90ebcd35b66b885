"""Many real files in one ``fundtrack import`` command, against the parse-only floor.

    .venv/bin/python bench/bench_many_files.py [--min-files 100] [--db sqlite,postgresql]
        [--code DIR] [--keep]

The set: every IATI activity and organisation file under ``../shared/data`` (the D-Portal
pages included; the ``assembled/`` file is left out, it is four of those pages joined) and
the demo D-Portal pages of ``fundtrack/data/demo``, then copies of the activity files with
every activity identifier (and the provider/receiver activity references) suffixed, so each
copy is new data rather than the same bytes (which would be "unchanged" and cost nothing),
until there are at least ``--min-files`` files. Built once in ``bench/out/many-files``.

Measured in the same run, each in its own process:

- floor: the IATI importer's parse of every file (lxml iterparse + field extraction), no
  database;
- SQLite and PostgreSQL: ``fundtrack import --quiet DIR`` as one command into an empty
  migrated database, derived tables complete at the end. PostgreSQL is a PRIVATE cluster
  (``initdb`` in a temporary folder, own port, ``fsync=off``), never the shared server.

Printed: wall seconds, CPU seconds (user + system of the command and every process it
started and waited for: the parse process included), MB/s, flows/s, wall ratio to the floor,
peak RSS of the largest single process (MB), and the load average before and after.
``--generated N,F --then-one`` also imports one more generated file of F flows on its
own after each set (as an upload would be), and the same file into an empty database.
``--code DIR`` runs the command from another source tree (e.g. ``git archive`` of the
commit before) with this tree's files and floor, for before/after numbers in one run.
Not a test: docs/performance.md records runs.

2026-12-07 11:10-11:21 UTC, load average 6-8 on 2 shared cores (wall is noise at this load;
compare CPU): SQLite 10.2 / 11.0 s CPU against 10.8 / 11.0 for the code before (8cdabc4),
PostgreSQL 9.2 / 9.3 against 9.4 / 9.7 (client processes only); wall 3.7-4.7 MB/s SQLite,
2.7-3.4 PostgreSQL; floor 2.0-2.2 s CPU. The CPU moved from the writer (SQLite 7.2 -> 5.5 s,
PostgreSQL 5.0 -> 3.6 s, medians of 4 and 3 alternating runs) to the classification
process, which runs during the writer's identity and trail rebuild; targets not met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
OUT = ROOT / "bench" / "out" / "many-files"


def source_files() -> tuple[list[Path], list[Path]]:
    """(every IATI file to import as it is, the activity files that may be copied)."""
    activity = sorted(p for p in (DATA / "iati-activity").rglob("*.xml")
                      if "assembled" not in p.parts)
    activity += sorted((DATA / "iati-legacy-1.0x").glob("*.xml"))
    activity += sorted(p for p in (DATA / "iati-example").rglob("*.xml")
                       if "organisation" not in p.name)
    have = {p.name for p in activity}
    activity += sorted(p for p in (ROOT / "fundtrack/data/demo").glob("dportal_*.xml")
                       if p.name not in have)
    orgs = sorted((DATA / "iati-organisation").glob("*.xml"))
    orgs += sorted(p for p in (DATA / "iati-example").rglob("*.xml") if "organisation" in p.name)
    return activity + orgs, activity


_IDENT = re.compile(rb"(<iati-identifier>\s*)([^<]+?)(\s*</iati-identifier>)")
_REF = re.compile(rb'((?:provider|receiver)-activity-id=")([^"]+)(")')


def build_set(min_files: int) -> list[Path]:
    """The files of the benchmark, copies made once (same bytes on every run)."""
    originals, activity = source_files()
    OUT.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for n, p in enumerate(originals):
        dest = OUT / f"{n:03d}-{p.name}"
        if not dest.exists():
            shutil.copyfile(p, dest)
        files.append(dest)
    copy = 0
    while len(files) < min_files:
        copy += 1
        for p in activity:
            if len(files) >= min_files:
                break
            dest = OUT / f"{len(files):03d}-copy{copy}-{p.name}"
            if not dest.exists():
                sfx = f"-copy{copy}".encode()
                data = _IDENT.sub(lambda m, sfx=sfx: m[1] + m[2] + sfx + m[3], p.read_bytes())
                dest.write_bytes(_REF.sub(lambda m, sfx=sfx: m[1] + m[2] + sfx + m[3], data))
            files.append(dest)
    for stale in set(OUT.iterdir()) - set(files):
        stale.unlink()
    return files


def generated_set(spec: str) -> list[Path]:
    """``N,F``: N generated IATI files of F flows each (``bench_one_file.write_file``: the
    money-trail generator's agencies, pooled funds and NGOs, a new tag per file), made once
    in ``bench/out/many-generated-NxF``: issue 17's (c) in files of realistic size."""
    n, per_file = (int(x) for x in spec.split(","))
    out = ROOT / "bench" / "out" / f"many-generated-{n}x{per_file}"
    out.mkdir(parents=True, exist_ok=True)
    return [_generated(out / f"{i:04d}.xml", i, per_file) for i in range(n)]


def one_more(spec: str) -> Path:
    """The file after a ``--generated`` set: the next tag, the same size (an upload into
    the organisation pairs the set already holds)."""
    n, per_file = (int(x) for x in spec.split(","))
    return _generated(ROOT / "bench" / "out" / f"one-more-{n}x{per_file}.xml", n, per_file)


def _generated(dest: Path, i: int, per_file: int) -> Path:
    """The ``i``-th generated file (tag ``m{i}``) at ``dest``, written once."""
    if not dest.exists():
        sys.path.insert(0, str(ROOT / "bench"))
        from bench_one_file import write_file

        write_file(dest, f"m{i}", per_file)
    return dest


def floor_child(paths: list[str]) -> None:
    """The parse-only floor over every file (runs in its own process); prints JSON."""
    sys.path.insert(0, str(ROOT))
    from fundtrack.plugins import ImportContext
    from importers.iati import IATI

    flows = 0
    for path in paths:
        with open(path, "rb") as fh, contextlib.suppress(Exception):  # the broken ones
            for rec in IATI.parse(fh, ImportContext(Path(path).name)):
                flows += len(getattr(rec, "flows", ()))
    print(json.dumps({"flows": flows}))


def run(cmd: list[str], env: dict[str, str] | None = None, log: list[str] | None = None
        ) -> tuple[float, float, float, str]:
    """Run a command; (wall s, CPU s of it and its waited-for children, peak RSS MB of its
    largest process, stdout). ``log``: runs it at log level INFO and appends its "rebuilt
    once" line (the one rebuild's seconds) to the list.

    The command is reaped with ``wait4``, whose usage is that command's alone: the
    ``RUSAGE_CHILDREN`` peak this bench read before is the largest of every command run
    so far, so each run after the first reported at least the peak of the runs before."""
    if log is not None:
        env = dict(env or os.environ, FUNDTRACK_LOG_LEVEL="INFO")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    out: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k, f: out.__setitem__(k, f.read()), args=(k, f))
               for k, f in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    for r in readers:
        r.join()
    returncode = os.waitstatus_to_exitcode(status)
    proc.returncode = returncode  # reaped here: Popen must not wait for it again
    stdout, stderr = out["stdout"], out["stderr"]
    if log is not None:
        log.extend(line.split(": ", 1)[-1] for line in stderr.splitlines()
                   if "rebuilt once" in line or "derived tables, rebuild:" in line
                   or "FUNDTRACK_REBUILD_MAX_FLOWS" in line)
    if returncode not in (0, 1):  # 1: some file rejected, which the set may hold
        sys.exit(f"{cmd} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    if returncode == 1:  # say which files were refused and why: a bench must not hide it
        print(f"{cmd[-1]}: some files were refused:\n{stdout[-1500:]}\n{stderr[-1500:]}",
              file=sys.stderr)
    return wall, cpu, usage.ru_maxrss / 1024, stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (initdb in a temp dir, own port); yields its base URL."""
    base = Path(tempfile.mkdtemp(prefix="ft_bench_pg_"))
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if prefix:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()

    def pg(tool: str, *args: str) -> None:
        subprocess.run([*prefix, str(PG_BIN / tool), *args], check=True, capture_output=True,
                       timeout=120)

    pg("initdb", "-D", str(base / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
    pg("pg_ctl", "-D", str(base / "data"), "-l", str(base / "log"), "-w", "-o",
       f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg("pg_ctl", "-D", str(base / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def fresh_db(kind: str, pg_base: str | None, work: Path, n: int, tree: Path = ROOT) -> str:
    """An empty database migrated by ``tree``'s own migrations (a "before" tree runs on
    its own schema, not this tree's)."""
    from sqlalchemy import create_engine, text

    if kind == "sqlite":
        url = f"sqlite:///{work}/many{n}.db"
    else:
        assert pg_base
        admin = create_engine(pg_base.replace("postgresql://", "postgresql+psycopg://")
                              + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE many{n}"))
        admin.dispose()
        url = f"{pg_base}/many{n}"
    subprocess.run([sys.executable, "-P", "-c", "import sys; from fundtrack.db.migrate import "
                    "upgrade; upgrade(sys.argv[1])", url],
                   env=dict(os.environ, PYTHONPATH=str(tree)), check=True)
    return url


def ledger_flows(url: str) -> int:
    from sqlalchemy import create_engine, text

    from fundtrack.db import normalise_url

    eng = create_engine(normalise_url(url))
    with eng.connect() as c:
        n = c.execute(text("SELECT count(*) FROM flow WHERE superseded_by IS NULL")).scalar_one()
    eng.dispose()
    return int(n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-files", type=int, default=100)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--code", action="append", default=[],
                  help="LABEL=DIR: also run the command from this source tree")
    ap.add_argument("--profile", action="store_true",
                    help="then profile this tree's import on SQLite (cProfile, top 30)")
    ap.add_argument("--ledger-only", action="store_true",
                    help="stub the final derived-table rebuild (in the bench's child only): "
                         "times the parse process + transport + ledger write alone")
    ap.add_argument("--profile-parse", action="store_true",
                    help="then profile the parse process's work (parse, validation, rows, "
                         "pickling) in one process, no database")
    ap.add_argument("--generated", metavar="N,F",
                    help="N generated files of F flows each instead of the real files")
    ap.add_argument("--then-one", action="store_true",
                    help="with --generated: after each set, one more generated file of the "
                         "same size imported on its own (as an upload), against the same "
                         "file into an empty database")
    ap.add_argument("--floor-child", nargs="+")
    args = ap.parse_args()
    if args.then_one and not args.generated:
        ap.error("--then-one needs --generated N,F")
    if args.floor_child:
        floor_child(args.floor_child)
        return
    sys.path.insert(0, str(ROOT))
    files = generated_set(args.generated) if args.generated else build_set(args.min_files)
    folder = files[0].parent
    mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"{len(files)} files, {mb:.1f} MB; load average before: {os.getloadavg()}")
    wall, cpu, rss, out = run([sys.executable, __file__, "--floor-child", *map(str, files)])
    floor = wall
    parsed = json.loads(out.strip().splitlines()[-1])["flows"]
    rows = [("floor (parse only)", "-", wall, cpu, parsed, rss)]
    codes = [("this tree", ROOT)] + [(c.split("=", 1)[0], Path(c.split("=", 1)[1]))
                                     for c in args.code]
    work = Path(tempfile.mkdtemp(prefix="ft_bench_many_"))
    rebuilds: list[str] = []
    ones: list[tuple[str, str, float, float, float]] = []
    kinds = args.db.split(",")
    with contextlib.ExitStack() as stack:
        pg_base = stack.enter_context(private_cluster()) if "postgresql" in kinds else None
        n = 0
        for kind in kinds:
            for label, tree in codes:
                n += 1
                url = fresh_db(kind, pg_base, work, n, tree)
                env = dict(os.environ, FUNDTRACK_DATABASE_URL=url, PYTHONPATH=str(tree))
                # -P: not the current folder first on sys.path, or a run from the project
                # root would import this tree whatever PYTHONPATH names
                wall, cpu, rss, out = run([sys.executable, "-P", "-c",
                                           LEDGER_ONLY if args.ledger_only else
                                           "from fundtrack.cli import main; main()",
                                           "import", "--quiet", str(folder)], env,
                                          log=rebuilds)
                applied = out.count(": applied")
                rows.append((f"{kind}, {label}", f"{applied}/{len(files)}", wall, cpu,
                             ledger_flows(url), rss))
                for line in rebuilds:
                    print(f"{kind}, {label}: {line}")
                rebuilds.clear()
                if args.then_one:
                    extra = one_more(args.generated)
                    empty = fresh_db(kind, pg_base, work, 100 + n, tree)
                    for into, target in (("empty", empty), (f"{ledger_flows(url):,} flows", url)):
                        w, c, r, _ = run([sys.executable, "-P", "-c",
                                          "from fundtrack.cli import main; main()", "import",
                                          "--quiet", str(extra)],
                                         dict(env, FUNDTRACK_DATABASE_URL=target))
                        ones.append((f"{kind}, {label}", into, w, c, r))
    shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}\n")
    print("| run | files applied | wall s | CPU s | MB/s (wall) | current flows | flows/s "
          "| x floor (wall) | x floor (CPU) | peak RSS MB (largest process) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    floor_cpu = rows[0][3]
    for label, applied, wall, cpu, flows, rss in rows:
        print(f"| {label} | {applied} | {wall:.1f} | {cpu:.1f} | {mb / wall:.1f} | {flows:,} "
              f"| {flows / wall:,.0f} | {wall / floor:.2f} | {cpu / floor_cpu:.2f} | {rss:.0f} |")
    if ones:
        print("\none more file on its own, into an empty database and into the set:\n")
        print("| run | into | wall s | CPU s | x empty (wall) | peak RSS MB |")
        print("|---|---|---|---|---|---|")
        empty_wall: dict[str, float] = {}
        for label, into, wall, cpu, rss in ones:
            base = empty_wall.setdefault(label, wall)
            print(f"| {label} | {into} | {wall:.1f} | {cpu:.1f} | {wall / base:.1f} "
                  f"| {rss:.0f} |")
    if args.profile:
        profile(work, args.ledger_only)
    if args.profile_parse:
        profile_parse(files)


#: The command with the final rebuild of the derived tables stubbed (bench only): the
#: batches stay marked stale, which is what ``--ledger-only`` measures around.
LEDGER_ONLY = ("import fundtrack.derived.steps as s; s.rebuild = lambda conn, *a, **k: {}; "
               "from fundtrack.cli import main; main()")


PROFILE = """
import cProfile, pstats, sys
if sys.argv[2] == "1":
    import fundtrack.derived.steps as s
    s.rebuild = lambda conn, *a, **k: {}
from fundtrack.cli import main
sys.argv = ["fundtrack", "import", "--quiet", sys.argv[1]]
prof = cProfile.Profile()
try:
    prof.runcall(main)
except SystemExit:
    pass
pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
pstats.Stats(prof).sort_stats("tottime").print_stats(20)
"""


def profile(work: Path, ledger_only: bool = False) -> None:
    """Where the writer's time goes (the parse process is not in this profile)."""
    work.mkdir(exist_ok=True)
    url = fresh_db("sqlite", None, work, 99)
    env = dict(os.environ, FUNDTRACK_DATABASE_URL=url, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PROFILE, str(OUT), str(int(ledger_only))],
                         env=env,
                         capture_output=True, text=True, check=True).stdout
    print("\n" + out[out.index("Ordered by"):] if "Ordered by" in out else out)
    shutil.rmtree(work, ignore_errors=True)


class _Discard:
    """A queue that pickles what it is given (as the real one does) and drops it."""

    def __init__(self) -> None:
        self.bytes = 0

    def put(self, msg: object, timeout: float | None = None) -> None:
        import pickle

        self.bytes += len(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))


def profile_parse(files: list[Path]) -> None:
    """The parse process's side alone (cProfile, in this process, no database)."""
    import cProfile
    import pstats

    from fundtrack.ingest import many

    sink = _Discard()
    prof = cProfile.Profile()
    cpu = time.process_time()
    prof.runcall(many._parse_files, [str(p) for p in files], None, {}, set(), sink,
                 os.getppid())
    cpu = time.process_time() - cpu
    print(f"\nparse process alone (profiled): {cpu:.1f} s CPU, {sink.bytes / 1e6:.1f} MB pickled")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
