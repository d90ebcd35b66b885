"""Bounded load test (issue 18): hostile GraphQL requests mixed into ordinary traffic
against ``fundtrack serve`` on a PRIVATE, memory-capped PostgreSQL cluster. Loopback only.

    python bench/bench_abuse_load.py [--seconds 60] [--clients 6] [--files 12]
                                     [--as-limit-mb 1024] [--no-hostile] [--json out.json]

What it does:

1. ``initdb`` a throwaway cluster in a temp dir on a free loopback port (never the shared
   server at 127.0.0.1:5432), started under ``prlimit --as`` (every backend inherits the
   address-space cap, so a runaway backend gets "out of memory" instead of the kernel's
   OOM killer restarting the cluster) with small ``shared_buffers``/``work_mem``.
2. Migrates it and imports the first ``--files`` shared IATI activity files.
3. Starts ``fundtrack serve`` (one worker) against it, on another free loopback port.
4. For ``--seconds``, ``--clients`` concurrent clients send a fixed mix: ordinary queries
   (a page of flows, an aggregate by year, organisations, a node by id) and the issue's
   hostile requests (item 2: an ``_or`` of 20,000 and of 4,000 terms, ``_in`` of 70,000
   values, 40-deep ``_not``, 30 aliases of a 10-dimension ``flowsAggregate``; item 4: a
   10 MB comment, a 150 KB comment, distinct 90 KB comment queries).
5. Samples every 0.25 s the resident memory (VmRSS, and the kernel's high-water mark
   VmHWM) of every PostgreSQL backend and of the server, and reports: requests and status
   codes per kind, server errors (5xx, or an "Internal error"/"unavailable" message),
   ordinary latency percentiles, peak backend and server memory.

Exit status 1 if any server error was seen, an ordinary query failed, or the cluster
restarted. Results are printed as JSON (and written to ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

PG_BIN = Path(os.environ.get("FUNDTRACK_PG_BIN", "/usr/lib/postgresql/15/bin"))
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A private PostgreSQL cluster with an address-space cap on every process."""

    def __init__(self, as_limit_mb: int) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="ft_abuse_pg_"))
        self.data = self.base / "data"
        self.port = free_port()
        self.as_limit = as_limit_mb * 1024 * 1024
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        opts = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c shared_buffers=64MB -c work_mem=4MB -c maintenance_work_mem=64MB "
                "-c max_connections=30 -c jit=off")
        subprocess.run(["prlimit", f"--as={self.as_limit}", "--", *self.prefix,
                        str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                        str(self.base / "log"), "-w", "-o", opts, "start"],
                       check=True, capture_output=True, timeout=120)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/ft_abuse"
        subprocess.run([*self.prefix, str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p",
                        str(self.port), "-U", "postgres", "ft_abuse"], check=True, timeout=60)

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(PG_BIN / tool), *args], check=True,
                       capture_output=True, timeout=120)

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def backends(self) -> list[int]:
        pm = self.postmaster()
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (d / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == pm:
                        out.append(int(d.name))
        return out

    def log(self) -> str:
        return (self.base / "log").read_text(errors="replace")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB of a process, (0, 0) if gone."""
    rss = hwm = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


class Sampler(threading.Thread):
    """Peak memory of the cluster's backends and of the server, sampled every 0.25 s."""

    def __init__(self, cluster: Cluster, server_pid: int) -> None:
        super().__init__(daemon=True)
        self.cluster, self.server_pid = cluster, server_pid
        self.stop_flag = threading.Event()
        self.backend_rss = self.backend_hwm = self.server_rss = self.total_rss = 0
        self.postmasters: set[int] = set()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.postmasters.add(self.cluster.postmaster())
                total = 0
                for pid in self.cluster.backends():
                    rss, hwm = status_kb(pid)
                    total += rss
                    self.backend_rss = max(self.backend_rss, rss)
                    self.backend_hwm = max(self.backend_hwm, hwm)
                self.total_rss = max(self.total_rss, total)
                self.server_rss = max(self.server_rss, status_kb(self.server_pid)[0])
            time.sleep(0.25)


COUNT = "query($w: FlowWhere) { flows(where: $w) { totalCount } }"
DIMS = ("[KIND PROVIDER RECEIVER REPORTING_ORG RECIPIENT_COUNTRY SECTOR YEAR CURRENCY "
        "GENDER_SIGNIFICANCE EARMARKING]")


def sector_or(n: int) -> dict[str, Any]:
    return {"_or": [{"activity": {"sector": {"code": {"_eq": f"{15000 + i}"}}}}
                    for i in range(n)]}


def hostile() -> dict[str, Any]:
    """Issue 18's item 2 and item 4 requests: name -> JSON body (or a callable for one)."""
    deep: dict[str, Any] = {"currency": {"_eq": "USD"}}
    for _ in range(40):
        deep = {"_not": deep}
    agg = f"flowsAggregate(groupBy: {DIMS}) {{ groups {{ year count sumUsd }} }}"
    return {
        "or_20000_terms": {"query": COUNT, "variables": {"w": sector_or(20_000)}},
        "or_4000_terms": {"query": COUNT, "variables": {
            "w": {"_or": [sector_or(1000) for _ in range(4)]}}},
        "in_70000_values": {"query": COUNT, "variables": {
            "w": {"earmarking": {"_in": list(range(70_000))}}}},
        "not_40_deep": {"query": COUNT, "variables": {"w": deep}},
        "aliases_30_aggregates": {"query": "{ " + " ".join(
            f"a{i}: {agg}" for i in range(30)) + " }"},
        "comment_10mb": {"query": "#" + "a" * 10_000_000 + "\n{ __typename }"},
        "comment_150kb": {"query": "#" + "a" * 150_000 + "\n{ __typename }"},
        "distinct_90kb": lambda: {"query": f"# {random.random()} " + "a" * 90_000
                                  + "\n{ flows(first: 1) { nodes { id } } }"},
    }


ORDINARY = {
    "flows_page": {"query": "{ flows(first: 50) { totalCount nodes { id amount currency "
                            "valueDate provider { ref name } receiver { ref name } } } }"},
    "aggregate_by_year": {"query": "{ flowsAggregate(groupBy: [YEAR]) { groups { year count "
                                   "sumUsd } } }"},
    "organizations": {"query": "{ organizations(first: 20) { nodes { ref name type } } }"},
    "filtered_flows": {"query": COUNT, "variables": {"w": {"_or": [
        {"sectorCode": {"_eq": "15170"}}, {"activity": {"sector": {"code": {"_eq": "15180"}}}}],
        "valueDate": {"_gte": "2015-01-01"}}}},
}


def is_server_error(r: httpx.Response) -> bool:
    if r.status_code >= 500:
        return True
    return "Internal error" in r.text or "unavailable" in r.text


async def run_load(base: str, seconds: float, clients: int, with_hostile: bool = True,
                   ) -> dict[str, Any]:
    bad = hostile() if with_hostile else {}
    stats: dict[str, dict[str, Any]] = {}
    latencies: list[float] = []
    problems: list[str] = []
    deadline = time.monotonic() + seconds
    # mostly ordinary traffic; about one request in three is hostile
    mix = [*ORDINARY] * 4 + [*bad]

    async def client(i: int) -> None:
        rnd = random.Random(i)
        async with httpx.AsyncClient(base_url=base, timeout=120) as c:
            while time.monotonic() < deadline:
                name = rnd.choice(mix)
                body = ORDINARY.get(name) or bad[name]
                if callable(body):
                    body = body()
                t = time.perf_counter()
                try:
                    r = await c.post("/graphql", json=body)
                except httpx.HTTPError as exc:
                    problems.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                dt = time.perf_counter() - t
                s = stats.setdefault(name, {"n": 0, "codes": {}, "server_errors": 0,
                                            "max_s": 0.0, "message": ""})
                s["n"] += 1
                s["codes"][str(r.status_code)] = s["codes"].get(str(r.status_code), 0) + 1
                s["max_s"] = round(max(s["max_s"], dt), 3)
                if is_server_error(r):
                    s["server_errors"] += 1
                    problems.append(f"{name}: {r.status_code} {r.text[:200]}")
                if name in ORDINARY:
                    latencies.append(dt)
                    if r.status_code != 200 or r.json().get("errors"):
                        problems.append(f"ordinary {name} failed: {r.text[:200]}")
                elif not s["message"]:
                    with contextlib.suppress(ValueError, KeyError, IndexError):
                        s["message"] = r.json()["errors"][0]["message"][:160]

    await asyncio.gather(*[client(i) for i in range(clients)])
    lat = sorted(latencies)
    return {
        "kinds": stats, "problems": problems[:20], "problem_count": len(problems),
        "ordinary": {"n": len(lat),
                     "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
                     "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
                     "max_ms": round(1000 * lat[-1], 1) if lat else None},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--files", type=int, default=12, help="shared IATI files to import")
    ap.add_argument("--as-limit-mb", type=int, default=1024,
                    help="address-space cap of every PostgreSQL process (prlimit --as)")
    ap.add_argument("--no-hostile", action="store_true",
                    help="ordinary traffic only (the baseline to compare with)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not (PG_BIN / "initdb").exists():
        print(f"no PostgreSQL binaries in {PG_BIN} (set FUNDTRACK_PG_BIN)", file=sys.stderr)
        return 2

    cluster = Cluster(args.as_limit_mb)
    server = None
    try:
        from fundtrack.db import make_engine
        from fundtrack.db.migrate import upgrade
        from fundtrack.ingest.pipeline import import_file

        t0 = time.monotonic()
        upgrade(cluster.url)
        engine = make_engine(cluster.url)
        files = sorted(p for p in (SHARED / "iati-activity").rglob("*.xml")
                       if "assembled" not in p.parts)[:args.files]
        for path in files:
            import_file(engine, path)
        with engine.connect() as c:
            flows = c.exec_driver_sql("SELECT count(*) FROM flow").scalar_one()
            c.exec_driver_sql("ANALYZE")
            c.commit()
        engine.dispose()
        loaded = time.monotonic() - t0

        port = free_port()
        env = {**os.environ, "FUNDTRACK_DATABASE_URL": cluster.url}
        exe = shutil.which("fundtrack", path=str(Path(sys.executable).parent)) or "fundtrack"
        server_log = open(cluster.base / "server.log", "wb")  # noqa: SIM115 - closed with it
        server = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=server_log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}).status_code \
                        == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("fundtrack serve did not answer")
        pm_before = cluster.postmaster()
        sampler = Sampler(cluster, server.pid)
        sampler.start()
        out = asyncio.run(run_load(base, args.seconds, args.clients, not args.no_hostile))
        # still answering after the load
        after = httpx.post(f"{base}/graphql", json=ORDINARY["flows_page"], timeout=60)
        sampler.stop_flag.set()
        sampler.join()
        log = cluster.log()
        out.update({
            "command": " ".join(sys.argv),
            "flows": flows, "files": len(files), "load_s": round(loaded, 1),
            "clients": args.clients, "seconds": args.seconds,
            "as_limit_mb": args.as_limit_mb,
            "backend_peak_rss_mb": round(sampler.backend_rss / 1024, 1),
            "backend_peak_hwm_mb": round(sampler.backend_hwm / 1024, 1),
            "cluster_peak_total_rss_mb": round(sampler.total_rss / 1024, 1),
            "server_peak_rss_mb": round(sampler.server_rss / 1024, 1),
            "cluster_restarted": sampler.postmasters != {pm_before}
            or "terminated by signal" in log,
            "out_of_memory_in_log": log.count("out of memory"),
            "answering_after": after.status_code == 200 and not after.json().get("errors"),
        })
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=20)
            if server.poll() is None:
                server.kill()
        cluster.remove()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    server_errors = sum(s["server_errors"] for s in out["kinds"].values())
    ok = (server_errors == 0 and out["problem_count"] == 0 and not out["cluster_restarted"]
          and out["answering_after"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
