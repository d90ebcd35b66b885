"""Bench: a page of 100 flows with provider, receiver and activity through GraphQL (in
process, through the ASGI app) against the equivalent hand-written SQL, same run.

    FUNDTRACK_DATABASE_URL=... python bench/bench_api.py [repeats]

The GraphQL side is timed as a client would see it: one event loop and one keep-alive
client for all requests (a new loop and client per request would add ~1 ms of harness).
"""

from __future__ import annotations

import asyncio
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


def timed(fn, repeats: int) -> list[float]:  # noqa: ANN001
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main(repeats: int = 30) -> None:
    url = get_settings().database_url
    api = Api(url)
    engine = api.app.state.engine

    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://b")

    def gql() -> None:
        r = loop.run_until_complete(client.post("/graphql", json={"query": QUERY}))
        assert r.status_code == 200 and len(r.json()["data"]["flows"]["nodes"]) == 100, r.text

    def sql() -> None:
        with engine.connect() as c:
            rows = [tuple(r) for r in c.execute(text(SQL))]
            c.rollback()
        assert len(rows) == 100

    g, s = timed(gql, repeats), timed(sql, repeats)
    loop.run_until_complete(client.aclose())
    loop.close()
    gm, sm = statistics.median(g), statistics.median(s)
    print(f"{engine.dialect.name}: page of 100 flows with provider, receiver, activity: "
          f"GraphQL p50 {gm:.1f} ms, hand-written SQL p50 {sm:.1f} ms, ratio {gm / sm:.1f}x "
          f"({repeats} runs)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
