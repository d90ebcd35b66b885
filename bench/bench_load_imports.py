"""Bench: loopback load on ``fundtrack serve --workers 2`` (PostgreSQL) while imports run.

    python bench/bench_load_imports.py [--db ft_loadimp] [--reuse] [--seconds 60] \\
        [--floor-seconds 30] [--connections 16] [--flows-per-file 1000]

1. Unless ``--reuse``: (re)creates the scratch database, migrates it and imports the shared
   IATI files (/work/shared/data/iati-activity, as the test fixture ``loaded_url`` does).
2. Starts ``fundtrack serve --workers 2`` on 127.0.0.1 and creates an admin token.
3. Floor: Debian's ``wrk`` (2 threads, ``--connections``) posts the query of
   ``bench/graphql_post.lua`` for ``--floor-seconds`` with no import running.
4. Load: the same for ``--seconds`` while a loop uploads freshly generated IATI files (new
   activity identifiers each time, so every import writes ``--flows-per-file`` flows)
   through the ``importReport`` mutation of the same server, one after the other.

Errors are transport errors, non-2xx answers and 200 answers carrying GraphQL ``errors``
(``bench/bench_load_imports.lua``). The RSS of each uvicorn worker is sampled every 0.5 s.
Bounded: fixed durations, loopback only, the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "iati-activity"
IMPORT = "mutation($file: Upload!) { importReport(input: {file: $file}) { status message counts } }"
CURRENCIES = ["USD", "EUR", "GBP", "SEK"]
COUNTRIES = ["AF", "SO", "SS", "YE", "CD", "UA", "SY", "ML", "NE", "HT"]
ORGS = ["XM-DAC-41114", "XM-DAC-41122", "XM-DAC-47066", "GB-CHC-202918", "US-EIN-131760110"]


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def write_file(path: Path, tag: str, n_flows: int, rnd: random.Random) -> None:
    """An IATI 2.03 file of 25-transaction activities with identifiers unique to ``tag``."""
    acts = []
    for a in range(max(n_flows // 25, 1)):
        country = rnd.choice(COUNTRIES)
        txs = "".join(
            f'<transaction><transaction-type code="{rnd.choice("3334")}"/>'
            f'<transaction-date iso-date="202{rnd.randrange(5)}-{rnd.randrange(1, 13):02d}-15"/>'
            f'<value currency="{rnd.choice(CURRENCIES)}" value-date="2023-06-15">'
            f'{rnd.randrange(100, 10_000_000)}.{rnd.randrange(100):02d}</value>'
            f'<provider-org ref="XX-LOAD"/><receiver-org ref="{rnd.choice(ORGS)}"/></transaction>'
            for _ in range(25))
        acts.append(f'<iati-activity default-currency="USD"><iati-identifier>XX-LOAD-{tag}-{a}'
                    f'</iati-identifier><reporting-org ref="XX-LOAD" type="10"/>'
                    f'<recipient-country code="{country}" percentage="100"/>'
                    f'<sector vocabulary="1" code="15170"/>{txs}</iati-activity>')
    path.write_text(f'<iati-activities version="2.03">{"".join(acts)}</iati-activities>')


def setup_db(admin_url: str, db: str) -> str:
    from fundtrack.db import make_engine
    from fundtrack.db.migrate import upgrade
    from fundtrack.ingest.pipeline import import_file

    url = admin_url.rsplit("/", 1)[0] + "/" + db
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    upgrade(url)
    eng = make_engine(url)
    t = time.perf_counter()
    for path in sorted(SHARED.rglob("*.xml")):
        if "assembled" in path.parts:  # the same activities as dportal_36-39
            continue
        assert import_file(eng, path).status == "applied", path
    eng.dispose()
    print(f"shared IATI files imported in {time.perf_counter() - t:.0f} s", flush=True)
    return url


def workers(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (shows how the workers share the load)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Sampler(threading.Thread):
    """RSS (MiB) of the uvicorn workers (children of the master) every 0.5 s."""

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.samples: dict[int, list[float]] = {}
        self.cpu: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in workers(self.master):
                # The spawn helper (multiprocessing resource tracker) is tiny: skip it.
                rss = rss_mb(pid)
                cpu = cpu_s(pid)
                if rss is not None and rss > 40 and cpu is not None:
                    self.samples.setdefault(pid, []).append(rss)
                    self.cpu[pid] = cpu
            self.stop.wait(0.5)


def run_wrk(base: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency",
         "-s", str(ROOT / "bench" / "bench_load_imports.lua"), base + "/graphql"],
        capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


def import_loop(base: str, token: str, stop: threading.Event, n_flows: int, work: Path,
                durations: list[tuple[float, str, int]]) -> None:
    rnd = random.Random(8)
    tag = time.strftime("%H%M%S")
    i = 0
    with httpx.Client(base_url=base, timeout=300) as c:
        while not stop.is_set():
            i += 1
            f = work / f"load-{tag}-{i}.xml"
            write_file(f, f"{tag}-{i}", n_flows, rnd)
            ops = {"query": IMPORT, "variables": {"file": None}}
            t = time.perf_counter()
            r = c.post("/graphql", headers={"GraphQL-Preflight": "1", "Authorization": f"Bearer {token}"},
                       data={"operations": json.dumps(ops), "map": json.dumps({"0": ["variables.file"]})},
                       files={"0": (f.name, f.read_bytes(), "application/xml")})
            took = time.perf_counter() - t
            out = r.json()["data"]["importReport"]
            durations.append((took, out["status"], out["counts"].get("flows", 0)))


def report(label: str, r: dict[str, float], floor: dict[str, float] | None = None) -> None:
    errors = int(r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"] + r["bad_answers"])
    rps = r["requests"] / r["seconds"]
    ratio = ""
    if floor:
        ratio = (f"  [vs floor: throughput {rps / (floor['requests'] / floor['seconds']):.2f}x, "
                 f"p50 {r['p50'] / floor['p50']:.2f}x, p99 {r['p99'] / floor['p99']:.2f}x]")
    print(f"{label}: {rps:.0f} req/s ({int(r['requests']):,} requests in {r['seconds']:.0f} s), "
          f"p50 {r['p50']:.0f} ms, p90 {r['p90']:.0f} ms, p99 {r['p99']:.0f} ms, max {r['max']:.0f} ms, "
          f"errors {errors} (non-2xx {int(r['status'])}, GraphQL errors/bad answers "
          f"{int(r['bad_answers'])}, timeouts {int(r['timeout'])}){ratio}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--db", default="ft_loadimp")
    ap.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--floor-seconds", type=int, default=30)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--flows-per-file", type=int, default=1000)
    ap.add_argument("--port", type=int, default=8797)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs Debian's wrk: apt-get install -y wrk")
    url = a.admin_url.rsplit("/", 1)[0] + "/" + a.db if a.reuse else setup_db(a.admin_url, a.db)
    from fundtrack.auth.tokens import create_token
    from fundtrack.db import make_engine

    eng = make_engine(url)
    _, token = create_token(eng, "admin", label="bench_load_imports")
    with eng.connect() as c:
        n = c.exec_driver_sql("SELECT count(*) FROM flow WHERE superseded_by IS NULL").scalar_one()
    eng.dispose()
    base = f"http://127.0.0.1:{a.port}"
    log = open(tempfile.gettempdir() + "/fundtrack-load-imports-server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "fundtrack"), "serve", "--host", "127.0.0.1", "--port", str(a.port),
         "--workers", "2"], cwd=ROOT, env={**os.environ, "FUNDTRACK_DATABASE_URL": url},
        stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        time.sleep(2)  # both workers up
        sampler = Sampler(server.pid)
        sampler.start()
        print(f"{n:,} current flows; load average before: {loadavg()}", flush=True)
        floor = run_wrk(base, a.floor_seconds, a.connections)
        report("floor (no import)", floor)
        rss_floor = {pid: max(s) for pid, s in sampler.samples.items()}
        cpu_floor = dict(sampler.cpu)
        durations: list[tuple[float, str, int]] = []
        stop = threading.Event()
        with tempfile.TemporaryDirectory() as work:
            loop = threading.Thread(target=import_loop, args=(base, token, stop, a.flows_per_file,
                                                              Path(work), durations))
            loop.start()
            loaded = run_wrk(base, a.seconds, a.connections)
            load_after = loadavg()
            stop.set()
            loop.join()
        sampler.stop.set()
        report("with imports", loaded, floor)
        took = sorted(d for d, _, _ in durations)
        statuses = {s for _, s, _ in durations}
        written = sum(f for _, _, f in durations)
        print(f"imports: {len(took)} files of {a.flows_per_file:,} flows ({written:,} "
              f"flows written), status {sorted(statuses)}; duration p50 {statistics.median(took):.1f} s, "
              f"min {took[0]:.1f} s, max {took[-1]:.1f} s", flush=True)
        for pid, s in sorted(sampler.samples.items()):
            print(f"worker {pid} RSS: start {s[0]:.0f} MiB, max during floor "
                  f"{rss_floor.get(pid, 0):.0f} MiB, max {max(s):.0f} MiB, end {s[-1]:.0f} MiB "
                  f"({len(s)} samples); CPU {cpu_floor.get(pid, 0):.1f} s by the end of the floor, "
                  f"{sampler.cpu[pid]:.1f} s at the end")
        print(f"load average at the end of the loaded run: {load_after}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
