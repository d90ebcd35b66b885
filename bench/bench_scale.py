"""Bench: fundtrack at 10M synthetic flows on PostgreSQL, compared with 1M in the same run.

    python bench/bench_scale.py --load --db ft_scale10m --flows 10000000
    python bench/bench_scale.py --load --db ft_scale1m --flows 1000000
    python bench/bench_scale.py --db ft_scale10m --db ft_scale1m --runs 20
    python bench/bench_scale.py --db ft_scale10m --db ft_scale1m --import-flows 1000
    python bench/bench_scale.py --db ft_scale10m --db ft_scale1m --fallback 3
    python bench/bench_scale.py --db ft_scale10m --db ft_scale1m --partition

``--load`` (re)creates each scratch database, migrates it and COPY-loads ``--flows`` flows
with the generator of ``bench/bench_api_aggregate.py`` (same shape and seed, so 1M and 10M
differ only in size). At 10M the per-row checks dominate a load into an indexed table, so
the flow table's secondary indexes and foreign keys are dropped for the COPY and re-created
once afterwards (the definitions are read from the catalogue, so nothing is hard-coded);
then ``flow_rollup`` is rebuilt (timed). Without ``--load`` each named database is measured:

- a page of 100 flows through GraphQL (in-process ASGI, one client) and the SQL it stands for;
- a deep page (after 5,000,000 flows, or half-way): GraphQL (cursors are offsets), SQL with
  OFFSET, and SQL by keyset (``id > x``) for comparison;
- ``flowsAggregate`` grouped three ways (from the rollup);
- filtered lists with ``totalCount`` (one year of disbursements; all disbursements);
- database, table and index sizes on disk; the rollup rebuild time.

p50/p95 over ``--runs``; the last database named is the floor for the printed ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api_aggregate import generate  # noqa: E402

from fundtrack.api.paging import encode_cursor  # noqa: E402
from fundtrack.api.testing import Api  # noqa: E402
from fundtrack.db import make_engine  # noqa: E402
from fundtrack.db.migrate import upgrade  # noqa: E402
from fundtrack.derived.rollup import maintain as rollup  # noqa: E402

PAGE = """query($after: String) { flows(first: 100, after: $after) { pageInfo { endCursor }
  nodes { id kind amount currency valueDate amountUsd provider { ref } receiver { ref }
  recipientCountry } } }"""
AGGREGATES = {
    "YEAR x RECIPIENT_COUNTRY": ("[YEAR, RECIPIENT_COUNTRY]", "year recipientCountry"),
    "KIND x YEAR": ("[KIND, YEAR]", "kind year"),
    "SECTOR x GENDER_SIGNIFICANCE": ("[SECTOR, GENDER_SIGNIFICANCE]", "sector genderSignificance"),
}
AGG = "{ flowsAggregate(groupBy: %s) { groups { %s count sum sumUsd countWithoutUsd } } }"
FILTERED = {
    "disbursements in 2020, first 20 + totalCount": """{ flows(first: 20, where: {kind: {_eq: DISBURSEMENT},
      valueDate: {_gte: "2020-01-01", _lt: "2021-01-01"}}) { totalCount nodes { id amount currency } } }""",
    "all disbursements, first 10 + totalCount (bench_load.sh query)":
        "{ flows(first: 10, where: {kind: {_eq: DISBURSEMENT}}) { totalCount nodes { id amount } } }",
}
# What the connection runs for a page (one row more, to know if there is a next page).
PAGE_SQL = ("SELECT id, kind, amount, currency, value_date, amount_usd, provider_ref, receiver_ref, "
            "recipient_country FROM flow WHERE superseded_by IS NULL ORDER BY id LIMIT 101 %s")


def pg(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _flow_ddl(conn: psycopg.Connection) -> tuple[list[str], list[tuple[str, str]]]:
    """The flow table's secondary indexes and outgoing foreign keys, as re-runnable DDL."""
    indexes = [r[0] for r in conn.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = 'flow'::regclass "
        "AND NOT i.indisprimary")]
    fks = [(r[0], r[1]) for r in conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'flow'::regclass AND contype = 'f'")]
    return indexes, fks


def load(admin_url: str, db: str, n_flows: int) -> None:
    url = admin_url.rsplit("/", 1)[0] + "/" + db
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    upgrade(url)
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        indexes, fks = _flow_ddl(conn)
        for name, _ in fks:
            conn.execute(f'ALTER TABLE flow DROP CONSTRAINT "{name}"')
        for ddl in indexes:
            conn.execute("DROP INDEX " + ddl.split(" INDEX ", 1)[1].split(" ON ", 1)[0])
    generate(url, n_flows)
    t1 = time.perf_counter()
    print(f"COPY of {n_flows:,} flows (and VACUUM ANALYZE): {t1 - t0:.0f} s", flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        for ddl in indexes:
            conn.execute(ddl)
        for name, definition in fks:
            conn.execute(f'ALTER TABLE flow ADD CONSTRAINT "{name}" {definition}')
        conn.execute("ANALYZE flow")
    t2 = time.perf_counter()
    print(f"{len(indexes)} indexes and {len(fks)} foreign keys re-created: {t2 - t1:.0f} s", flush=True)
    rebuild_rollup(url)
    print(f"load total {time.perf_counter() - t0:.0f} s", flush=True)


def rebuild_rollup(url: str) -> float:
    eng = make_engine(url, statement_timeout_ms=0)
    t = time.perf_counter()
    with eng.begin() as c:
        rollup.rebuild(c)
    took = time.perf_counter() - t
    with eng.connect() as c:
        rows = c.execute(text("SELECT count(*) FROM flow_rollup")).scalar_one()
    eng.dispose()
    print(f"rollup rebuilt ({rows:,} rows, all grains) in {took:.1f} s", flush=True)
    return took


def fetch_id(engine: Any, offset: int) -> int:
    with engine.connect() as c:
        return c.execute(text("SELECT id FROM flow WHERE superseded_by IS NULL ORDER BY id "
                              "LIMIT 1 OFFSET :o"), {"o": offset - 1}).scalar_one()


def _times(once: Callable[[], Any], runs: int) -> list[float]:
    once()  # warm
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        once()
        out.append((time.perf_counter() - t) * 1000)
    return sorted(out)


def _p(times: list[float], q: float) -> float:
    return times[int(q * (len(times) - 1))]


def measure(url: str, runs: int) -> dict[str, Any]:
    """Every timing of one database, keyed by a label; also its sizes."""
    api = Api(url)
    engine = api.app.state.engine
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://b",
                               timeout=120)

    def gql(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = loop.run_until_complete(client.post("/graphql", json={"query": query,
                                                                  "variables": variables or {}}))
        body = r.json()
        assert r.status_code == 200 and "errors" not in body, r.text[:500]
        return body["data"]

    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM flow WHERE superseded_by IS NULL")).scalar_one()
        sizes = {
            "database": c.execute(text("SELECT pg_database_size(current_database())")).scalar_one(),
            "flow table": c.execute(text("SELECT pg_table_size('flow')")).scalar_one(),
            "flow indexes": c.execute(text("SELECT pg_indexes_size('flow')")).scalar_one(),
            "flow_rollup": c.execute(text("SELECT pg_total_relation_size('flow_rollup')")).scalar_one(),
        }
    # Cursors are offsets (fundtrack.api.paging): the page after offset `deep` is OFFSET deep.
    deep = min(5_000_000, n // 2)
    deep_cursor = encode_cursor(deep - 1)
    results: dict[str, list[float]] = {}
    page = gql(PAGE)["flows"]["nodes"]
    assert len(page) == 100
    results["page of 100 flows, GraphQL"] = _times(lambda: gql(PAGE), runs)
    results["deep page of 100 flows, GraphQL"] = _times(lambda: gql(PAGE, {"after": deep_cursor}), runs)

    def sql(stmt: str, params: dict[str, int]) -> Callable[[], Any]:
        def once() -> Any:
            with engine.connect() as c:
                rows = c.execute(text(stmt), params).all()
            assert len(rows) == 101
        return once

    results["page of 100 flows, SQL"] = _times(sql(PAGE_SQL % "", {}), runs)
    results["deep page of 100 flows, SQL OFFSET"] = _times(sql(PAGE_SQL % "OFFSET :o", {"o": deep}), runs)
    deep_id = fetch_id(engine, deep)
    results["deep page of 100 flows, SQL keyset (id > x)"] = _times(
        sql(PAGE_SQL.replace("WHERE", "WHERE id > :x AND") % "", {"x": deep_id}), runs)
    groups: dict[str, int] = {}
    for label, (dims, fields) in AGGREGATES.items():
        q = AGG % (dims, fields)
        groups[label] = len(gql(q)["flowsAggregate"]["groups"])
        results[f"flowsAggregate {label}"] = _times(lambda q=q: gql(q), runs)
    counts: dict[str, int] = {}
    for label, q in FILTERED.items():
        counts[label] = gql(q)["flows"]["totalCount"]
        results[label] = _times(lambda q=q: gql(q), max(3, runs // 4))
    loop.run_until_complete(client.aclose())
    loop.close()
    api.app.state.engine.dispose()
    return {"flows": n, "sizes": sizes, "times": results, "groups": groups, "counts": counts}


FALLBACK = """{ flowsAggregate(groupBy: [YEAR, RECIPIENT_COUNTRY], where: {amount: {_gt: "1000"}}) {
  groups { year recipientCountry count sum } } }"""


def fallback(url: str, runs: int) -> None:
    """A flowsAggregate the rollup cannot answer (a condition on amount): over the flows."""
    api = Api(url)
    for _ in range(runs):
        t = time.perf_counter()
        out = api.raw(FALLBACK)
        took = time.perf_counter() - t
        what = (f"error: {out['errors'][0]['message'][:120]}" if out.get("errors")
                else f"{len(out['data']['flowsAggregate']['groups']):,} groups")
        print(f"{url.rsplit('/', 1)[1]}: flowsAggregate YEAR x RECIPIENT_COUNTRY where amount > 1000 "
              f"(over the flows, statement timeout {api.settings.statement_timeout_ms} ms): "
              f"{took * 1000:,.0f} ms, {what}", flush=True)
    api.app.state.engine.dispose()


def partition_experiment(url: str) -> None:
    """Time one year's count on copies of the flows, flat and partitioned by value year.

    Both copies hold only the columns the count needs, in the same order as ``flow``, with the
    same two indexes, so the difference between them is the partitioning alone:
    ``scale_flow_flat`` is one table, ``scale_flow_by_year`` is RANGE-partitioned on
    value_date (one partition per year, a default one for undated flows). The same count
    runs on ``flow`` and both copies (a warm-up, then the median of 3); the copies are dropped.
    """
    q = ("SELECT count(*) FROM {t} WHERE superseded_by IS NULL AND kind = 'DISBURSEMENT' "
         "AND value_date >= '2020-01-01' AND value_date < '2021-01-01'")
    cols = "id bigint, kind varchar(40), value_date date, superseded_by bigint"
    with psycopg.connect(pg(url), autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS scale_flow_by_year, scale_flow_flat")
        lo, hi = c.execute("SELECT min(extract(year FROM value_date))::int, "
                           "max(extract(year FROM value_date))::int FROM flow").fetchone()
        c.execute("SET maintenance_work_mem = '1GB'")
        c.execute(f"CREATE TABLE scale_flow_flat ({cols})")
        c.execute(f"CREATE TABLE scale_flow_by_year ({cols}) PARTITION BY RANGE (value_date)")
        for y in range(lo, hi + 1):
            c.execute(f"CREATE TABLE scale_flow_{y} PARTITION OF scale_flow_by_year "
                      f"FOR VALUES FROM ('{y}-01-01') TO ('{y + 1}-01-01')")
        c.execute("CREATE TABLE scale_flow_undated PARTITION OF scale_flow_by_year DEFAULT")
        for table in ("scale_flow_flat", "scale_flow_by_year"):
            t = time.perf_counter()
            c.execute(f"INSERT INTO {table} SELECT id, kind, value_date, superseded_by FROM flow ORDER BY id")
            c.execute(f"CREATE INDEX ON {table} (value_date)")
            c.execute(f"CREATE INDEX ON {table} (superseded_by, kind)")
            c.execute(f"VACUUM ANALYZE {table}")
            print(f"{table} built in {time.perf_counter() - t:.0f} s")
        for table in ("flow", "scale_flow_flat", "scale_flow_by_year"):
            times, n = [], None
            for _ in range(4):
                t = time.perf_counter()
                n = c.execute(q.format(t=table)).fetchone()[0]
                times.append((time.perf_counter() - t) * 1000)
            print(f"count of 2020 disbursements on {table}: {n:,}, median of 3 after a warm-up "
                  f"{statistics.median(times[1:]):,.0f} ms", flush=True)
        c.execute("DROP TABLE scale_flow_by_year, scale_flow_flat")


def import_one(url: str, n_flows: int, timeout_ms: int | None) -> None:
    """Import one freshly generated IATI file (``n_flows`` flows, value year 2023) and time it."""
    import random
    import tempfile

    from bench_load_imports import write_file

    from fundtrack.ingest.pipeline import import_file

    eng = make_engine(url, statement_timeout_ms=timeout_ms)
    with tempfile.TemporaryDirectory() as work:
        f = Path(work) / "one.xml"
        write_file(f, time.strftime("S%H%M%S"), n_flows, random.Random(5))
        t = time.perf_counter()
        try:
            result = import_file(eng, f)
            outcome = f"{result.status}, {result.counts.get('flows', 0):,} flows"
        except Exception as exc:  # noqa: BLE001 - the bench reports what stopped the import
            outcome = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    eng.dispose()
    label = "default" if timeout_ms is None else f"{timeout_ms} ms"
    print(f"import of one {n_flows:,}-flow file (statement timeout {label}): "
          f"{time.perf_counter() - t:.1f} s, {outcome}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--db", action="append", required=True)
    ap.add_argument("--flows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--load", action="store_true", help="(re)create and load the database")
    ap.add_argument("--rollup", action="store_true", help="also time a rollup rebuild")
    ap.add_argument("--partition", action="store_true",
                    help="instead: time one year's count on a copy partitioned by value year")
    ap.add_argument("--fallback", type=int, default=0, metavar="RUNS",
                    help="instead: time a flowsAggregate the rollup cannot answer, RUNS times")
    ap.add_argument("--import-flows", type=int, default=0,
                    help="instead: import one generated file of this many flows into each database, "
                    "first under the default statement timeout, then with none")
    a = ap.parse_args()
    base = a.admin_url.rsplit("/", 1)[0]
    if a.load:
        for db in a.db:
            load(a.admin_url, db, a.flows)
        return
    with open("/proc/loadavg") as f:
        print("load average before:", f.read().strip())
    if a.partition:
        for db in a.db:
            partition_experiment(f"{base}/{db}")
        return
    if a.fallback:
        for db in a.db:
            fallback(f"{base}/{db}", a.fallback)
        return
    if a.import_flows:
        for db in a.db:
            import_one(f"{base}/{db}", a.import_flows, None)
            import_one(f"{base}/{db}", a.import_flows, 0)
        return
    found = {}
    for db in a.db:
        url = f"{base}/{db}"
        found[db] = measure(url, a.runs)
        if a.rollup:
            found[db]["rollup"] = rebuild_rollup(url)
    with open("/proc/loadavg") as f:
        print("load average after:", f.read().strip())
    floor = a.db[-1]
    for db, r in found.items():
        print(f"\n== {db}: {r['flows']:,} current flows ==")
        for k, v in r["sizes"].items():
            print(f"  size {k}: {v / 2**20:,.0f} MiB")
        for label, g in r["groups"].items():
            print(f"  {label}: {g:,} groups")
        for label, c in r["counts"].items():
            print(f"  {label}: totalCount {c:,}")
        if "rollup" in r:
            print(f"  rollup rebuild {r['rollup']:.1f} s")
        for label, times in r["times"].items():
            ratio = ""
            if db != floor:
                f50 = statistics.median(found[floor]["times"][label])
                ratio = f"  ({statistics.median(times) / f50:.1f}x {floor})"
            print(f"  {label}: p50 {statistics.median(times):,.1f} ms, p95 {_p(times, 0.95):,.1f} ms"
                  f" ({len(times)} runs){ratio}")


if __name__ == "__main__":
    main()
