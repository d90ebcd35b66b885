"""Bench: ``flowsAggregate`` grouped by YEAR and RECIPIENT_COUNTRY over synthetic flows (PostgreSQL).

    python bench/bench_api_aggregate.py --admin-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --db ft_agg1m --flows 1000000 --runs 30 [--reuse]

Makes a scratch database (dropped and re-created unless ``--reuse``), migrates it, and
bulk-loads with COPY: ``flows/10`` activities (85% with one recipient country, 8% with two,
7% with none), their DAC gender markers and sectors, and ``--flows`` current flows shaped
like the shared IATI files (about 5% carry their own recipient country; the rest take
their activity's only country, the rule ``RECIPIENT_COUNTRY`` documents in docs/api.md).
Then rebuilds ``flow_rollup`` (timed) and times the GraphQL query through the ASGI app
in process (one client, one loop) both ways: answered from the rollup (the default) and
over the flows (``aggregate.USE_ROLLUP = False``); prints p50/p95 of each with the query
plans.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import time
from datetime import date, timedelta
from decimal import Decimal

import httpx
import psycopg
from sqlalchemy import text

from fundtrack.api.filters import FlowWhere
from fundtrack.api.testing import Api
from fundtrack.db.migrate import upgrade
from fundtrack.derived.rollup import maintain as rollup
from fundtrack.query import aggregate
from fundtrack.query.aggregate import FlowDimension, aggregate_statement

QUERY = """{ flowsAggregate(groupBy: [YEAR, RECIPIENT_COUNTRY]) {
  groups { year recipientCountry count sum sumUsd countWithoutUsd } } }"""

KINDS = ["DISBURSEMENT"] * 5 + ["EXPENDITURE"] * 3 + ["OUTGOING_COMMITMENT"] * 2 + \
    ["INCOMING_FUNDS", "INCOMING_COMMITMENT", "OUTGOING_PLEDGE"]
CURRENCIES = [("USD", Decimal(1)), ("EUR", Decimal("1.08")), ("GBP", Decimal("1.27")),
              ("SEK", Decimal("0.095")), ("CAD", Decimal("0.74")), ("NOK", Decimal("0.094"))]


def _copy(conn: psycopg.Connection, table: str, cols: list[str], rows: io.StringIO) -> None:
    rows.seek(0)
    with conn.cursor() as cur, cur.copy(
            f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        while chunk := rows.read(1 << 20):
            cp.write(chunk)


def generate(url: str, n_flows: int, seed: int = 1325) -> None:
    """Bulk-load ``n_flows`` synthetic current flows into the migrated database at ``url``."""
    rnd = random.Random(seed)
    countries = [f"{a}{b}" for a in "ABCDEFGHIJKLMNO" for b in "ABCDEFGHIJ"]  # 150 codes
    orgs = [f"XM-SYN-{i:04d}" for i in range(400)]
    n_act = max(n_flows // 10, 1)
    pg_url = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(pg_url) as conn:
        batch_id = conn.execute(
            "INSERT INTO import_batch (importer, importer_version, file_name, sha256, "
            "size_bytes, created_at, status, counts) VALUES ('synthetic', '1', "
            "'bench_api_aggregate', repeat('0', 64), 0, now(), 'applied', '{}') RETURNING id"
        ).fetchone()[0]
        first_act = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM activity").fetchone()[0]
        acts, ac, pm, sec = io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()
        for i in range(n_act):
            aid = first_act + i
            acts.write(f"{aid}\t{batch_id}\tXM-SYN-ACT-{aid}\t{rnd.choice(orgs)}\tf\n")
            u = rnd.random()
            picks = rnd.sample(countries, 1 if u < 0.85 else 2 if u < 0.93 else 0)
            for c in picks:
                ac.write(f"{aid}\t{c}\n")
            pm.write(f"{aid}\t1\t1\t{rnd.choice('0012')}\n")
            sec.write(f"{aid}\t1\t{rnd.choice(['15170', '15180', '15220', '72010', '12220'])}\n")
        _copy(conn, "activity", ["id", "batch_id", "iati_identifier", "reporting_org_ref",
                                 "humanitarian"], acts)
        _copy(conn, "activity_country", ["activity_id", "code"], ac)
        _copy(conn, "policy_marker", ["activity_id", "vocabulary", "code", "significance"], pm)
        _copy(conn, "activity_sector", ["activity_id", "vocabulary", "code"], sec)
        conn.execute("SELECT setval('activity_id_seq', (SELECT max(id) FROM activity))")
        cols = ["batch_id", "activity_id", "reporting_org_ref", "external_id", "kind", "amount",
                "currency", "value_date", "amount_usd", "usd_rate", "provider_ref",
                "receiver_ref", "recipient_country", "earmarking"]
        start = date(2010, 1, 1)
        done = 0
        while done < n_flows:
            buf = io.StringIO()
            for i in range(done, min(done + 200_000, n_flows)):
                aid = first_act + rnd.randrange(n_act)
                cur, rate = rnd.choice(CURRENCIES)
                amount = Decimal(rnd.randrange(1, 10_000_000_00)) / 100
                has_usd = rnd.random() < 0.97
                usd = (amount * rate).quantize(Decimal("0.01")) if has_usd else None
                day = start + timedelta(days=rnd.randrange(15 * 365))
                country = rnd.choice(countries) if rnd.random() < 0.05 else None
                row = [batch_id, aid, rnd.choice(orgs), f"syn-{i}", rnd.choice(KINDS), amount,
                       cur, day, usd, rate if has_usd else None, rnd.choice(orgs),
                       rnd.choice(orgs), country, rnd.choice([1, 2, 3, 4, None])]
                buf.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")
            _copy(conn, "flow", cols, buf)
            done = min(done + 200_000, n_flows)
            print(f"  {done:,} flows", flush=True)
        conn.commit()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def bench(url: str, runs: int, base_runs: int) -> None:
    """Time the query from the rollup and over the flows, in one root task (as under a
    server: a new root task per request would make AnyIO start a worker thread each time)."""
    api = Api(url)
    engine = api.app.state.engine
    dims = [FlowDimension.YEAR, FlowDimension.RECIPIENT_COUNTRY]
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM flow WHERE superseded_by IS NULL")).scalar_one()
        rows = c.execute(text("SELECT count(*) FROM flow_rollup")).scalar_one()

    def sql_times(stmt: object, k: int) -> list[float]:
        """The statement alone, as the resolver runs it (same settings, rows fetched)."""
        times = []
        with engine.connect() as c:
            c.exec_driver_sql("SET jit = off")
            c.exec_driver_sql("SET work_mem = '32MB'")
            for _ in range(k):
                t = time.perf_counter()
                list(c.execute(stmt))  # type: ignore[call-overload]
                times.append((time.perf_counter() - t) * 1000)
            c.rollback()
        return sorted(times)

    async def run() -> dict[str, tuple[list, list[float], list[float]]]:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            async def once() -> list:
                r = await client.post("/graphql", json={"query": QUERY})
                body = r.json()  # decoded once, as a client would
                assert r.status_code == 200 and "errors" not in body, r.text[:500]
                return body["data"]["flowsAggregate"]["groups"]

            results = {}
            for path, use, k in (("rollup", True, runs), ("flows", False, base_runs)):
                aggregate.USE_ROLLUP = use
                groups = await once()
                stmt = aggregate_statement(text("true"), dims, "postgresql", FlowWhere())
                times = []
                for _ in range(k):
                    t = time.perf_counter()
                    await once()
                    times.append((time.perf_counter() - t) * 1000)
                results[path] = (groups, sorted(times), sql_times(stmt, k))
                with engine.connect() as c:
                    c.exec_driver_sql("SET jit = off")
                    c.exec_driver_sql("SET work_mem = '32MB'")
                    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
                    plan = [r[0] for r in c.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql))]
                print(f"--- plan ({path}) ---")
                print("\n".join(plan))
            aggregate.USE_ROLLUP = True
            return results

    results = asyncio.run(run())
    assert results["rollup"][0] == results["flows"][0], "rollup and flows disagree"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for path, (groups, times, sql) in results.items():
        print(f"flowsAggregate(groupBy: [YEAR, RECIPIENT_COUNTRY]) from {path} over {n:,} "
              f"current flows ({rows:,} rollup rows), {len(groups):,} groups: "
              f"p50 {statistics.median(times):.1f} ms, "
              f"p95 {times[int(0.95 * (len(times) - 1))]:.1f} ms, max {times[-1]:.1f} ms "
              f"({len(times)} runs); its SQL statement alone p50 {statistics.median(sql):.1f} ms")
    print(f"answers identical both ways; load average {load}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--db", default="ft_agg1m")
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--base-runs", type=int, default=10, help="runs over the flows")
    ap.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    a = ap.parse_args()
    url = a.admin_url.rsplit("/", 1)[0] + "/" + a.db
    if not a.reuse:
        with psycopg.connect(a.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{a.db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{a.db}"')
        upgrade(url)
        t = time.perf_counter()
        generate(url, a.flows)
        print(f"loaded {a.flows:,} flows in {time.perf_counter() - t:.0f} s")
        # COPY bypassed the import pipeline, so the rollup is built once here.
        from fundtrack.db import make_engine

        eng = make_engine(url, statement_timeout_ms=0)
        t = time.perf_counter()
        with eng.begin() as c:
            out = rollup.rebuild(c)
        eng.dispose()
        print(f"rollup rebuilt ({out['rollup_rows']:,} rows) in {time.perf_counter() - t:.1f} s")
    bench(url, a.runs, a.base_runs)


if __name__ == "__main__":
    main()
