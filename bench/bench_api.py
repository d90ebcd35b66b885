"""Bench: a page of 100 flows with provider, receiver and activity through GraphQL (in
process, through the ASGI app) against the equivalent hand-written SQL, same run.

    FUNDTRACK_DATABASE_URL=... python bench/bench_api.py [repeats] [--analyze]

The GraphQL side is timed as a client would see it: one event loop, one keep-alive client
and one root task for all requests, as under a server (a new loop and client per request
would add ~1 ms of harness; a new root task per request makes AnyIO start a new worker
thread for every request, which a server does not). GraphQL and SQL runs alternate, so
both see the same load from other jobs on the machine. ``--analyze`` runs ANALYZE first
(planner statistics, for both sides).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

import httpx
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from fundtrack.api.testing import Api
from fundtrack.config import get_settings

QUERY = """{ flows(first: 100) { nodes { id kind amount currency valueDate amountUsd
  provider { ref name organization { name } } receiver { ref name organization { name } }
  activity { iatiIdentifier title reportingOrgRef } } } }"""

# The page first, then its relations (as the API does). Joining before the LIMIT made
# SQLite join all 18,050 current flows and sort them (13 ms instead of ~4 ms); PostgreSQL
# plans both forms the same way.
SQL = """SELECT f.id, f.kind, f.amount, f.currency, f.value_date, f.amount_usd,
  f.provider_ref, f.provider_name, po.name, f.receiver_ref, f.receiver_name, ro.name,
  a.iati_identifier, a.title, a.reporting_org_ref
FROM (SELECT * FROM flow WHERE superseded_by IS NULL ORDER BY id LIMIT 100) f
LEFT JOIN activity a ON a.id = f.activity_id
LEFT JOIN organisation po ON po.ref = f.provider_ref
LEFT JOIN organisation ro ON ro.ref = f.receiver_ref
ORDER BY f.id"""


def main(repeats: int = 30, analyze: bool = False) -> None:
    url = get_settings().database_url
    api = Api(url)
    engine = api.app.state.engine
    if analyze:
        # Planner statistics for both sides. Without them SQLite walks the superseded_by
        # index and sorts every current flow for a page of 100 (GraphQL and SQL alike);
        # nothing in fundtrack runs ANALYZE on SQLite, PostgreSQL's autovacuum does.
        with engine.connect() as c:
            c.exec_driver_sql("ANALYZE")
            c.commit()

    def sql() -> None:
        with engine.connect() as c:
            rows = [tuple(r) for r in c.execute(text(SQL))]
            c.rollback()
        assert len(rows) == 100

    async def run() -> tuple[list[float], list[float], list[float]]:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            async def gql() -> None:
                r = await client.post("/graphql", json={"query": QUERY})
                assert r.status_code == 200 and len(r.json()["data"]["flows"]["nodes"]) == 100, \
                    r.text

            await gql()
            sql()
            await run_in_threadpool(sql)
            g, s, t = [], [], []
            for _ in range(repeats):
                start = time.perf_counter()
                await gql()
                g.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                sql()
                s.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                await run_in_threadpool(sql)
                t.append((time.perf_counter() - start) * 1000)
            return g, s, t

    g, s, t = asyncio.run(run())
    gm, sm, tm = statistics.median(g), statistics.median(s), statistics.median(t)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{engine.dialect.name}: page of 100 flows with provider, receiver, activity: "
          f"GraphQL p50 {gm:.2f} ms, hand-written SQL p50 {sm:.2f} ms, ratio {gm / sm:.2f}x "
          f"({repeats} runs each, alternating; load average {load})")
    # Context, not the target: the API runs its SQL in a worker thread (never on the event
    # loop); the same SQL through the same kind of hop shows what the hop costs at this load.
    print(f"  same SQL through a worker thread (starlette run_in_threadpool): p50 {tm:.1f} ms, "
          f"GraphQL / that {gm / tm:.1f}x")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--analyze"]
    main(int(args[0]) if args else 30, analyze="--analyze" in sys.argv[1:])
