"""Bench: a page of 100 flows with provider, receiver and activity through GraphQL (in
process, through the ASGI app) against the equivalent hand-written SQL, same run.

    FUNDTRACK_DATABASE_URL=... python bench/bench_api.py [repeats]

The GraphQL side is timed as a client would see it: one event loop, one keep-alive client
and one root task for all requests, as under a server (a new loop and client per request
would add ~1 ms of harness; a new root task per request makes AnyIO start a new worker
thread for every request, which a server does not). GraphQL and SQL runs alternate, so
both see the same load from other jobs on the machine.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

import httpx
from sqlalchemy import text

from fundtrack.api.testing import Api
from fundtrack.config import get_settings

QUERY = """{ flows(first: 100) { nodes { id kind amount currency valueDate amountUsd
  provider { ref name organization { name } } receiver { ref name organization { name } }
  activity { iatiIdentifier title reportingOrgRef } } } }"""

SQL = """SELECT f.id, f.kind, f.amount, f.currency, f.value_date, f.amount_usd,
  f.provider_ref, f.provider_name, po.name, f.receiver_ref, f.receiver_name, ro.name,
  a.iati_identifier, a.title, a.reporting_org_ref
FROM flow f LEFT JOIN activity a ON a.id = f.activity_id
LEFT JOIN organisation po ON po.ref = f.provider_ref
LEFT JOIN organisation ro ON ro.ref = f.receiver_ref
WHERE f.superseded_by IS NULL ORDER BY f.id LIMIT 100"""


def main(repeats: int = 30) -> None:
    url = get_settings().database_url
    api = Api(url)
    engine = api.app.state.engine

    def sql() -> None:
        with engine.connect() as c:
            rows = [tuple(r) for r in c.execute(text(SQL))]
            c.rollback()
        assert len(rows) == 100

    async def run() -> tuple[list[float], list[float]]:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            async def gql() -> None:
                r = await client.post("/graphql", json={"query": QUERY})
                assert r.status_code == 200 and len(r.json()["data"]["flows"]["nodes"]) == 100, \
                    r.text

            await gql()
            sql()
            g, s = [], []
            for _ in range(repeats):
                t = time.perf_counter()
                await gql()
                g.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                sql()
                s.append((time.perf_counter() - t) * 1000)
            return g, s

    g, s = asyncio.run(run())
    gm, sm = statistics.median(g), statistics.median(s)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{engine.dialect.name}: page of 100 flows with provider, receiver, activity: "
          f"GraphQL p50 {gm:.1f} ms, hand-written SQL p50 {sm:.1f} ms, ratio {gm / sm:.1f}x "
          f"({repeats} runs each, alternating; load average {load})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
