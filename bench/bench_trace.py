"""Benchmark the money trail on a synthetic ledger: donors -> funds -> agencies -> NGOs -> spending.

    FUNDTRACK_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/ft_bench \\
        .venv/bin/python bench/bench_trace.py --flows 1000000

Rows go straight into the ledger tables (the importer has its own benchmark); then the
full recompute is timed, then ``trace`` from donors (depth 6), then an incremental update
after one more small file imported through the real pipeline.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import click
from sqlalchemy import text

from fundtrack.db import make_engine
from fundtrack.db.bulk import bulk_insert, new_ids
from fundtrack.db.migrate import upgrade
from fundtrack.derived.trail.recompute import recompute
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.query.trace import trace
from fundtrack.records import FlowKind


def generate(conn, n_flows: int, seed: int = 7) -> dict[str, int]:
    """Write a synthetic ledger of about ``n_flows`` flows; return its shape."""
    rnd = random.Random(seed)
    batch = conn.execute(m.ImportBatch.__table__.insert().values(
        importer="bench", importer_version="1", file_name="synthetic", sha256="0" * 64,
        size_bytes=0, created_at=datetime.now(UTC), status="applied", counts={})
        .returning(m.ImportBatch.id)).scalar_one()
    # each NGO grant makes ~ 2 (grant + mirror) + 3 expenditures = 5 flows
    n_ngo_grants = max(10, n_flows // 6)
    n_donors, n_funds = 30, 10
    n_agencies = max(5, n_ngo_grants // 2000)
    n_projects = max(n_agencies, n_ngo_grants // 50)
    n_ngos = max(10, n_ngo_grants // 4)
    acts: list[dict] = []
    flows: list[dict] = []
    act_ids = iter(new_ids(conn, "activity", n_donors + n_funds + n_projects + n_ngo_grants))
    flow_ids = iter(new_ids(conn, "flow", int(n_flows * 1.2) + 10_000))
    base = date(2023, 1, 1)

    def act(org: str, ident: str, org_type: str) -> int:
        aid = next(act_ids)
        acts.append({"id": aid, "batch_id": batch, "superseded_by": None, "iati_identifier": ident,
                     "reporting_org_ref": org, "reporting_org_type": org_type,
                     "humanitarian": False})
        return aid

    written = {"activities": 0, "flows": 0}

    def flush() -> None:
        """Write what is held (activities first: flows name them), so memory stays bounded."""
        for rows, table, key in ((acts, m.Activity.__table__, "activities"),
                                 (flows, m.Flow.__table__, "flows")):
            for i in range(0, len(rows), 50_000):
                bulk_insert(conn, table, rows[i:i + 50_000])
            written[key] += len(rows)
            rows.clear()

    def flow(aid: int, org: str, kind: FlowKind, amount: Decimal, day: int, **kw) -> None:
        flows.append({"id": next(flow_ids), "batch_id": batch, "superseded_by": None,
                      "activity_id": aid, "reporting_org_ref": org, "kind": kind,
                      "amount": amount, "currency": "USD", "amount_usd": amount,
                      "value_date": base + timedelta(days=day),
                      "source_location": str(written["flows"] + len(flows)),
                      **{**OPTIONAL, **kw}})
        if len(flows) >= 500_000:
            flush()

    donors = [(f"XB-DONOR-{i}", f"XB-DONOR-{i}-A") for i in range(n_donors)]
    funds = [(f"XB-FUND-{i}", f"XB-FUND-{i}-A") for i in range(n_funds)]
    projects = [(f"XB-AGENCY-{i % n_agencies}", f"XB-AGENCY-{i % n_agencies}-P{i}")
                for i in range(n_projects)]
    d_aid = {d: act(*d, "10") for d in donors}
    f_aid = {f: act(*f, "40") for f in funds}
    p_aid = {p: act(*p, "40") for p in projects}
    cents = Decimal("0.01")
    # donors -> funds: each fund gets ~8 donors, some earmarked; both sides report
    fund_in: dict = {f: Decimal(0) for f in funds}
    for f in funds:
        for d in rnd.sample(donors, 8):
            amt = Decimal(rnd.randint(10**8, 10**10)) * cents
            day = rnd.randint(0, 30)
            flow(d_aid[d], d[0], FlowKind.DISBURSEMENT, amt, day, receiver_ref=f[0],
                 receiver_activity_id=f[1], earmarking=3 if rnd.random() < 0.2 else None,
                 recipient_country="ML" if rnd.random() < 0.2 else None)
            flow(f_aid[f], f[0], FlowKind.INCOMING_FUNDS, amt, day + 2, provider_ref=d[0],
                 provider_activity_id=d[1])
            fund_in[f] += amt
    # funds -> projects
    proj_in: dict = {}
    for i, p in enumerate(projects):
        f = funds[i % n_funds]
        share = (fund_in[f] / (n_projects // n_funds + 1)).quantize(cents)
        flow(f_aid[f], f[0], FlowKind.DISBURSEMENT, share, 60 + i % 30, receiver_ref=p[0],
             receiver_activity_id=p[1], recipient_country=rnd.choice(["ML", "SN", "CD"]))
        proj_in[p] = share
    # projects -> NGO grants (both sides) -> NGO expenditure; project expenditure
    for g in range(n_ngo_grants):
        p = projects[g % n_projects]
        ngo = f"XB-NGO-{g % n_ngos}"
        ident = f"{ngo}-G{g}"
        aid = act(ngo, ident, "22")
        amt = (proj_in[p] / 60).quantize(cents)
        day = 120 + g % 60
        flow(p_aid[p], p[0], FlowKind.DISBURSEMENT, amt, day, receiver_ref=ngo,
             receiver_activity_id=ident)
        flow(aid, ngo, FlowKind.INCOMING_FUNDS, amt, day + 3, provider_ref=p[0],
             provider_activity_id=p[1])
        third = (amt / 3).quantize(cents)
        for k in range(2):
            flow(aid, ngo, FlowKind.EXPENDITURE, third, day + 30 + k, receiver_ref="XB-SUPPLIER")
        flow(p_aid[p], p[0], FlowKind.EXPENDITURE, (amt / 5).quantize(cents), day + 10,
             receiver_ref="XB-SUPPLIER")
    flush()
    return {**written, "donors": n_donors, "funds": n_funds,
            "agencies": n_agencies, "projects": n_projects, "ngo_grants": n_ngo_grants}


OPTIONAL = dict.fromkeys(("receiver_ref", "receiver_activity_id", "provider_ref",
                          "provider_activity_id", "earmarking", "recipient_country"))

SMALL_FILE = """<?xml version="1.0"?><iati-activities version="2.03"><iati-activity
 default-currency="USD"><iati-identifier>XB-NGO-NEW-1</iati-identifier><reporting-org
 ref="XB-NGO-NEW" type="22"><narrative>new</narrative></reporting-org><title><narrative>t
 </narrative></title><transaction><transaction-type code="1"/><transaction-date
 iso-date="2023-06-01"/><value currency="USD" value-date="2023-06-01">1000.00</value>
 <provider-org ref="XB-AGENCY-0" provider-activity-id="XB-AGENCY-0-P0"/></transaction>
 <transaction><transaction-type code="4"/><transaction-date iso-date="2023-07-01"/><value
 currency="USD" value-date="2023-07-01">900.00</value></transaction></iati-activity>
