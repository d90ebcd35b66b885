"""A/B bench: the bench_api page (100 flows with provider, receiver and activity) through
several code trees or settings, alternating request by request, so every configuration
sees the same load from other jobs on the machine.

    FUNDTRACK_DATABASE_URL=... python bench/bench_api_ab.py ROUNDS [--aggregate] NAME=TREE[:VAR=VALUE ...] ...

e.g. the code of another commit against this one, and this one with its fast path off::

    git archive 6388ee0 | tar -x -C /tmp/before
    python bench/bench_api_ab.py 300 before=/tmp/before now=. "now-off=.:FUNDTRACK_FAST_EXECUTOR=0"

Each configuration is a worker process running the tree's own code (``PYTHONPATH=TREE``)
through the real ASGI app in process (httpx ``ASGITransport``; one loop, one client, one
root task, as ``bench/bench_api.py``); the driver asks each in turn, rotating the order
every round, and each worker times only its request. Every configuration must answer
byte-identical JSON (checked on the first request). Prints p50 and p95 per configuration
and each one's p50 ratio to the first configuration's; also the process CPU time per request
(all its threads), which waiting for a core on a busy machine does not inflate.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

QUERIES = {
    # bench/bench_api.py's page
    "page": """{ flows(first: 100) { nodes { id kind amount currency valueDate amountUsd
  provider { ref name organization { name } } receiver { ref name organization { name } }
  activity { iatiIdentifier title reportingOrgRef } } } }""",
    # bench/bench_api_aggregate.py's query (many plain fields: what plans are for)
    "aggregate": """{ flowsAggregate(groupBy: [YEAR, RECIPIENT_COUNTRY]) { groups {
  year recipientCountry count sum sumUsd countWithoutUsd } } }""",
}


def worker(query: str) -> None:
    """Answer one request per line read from stdin; print its milliseconds (the first
    answer's body too, for the equality check)."""
    import asyncio
    import time

    import httpx

    from fundtrack.api.testing import Api

    api = Api(os.environ["FUNDTRACK_DATABASE_URL"])

    async def run() -> None:
        loop = asyncio.get_running_loop()
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            first = True
            while await loop.run_in_executor(None, sys.stdin.readline):
                start, cpu = time.perf_counter(), time.process_time()
                r = await client.post("/graphql", json={"query": query})
                ms = (time.perf_counter() - start) * 1000
                cpu_ms = (time.process_time() - cpu) * 1000
                assert r.status_code == 200 and "errors" not in r.json(), r.text[:500]
                print(json.dumps({"ms": ms, "cpu": cpu_ms, "body": r.text if first else None}),
                      flush=True)
                first = False

    asyncio.run(run())


def main(rounds: int, configs: list[str], query: str) -> None:
    here = Path(__file__).resolve()
    workers: dict[str, subprocess.Popen[str]] = {}
    for spec in configs:
        name, rest = spec.split("=", 1)
        tree, *env_pairs = rest.split(":")
        env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve()),
               **dict(p.split("=", 1) for p in env_pairs)}
        workers[name] = subprocess.Popen([sys.executable, str(here), "--worker", query], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, cwd=tree)

    def ask(name: str) -> dict[str, object]:
        w = workers[name]
        assert w.stdin is not None and w.stdout is not None
        w.stdin.write("go\n")
        w.stdin.flush()
        return json.loads(w.stdout.readline())

    names = list(workers)
    bodies = {n: ask(n)["body"] for n in names}
    assert len(set(bodies.values())) == 1, "configurations answer differently"
    for _ in range(5):  # warm up
        for n in names:
            ask(n)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        k = i % len(names)
        for n in names[k:] + names[:k]:
            got = ask(n)
            times[n].append(float(got["ms"]))  # type: ignore[arg-type]
            cpu[n].append(float(got["cpu"]))  # type: ignore[arg-type]
    for w in workers.values():
        assert w.stdin is not None
        w.stdin.close()
        w.wait(timeout=60)

    def p95(xs: list[float]) -> float:
        return sorted(xs)[int(0.95 * (len(xs) - 1))]

    base = statistics.median(times[names[0]])
    base_cpu = statistics.median(cpu[names[0]])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{query}, {rounds} rounds alternating, load average {load}; "
          f"identical answers: yes")
    for n in names:
        p50 = statistics.median(times[n])
        c50 = statistics.median(cpu[n])
        print(f"  {n:>12}: p50 {p50:.2f} ms, p95 {p95(times[n]):.2f} ms, "
              f"p50 / {names[0]} {p50 / base:.3f}; CPU p50 {c50:.2f} ms, "
              f"/ {names[0]} {c50 / base_cpu:.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        worker(QUERIES[sys.argv[2]])
    else:
        args = [a for a in sys.argv[2:] if a != "--aggregate"]
        main(int(sys.argv[1]), args, "aggregate" if "--aggregate" in sys.argv else "page")