</iati-activities>"""


@click.command()
@click.option("--url", envvar="FUNDTRACK_DATABASE_URL", required=True)
@click.option("--flows", "n_flows", default=100_000, show_default=True)
@click.option("--traces", default=30, show_default=True)
@click.option("--reuse", is_flag=True, help="Keep the ledger of an earlier run (no generation).")
@click.option("--no-recompute", is_flag=True, help="With --reuse: trace and incremental only.")
@click.option("--recompute-only", is_flag=True, help="Time the full recompute; no traces, no import.")
@click.option("--check-incremental", is_flag=True,
              help="After the incremental import: checksum, full recompute, same checksum required.")
def main(url: str, n_flows: int, traces: int, reuse: bool, no_recompute: bool, recompute_only: bool,
         check_incremental: bool) -> None:
    upgrade(url)
    engine = make_engine(url, statement_timeout_ms=0)
    if not reuse:
        with engine.begin() as c:
            for t in ("trail_reach", "attribution", "movement", "trail_link", "flow_parent", "flow", "budget",
                      "participating_org", "related_activity", "activity", "batch_issue",
                      "import_batch"):
                c.execute(text(f"DELETE FROM {t}"))
        t0 = time.perf_counter()
        with engine.begin() as c:
            shape = generate(c, n_flows)
        click.echo(f"generated {shape} in {time.perf_counter() - t0:.1f}s")
    if reuse and no_recompute:
        return _queries(engine, traces)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("ANALYZE"))
    _recompute(engine)
    click.echo(f"checksum: {checksum(engine)}")
    if recompute_only:
        return
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("ANALYZE"))
    _queries(engine, traces)
    if check_incremental:
        after = checksum(engine)
        _recompute(engine)
        rebuilt = checksum(engine)
        click.echo(f"incremental == full rebuild: {after == rebuilt}")
        if after != rebuilt:
            raise SystemExit(f"incremental {after}\nrebuilt {rebuilt}")


def _recompute(engine) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    t0 = time.perf_counter()
    with engine.begin() as c:
        backend = _backend_cpu(c)
        cpu = time.process_time()
        out = recompute(c)
        cpu = time.process_time() - cpu
        backend = _backend_cpu(c) - backend
    phases = {k: v for k, v in out.items() if k.startswith("seconds_")}
    counts = {k: v for k, v in out.items() if not k.startswith("seconds_")}
    click.echo(f"full recompute: {time.perf_counter() - t0:.1f}s (load average before: "
               f"{' '.join(load)}, after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])})")
    click.echo(f"  CPU seconds: this process {cpu:.1f} (its threads included), its PostgreSQL backend "
               f"{backend:.1f} (parallel index-build workers not counted)")
    click.echo(f"  counts {counts}")
    click.echo("  phases " + ", ".join(f"{k[8:]} {v:.1f}" for k, v in phases.items()))


def _backend_cpu(conn) -> float:
    """CPU seconds used so far by this connection's server process (same machine only)."""
    if conn.dialect.name != "postgresql":
        return 0.0
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: Every derived row of the trail as text (no generated ids: movements are named by their
#: flow), so two rebuilds can be compared exactly, scale of each amount included.
CHECKSUM_SQL = {
    "trail_link": "SELECT count(*), NULL::numeric, NULL::numeric, {h} FROM (SELECT concat_ws('|', "
                  "flow_id, activity_id, kind, relation, target_ref, target_activity_id, target_flow_id, "
                  "publisher_ref, resolved) AS r FROM trail_link) x",
    "movement": "SELECT count(*), sum(amount), sum(amount_usd), {h} FROM (SELECT amount, amount_usd, "
                "concat_ws('|', flow_id, mirror_flow_id, method, kind, src_org, src_activity, dst_org, "
                "dst_activity, amount::text, currency, amount_usd::text, value_date, earmarking, "
                "recipient_country, sector_code, sort_key) AS r FROM movement) x",
    "attribution": "SELECT count(*), sum(amount), sum(amount_usd), {h} FROM (SELECT a.amount, a.amount_usd, "
                   "concat_ws('|', m.flow_id, a.originator_ref, a.untraced_reason, a.amount::text, "
                   "a.currency, a.amount_usd::text, a.depth) AS r "
                   "FROM attribution a JOIN movement m ON m.id = a.movement_id) x",
    "trail_reach": "SELECT count(*), sum(amount), sum(amount_usd), {h} FROM (SELECT amount, amount_usd, "
                   "concat_ws('|', originator_ref, kind, org, activity, currency, amount::text, "
                   "amount_usd::text, rank::text, n, depth) AS r FROM trail_reach) x",
}
#: order-independent digest: the sum of 60 bits of each row's md5
ROW_HASH = "sum(('x' || substr(md5(r), 1, 15))::bit(60)::bigint)"


def checksum(engine) -> dict[str, tuple]:
    """Per derived table: rows, exact sums of amount and amount_usd, a digest of every row."""
    if engine.dialect.name != "postgresql":
        return {}
    out = {}
    with engine.connect() as c:
        for t, q in CHECKSUM_SQL.items():
            n, amt, usd, h = c.execute(text(q.format(h=ROW_HASH))).one()
            out[t] = (n, str(amt), str(usd), str(h))
    return out


def _queries(engine, traces: int, limit: int = 50) -> None:
    """Traces as the API asks for them: each list capped at ``limit`` (its default 50)."""
    times = []
    for i in range(traces):
        t0 = time.perf_counter()
        with engine.connect() as c:
            res = trace(c, organization=f"XB-DONOR-{i % 30}", direction="DOWNSTREAM",
                        max_depth=6, limit=limit)
        times.append(time.perf_counter() - t0)
    click.echo(f"trace donor DOWNSTREAM depth 6: p50 {statistics.median(times) * 1000:.0f} ms, "
               f"p95 {_p95(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {traces}; "
               f"last: {len(res.movements)} of {res.counts['movements']} movements, "
               f"{len(res.terminals)} of {res.counts['terminals']} terminals "
               f"(limit {limit})")
    times = []
    for i in range(traces):
        t0 = time.perf_counter()
        with engine.connect() as c:
            trace(c, activity=f"XB-NGO-{i}-G{i}", direction="UPSTREAM", limit=limit)
        times.append(time.perf_counter() - t0)
    click.echo(f"trace activity UPSTREAM: p50 {statistics.median(times) * 1000:.0f} ms, "
               f"p95 {_p95(times) * 1000:.0f} ms")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "new.xml"
        p.write_text(SMALL_FILE.replace("XB-NGO-NEW", f"XB-NGO-NEW{time.time_ns()}"))
        t0 = time.perf_counter()
        r = import_file(engine, p)
        click.echo(f"incremental import of one small file: {time.perf_counter() - t0:.1f}s "
                   f"({r.status}, {r.counts.get('reattributed_accounts')} accounts re-attributed)")


def _p95(times: list[float]) -> float:
    return sorted(times)[max(0, round(0.95 * len(times)) - 1)]


if __name__ == "__main__":
    main()
