"""Bench (issue 17, 4b): one 500-flow IATI file into PostgreSQL ledgers of 0, 1M and 10M flows.

Load the template databases once (each: migrate, the money-trail generator of
``bench/bench_trace.py`` written straight to the ledger, then EVERY derived table rebuilt,
as ``fundtrack recompute`` does: identity, trail, classification, rollup; VACUUM ANALYZE)::

    A=postgresql://postgres@127.0.0.1:55464/postgres
    nice -n 10 .venv/bin/python bench/bench_one_file.py --admin-url $A --load ft17_0 --flows 0
    nice -n 10 .venv/bin/python bench/bench_one_file.py --admin-url $A --load ft17_1m --flows 1200000

At 10M (``--flows 12000000``, 10,040,160 flows) the rebuild before the streamed trail
(8cdabc4) did not fit: the trail held every cash flow in Python and passed 12 GB resident
(``--rss-limit-mb``, the bench stops itself) while pairing movements. Generate the ledger
once without derived tables (``--ledger-only``, ~22 min at load 9), then make the template
from it (only the rebuild; the bench prints each step's own peak RSS)::

    nice -n 10 .venv/bin/python bench/bench_one_file.py --admin-url $A --load ft17_10m_ledger \
        --flows 12000000 --ledger-only
    nice -n 10 .venv/bin/python bench/bench_one_file.py --admin-url $A --load ft17_10m \
        --from-ledger ft17_10m_ledger --rss-limit-mb 14000

A database built by imports has a registry row for every organisation it met; the
generator registers 6, so in ``ft17_1m`` the file brings new organisations (registry rows)
and identity resolves its part of the party set. The variant where the registry knows
them (``--register-orgs``: a row for every organisation the ledger names, before the
rebuild; from the 1M template, no new generation)::

    nice -n 10 .venv/bin/python bench/bench_one_file.py --admin-url $A --load ft17_1m_reg \
        --from-ledger ft17_1m --register-orgs

Identity resolving only the batch's part (2026-12-07, private cluster, 2 cores shared
with three other helpers' 1M loads, load average 5-8, medians of 3; mixed file)::

    ledger              identity s       total s          CPU client s   peak RSS MB
                        before  after    before  after    before after   before after
    0                   0.20    0.21     0.94    0.94     0.33   0.35    86     87
    1.0M                4.78    0.37     12.49   5.28     2.64   1.05    249    166
    1.0M, registry      0.53    0.20     5.66    4.54     1.15   0.94    165    165

(the rest of the total is the trail, 3.4-5.7 s at that load.) ``--check`` at 1.0M after the
import (the part path: 302 of 50,167 parties resolved): derived tables == full rebuild.

Then measure (this is the one command to re-run on newer code against the kept databases;
``--in-place ft17_10m``: import into the template itself, a new file each run, since a copy
of the 10M database is ~25 GB of disk)::

    nice -n 10 .venv/bin/python bench/bench_one_file.py --admin-url $A --db ft17_0 --db ft17_1m \
        --db ft17_1m_reg [--db ft17_10m --in-place ft17_10m] --runs 3 [--shape ngo] [--check]

FULL REBUILD at 1M (``--load ft17_1m --from-ledger``, 1,004,160 flows, private cluster,
2026-12-07, load 8-10 on 2 cores), each step's own peak RSS in MB:

    code                               identity  movements  attribution+reach  classif.  rollup
    before (8cdabc4)                   625       1,565      3,185              643       422
    streamed movements (default: the   625*      715        2,785              779       600
      parts held under 2M movements)
    + parts and reach rows streamed,   226       629        908                663       535
      reach rows made per account
      (--stream-parts-over 0; the
      default over 2M movements)
    (* identity before its chunked read.) Rebuild wall 554-863 s at this load (the streamed
    attribution runs the movement and attribution index builds before/after the rule, not
    beside it: +30-50 s at 1M). Held at 10M by the streamed trail: ~441 B a movement (the
    engine's records, 8M of them) plus the parts waiting for their account and the reach
    sums of accounts not yet complete; the cash flows never all at once (spill buffer
    100k, then one of 256 buckets of (src, dst) groups on disk).

FULL REBUILD at 10M (``--load ft17_10m --from-ledger ft17_10m_ledger``, 10,040,160 flows,
2026-12-07 11:14-12:07, load 2-9): **2,783 s** (identity 528, trail 1,656, classification
528, rollup 72), each step's own peak RSS in MB: identity 1,033; trail movements 4,328 (the
engine's records of 8,040,080 movements, kept for the attribution; 637 s: one read, 256
buckets); attribution + reach **7,649** (61,383,792 parts and 31,142,049 reach rows
streamed; 1,020 s); classification 2,631; rollup 954. The template is 25,470 MiB. Before
(8cdabc4) the rebuild stopped at 12 GB in the movements. Bound now: ~0.76 KB a flow at 10M
(0.9 KB at 1M, the process's baseline included); the movement records ~440 B each.

ONE FILE at 10M (``--db ft17_0 --db ft17_1m --db ft17_10m --in-place ft17_10m --runs 3``,
2026-12-07 12:07-12:10, load 0-1, medians): ft17_0 0.60 s (derived 0.43); ft17_1m 4.29 s
(identity 1.78, trail 1.92; 249 MB); ft17_10m **18.4 s** (derived 18.24: identity 2.21,
trail 13.92, classification 2.05, rollup 0.22; CPU client 3.5 s, PostgreSQL 14.2 s;
326 MB). The first 10M run brought the file's organisations (identity resolved the whole
party set, 501k parties: 22.0 s, 45.4 s in all, 1,704 MB); runs 2-3 found them registered.
Targets at 10M: under 3 s **not met**, derived within 2x of empty **not met** (42x), 300 MB
not met (326 MB; 1.7 GB with new organisations). The trail's time at 10M is the server's
(PostgreSQL CPU 13.6-14.2 s a run): a query of the incremental update that grows with the
ledger, not yet found. ft17_10m now holds the three files (10,041,660 flows).

ONE FILE at 10M, merged tree (2026-12-07 12:19, load 1.0-1.4, medians of 3; the queries found:
classification's OR over the batch, the planner's parts-per-movement estimate, JIT; see
docs/performance.md): ft17_0 0.64 s (derived 0.45); ft17_1m 0.76 s (derived 0.59, 1.3x;
89 MB); ft17_10m **1.28 s** (derived 1.12, 2.5x: identity 0.09, trail 0.76, classification
0.04, rollup 0.24; CPU client 0.68 s, PostgreSQL 0.48 s; 103 MB).

With the streamed rebuild, ``--check`` at 1M (mixed, 3 runs, load 6-9): derived tables
after the import == full rebuild: True (0 and 1M).

AFTER (issue 17's round, 2026-12-07, same cluster, load 3-5, medians of 3): mixed at 1M
5.23 s (identity 2.18, trail 2.58, rollup 0.09); with a registry row for every organisation
(``ft17_1m_reg``, docs/performance.md says how it was made) 1.96 s (identity 0.23, trail
1.46); ngo at 1M 2.97 s. Peak RSS: the child's own VmHWM (164-267 MB).

BEFORE (main at 7da04f9, 2026-12-07, private PostgreSQL 15 cluster, fsync off, 2 shared
cores at load average 4-7; medians of 3 runs, wall seconds; CPU = client + its backends):

    file    ledger   total   ledger write  identity  trail  classif.  rollup  peak RSS  CPU
    mixed   0        2.29    0.55          0.40      1.00   0.21      0.07    85 MB     0.8
    mixed   1.0M     470.7   0.40          6.02      448.7  0.61      7.15    2.9 GB    152
    ngo     0        1.36    0.28          0.25      0.46   0.12      0.07    86 MB     0.6
    ngo     1.0M     63.8    0.53          5.36      50.7   0.25      4.83    1.4 GB    27.6

(derived 263x / 59x the empty database; ``--check``: after the mixed import the derived
tables equal a full rebuild.) Loading ft17_1m: generation 51 s, full rebuild 419 s
(identity 29, trail 128, classification 245, rollup 17), peak RSS 3.2 GB. At 10M the
rebuild stopped at 12 GB (identity done in ~4 min; trail: cash flows read 07:48-07:53,
10.2 GB, then pairing until 12 GB).

Each run copies the template (``CREATE DATABASE ft17_run TEMPLATE <db>``, so every run
starts equal and the template is never changed) and imports the same generated 500-flow
file through the real pipeline (``fundtrack.ingest.pipeline.import_file`` with the CLI's
engine and statement timeout, after ``resolve_stale`` as ``fundtrack import`` runs it), in
a child process so its peak RSS and CPU are its own. The derived-table seconds per step
come from ``fundtrack.derived.steps`` (logged at INFO, ``derived_seconds``); the ledger
write is the rest of the import (parse, validate, merge, supersede, batch rows, commit).
The file's organisations and activities are the generator's (an agency's project gets money
from a fund and passes it to existing NGO grants; NGOs report money in from existing
projects and out to other existing grants), so the trail has work in a loaded ledger.
Medians over ``--runs``; ratios against the first database named (the 0-flow floor,
measured in the same run). CPU: the child (client) and its PostgreSQL backends.
``--check`` after the last run of each database also compares the derived tables of the
copy with a full rebuild of them (the trail checksum of bench_trace; counts of the others).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Generated activities whose identifiers the file names (present in every loaded ledger of
#: at least ~250k flows: bench_trace.generate makes projects XB-AGENCY-i-Pi for i below the
#: number of agencies, grants XB-NGO-g-Gg for g below the number of NGOs).
AGENCIES = 40
FUNDS = 10


def write_file(path: Path, tag: str, n_flows: int = 500, shape: str = "mixed") -> None:
    """A deterministic IATI 2.03 file of ``n_flows`` USD transactions in 25-transaction
    activities, all valued in 2023 (the ledger's year). ``mixed``: half reported by agencies
    (money in from a pooled fund: every account downstream of that fund is re-attributed),
    half by NGOs; ``ngo``: NGOs only (money in from existing projects, a bounded neighbourhood).
    """
    acts = []
    n_acts = max(n_flows // 25, 1)
    for a in range(n_acts):
        txs = []
        if shape == "mixed" and a % 2 == 0:  # an agency: in from a fund, out to NGO grants
            i = a % AGENCIES
            org, ident, otype = f"XB-AGENCY-{i}", f"XB-AGENCY-{i}-Q{tag}-{a}", "40"
            f = a % FUNDS
            for k in range(5):
                txs.append(_tx(1, 500_000 + k, f"2023-02-{k + 1:02d}",
                               provider=(f"XB-FUND-{f}", f"XB-FUND-{f}-A")))
            for k in range(15):
                g = (a * 97 + k * 13) % 5000
                txs.append(_tx(3, 20_000 + k, f"2023-03-{k + 1:02d}",
                               receiver=(f"XB-NGO-{g}", f"XB-NGO-{g}-G{g}")))
            for k in range(5):
                txs.append(_tx(4, 1_000 + k, f"2023-04-{k + 1:02d}", receiver=("XB-SUPPLIER", None)))
        else:  # an NGO's new grant: in from an existing project, out to other NGOs and spent
            n = (a * 31) % 5000
            org, ident, otype = f"XB-NGO-{n}", f"XB-NGO-{n}-B{tag}-{a}", "22"
            for k in range(5):
                i = (a + k) % AGENCIES
                txs.append(_tx(1, 30_000 + k, f"2023-05-{k + 1:02d}",
                               provider=(f"XB-AGENCY-{i}", f"XB-AGENCY-{i}-P{i}")))
            for k in range(10):
                g = (a * 53 + k * 7 + 1) % 5000
                txs.append(_tx(3, 5_000 + k, f"2023-06-{k + 1:02d}",
                               receiver=(f"XB-NGO-{g}", f"XB-NGO-{g}-G{g}")))
            for k in range(10):
                txs.append(_tx(4, 700 + k, f"2023-07-{k + 1:02d}", receiver=("XB-SUPPLIER", None)))
        acts.append(f'<iati-activity default-currency="USD"><iati-identifier>{ident}'
                    f'</iati-identifier><reporting-org ref="{org}" type="{otype}"><narrative>{org}'
                    f'</narrative></reporting-org><title><narrative>bench {a}</narrative></title>'
                    f'<recipient-country code="ML" percentage="100"/>'
                    f'<sector vocabulary="1" code="15170"/>{"".join(txs)}</iati-activity>')
    path.write_text('<?xml version="1.0"?><iati-activities version="2.03">'
                    f'{"".join(acts)}</iati-activities>')


def _tx(code: int, amount: int, day: str, *, provider: tuple[str, str | None] | None = None,
        receiver: tuple[str, str | None] | None = None) -> str:
    def org(tag: str, side: tuple[str, str | None] | None) -> str:
        if side is None:
            return ""
        ref, act = side
        attr = f' {tag}-activity-id="{act}"' if act else ""
        return f'<{tag} ref="{ref}"{attr}/>'
    return (f'<transaction><transaction-type code="{code}"/><transaction-date iso-date="{day}"/>'
            f'<value currency="USD" value-date="{day}">{amount}.00</value>'
            f'{org("provider-org", provider)}{org("receiver-org", receiver)}</transaction>')


def db_url(admin_url: str, db: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + db


def _rss_watchdog(limit_mb: int) -> None:
    """Stop this process if its resident memory passes ``limit_mb`` (a shared machine)."""
    def watch() -> None:
        while True:
            rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            if rss > limit_mb * 2**20:
                print(f"STOPPED: resident memory {rss / 2**20:,.0f} MB passed {limit_mb:,} MB",
                      flush=True)
                os._exit(3)
            time.sleep(0.5)
    threading.Thread(target=watch, daemon=True).start()


#: A registry row (ref only) for every organisation the ledger's flows and activities name,
#: as a database built by imports has (they store every organisation they meet); the
#: generator writes straight to the ledger and registers 6.
REGISTER_ORGS = (
    "INSERT INTO organisation (ref, is_womens_rights_org, is_pooled_fund) "
    "SELECT r, false, false FROM (SELECT provider_ref r FROM flow UNION SELECT receiver_ref "
    "FROM flow UNION SELECT reporting_org_ref FROM flow UNION SELECT reporting_org_ref "
    "FROM activity) x WHERE r <> '' ON CONFLICT (ref) DO NOTHING")


def _hwm_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB."""
    return next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:")) / 1024


def _peaks_per_step(peaks: dict[str, float]) -> None:
    """Record each rebuild step's own peak RSS into ``peaks``: the high-water mark is reset
    (``/proc/self/clear_refs``) before each step and the trail's two halves, read after."""
    import dataclasses

    from fundtrack.derived import steps as derived
    from fundtrack.derived.trail import attribution, movements

    def wrap(name: str, fn: Any) -> Any:
        def run(*args: Any, **kw: Any) -> Any:
            Path("/proc/self/clear_refs").write_text("5")
            try:
                return fn(*args, **kw)
            finally:
                peaks[name] = max(peaks.get(name, 0.0), _hwm_mb())
        return run

    derived.STEPS = tuple(dataclasses.replace(s, rebuild=wrap(s.name, s.rebuild))
                          for s in derived.STEPS)
    movements.rebuild = wrap("trail: movements", movements.rebuild)  # type: ignore[assignment]
    attribution.rebuild = wrap("trail: attribution", attribution.rebuild)  # type: ignore[assignment]


def load(admin_url: str, db: str, n_flows: int, limit_mb: int, ledger: str | None = None,
         register_orgs: bool = False, ledger_only: bool = False) -> None:
    """(Re)create template ``db``: migrate, generate, rebuild every derived table. With
    ``ledger`` (a database holding a generated ledger, derived tables not built): ``db`` is
    its copy instead of a new generation, and only the rebuild runs. With
    ``register_orgs``: :data:`REGISTER_ORGS` before the rebuild (so the identity tables
    resolve the registry's rows, as after imports). ``ledger_only``: stop after the
    generation (the ledger kept to build templates from with newer code)."""
    from bench_trace import generate
    from sqlalchemy import text

    from fundtrack.db import make_engine
    from fundtrack.db.migrate import upgrade
    from fundtrack.derived import steps as derived

    _rss_watchdog(limit_mb)
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{db}"' + (f' TEMPLATE "{ledger}"' if ledger else ""))
    url = db_url(admin_url, db)
    upgrade(url)
    eng = make_engine(url, statement_timeout_ms=0)
    t = time.perf_counter()
    if n_flows and not ledger:
        with eng.begin() as c:
            shape = generate(c, n_flows)
        print(f"generated {shape} in {time.perf_counter() - t:.0f} s", flush=True)
    if register_orgs:
        with eng.begin() as c:
            n = c.execute(text(REGISTER_ORGS)).rowcount
        print(f"registered {n:,} organisations", flush=True)
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("ANALYZE"))
    if ledger_only:
        eng.dispose()
        return
    peaks: dict[str, float] = {}
    _peaks_per_step(peaks)
    t = time.perf_counter()
    cpu = time.process_time()
    with eng.begin() as c:
        out = derived.rebuild(c)
        seconds = c.info[derived.SECONDS]
    print(f"derived rebuild {time.perf_counter() - t:.0f} s (CPU here {time.process_time() - cpu:.0f} s;"
          f" {', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())}); peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB", flush=True)
    print("  peak RSS per step (MB): " + ", ".join(f"{k} {v:,.0f}" for k, v in peaks.items()))
    print("  " + ", ".join(f"{k}={v}" for k, v in out.items()))
    eng.dispose()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("VACUUM ANALYZE")
        n = c.execute("SELECT count(*) FROM flow WHERE superseded_by IS NULL").fetchone()[0]
        size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    print(f"{db}: {n:,} current flows, {size / 2**20:,.0f} MiB", flush=True)


def _backend_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def child(url: str, path: str, timeout_ms: int | None) -> None:
    """Import ``path`` as ``fundtrack import`` does; print one JSON line of timings."""
    from sqlalchemy import event, text

    from fundtrack.db import make_engine
    from fundtrack.derived import steps as derived
    from fundtrack.ingest.many import resolve_stale
    from fundtrack.ingest.pipeline import import_file

    seconds: list[dict[str, float]] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if hasattr(record, derived.SECONDS):
                seconds.append(getattr(record, derived.SECONDS))

    steps_log = logging.getLogger(derived.__name__)
    steps_log.setLevel(logging.INFO)
    steps_log.addHandler(Grab())
    eng = make_engine(url, statement_timeout_ms=timeout_ms)
    pids: list[int] = []
    event.listen(eng, "connect", lambda dbapi, _rec: pids.append(dbapi.info.backend_pid))
    with eng.connect() as c:
        c.execute(text("SELECT 1"))
    resolve_stale(eng)
    backend0, cpu0 = _backend_cpu(pids), time.process_time()
    t = time.perf_counter()
    try:
        result = import_file(eng, path)
        outcome = f"{result.status}, {result.counts.get('flows', 0)} flows" + "".join(
            f", {k} {result.counts[k]:,}" for k in ("movements", "movements_replaced",
                                                  "reattributed_accounts", "attribution_parts")
            if k in result.counts)
    except Exception as exc:  # noqa: BLE001 - the bench reports what stopped the import
        outcome = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    total = time.perf_counter() - t
    cpu = time.process_time() - cpu0
    backend = _backend_cpu(pids) - backend0
    eng.dispose()
    # the child's own high-water mark (VmHWM: this process's memory since its exec);
    # wait4's ru_maxrss would carry the parent's peak over the fork (e.g. a --check rebuild)
    hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    print(json.dumps({"total": total, "derived": seconds[-1] if seconds else {},
                      "cpu": cpu, "backend_cpu": backend, "outcome": outcome,
                      "rss_mb": hwm / 1024}))


def one_run(admin_url: str, template: str, path: Path, timeout_ms: int | None,
            in_place: bool = False) -> dict[str, Any]:
    """Import ``path`` into a fresh copy of ``template`` (``in_place``: into ``template``
    itself, which then keeps the file's flows)."""
    copy = template if in_place else "ft17_run"
    if not in_place:
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{template}"')
    args = [sys.executable, __file__, "--admin-url", admin_url, "--child", str(path),
            "--child-db", copy]
    if timeout_ms is not None:
        args += ["--statement-timeout-ms", str(timeout_ms)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"child failed ({status}): {out}")
    r = json.loads(out.strip().splitlines()[-1])
    r.setdefault("rss_mb", usage.ru_maxrss / 1024)
    r["derived_total"] = sum(r["derived"].values())
    r["ledger"] = r["total"] - r["derived_total"]
    return r


def check(admin_url: str) -> None:
    """The copy's derived tables after the import equal a full rebuild of them."""
    from bench_trace import checksum
    from sqlalchemy import text

    from fundtrack.db import make_engine
    from fundtrack.derived import steps as derived

    eng = make_engine(db_url(admin_url, "ft17_run"), statement_timeout_ms=0)
    # generated ids differ between an update and a rebuild: compare what they stand for
    others = {
        "flow_rollup": "SELECT grain, count(*), sum(flows), sum(amount)::text, sum(amount_usd)::text "
                       "FROM flow_rollup GROUP BY grain ORDER BY grain",
        "flow_classification": "SELECT dimension, is_in, count(*) FROM flow_classification "
                               "GROUP BY 1, 2 ORDER BY 1, 2",
        "flow_party": "SELECT count(*), count(provider_org_id), count(receiver_org_id), "
                      "count(reporter_org_id) FROM flow_party",
        "canonical_org": "SELECT count(*) FROM canonical_org",
    }

    def snap() -> tuple[Any, dict[str, Any]]:
        got = {}
        with eng.connect() as c:
            for k, q in others.items():
                got[k] = [tuple(r) for r in c.execute(text(q))]
        return checksum(eng), got

    before = snap()
    with eng.begin() as c:
        derived.rebuild(c)
    after = snap()
    print(f"    derived tables after the import == full rebuild: {before == after}", flush=True)
    if before != after:
        print(f"      after import  {before}\n      after rebuild {after}", flush=True)
    eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:55464/postgres")
    ap.add_argument("--db", action="append", default=[], help="template database (first = floor)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--flows", type=int, default=1_200_000,
                    help="with --load: bench_trace.generate's argument (1,200,000 -> ~1.0M flows)")
    ap.add_argument("--load", metavar="DB", help="(re)create and load template DB instead")
    ap.add_argument("--from-ledger", metavar="DB",
                    help="with --load: copy DB (a generated ledger, no derived tables) instead of "
                    "generating; only the derived rebuild runs")
    ap.add_argument("--register-orgs", action="store_true",
                    help="with --load: a registry row for every organisation the ledger names, "
                    "before the rebuild (as imports leave it; the generator registers 6)")
    ap.add_argument("--stream-parts-over", type=int, default=None,
                    help="with --load: attribution.STREAM_PARTS_OVER for the rebuild (0: the "
                    "parts always streamed)")
    ap.add_argument("--ledger-only", action="store_true",
                    help="with --load: generate the ledger only, no derived rebuild")
    ap.add_argument("--rss-limit-mb", type=int, default=12_000)
    ap.add_argument("--statement-timeout-ms", type=int, default=None,
                    help="for the import (default: the CLI's, FUNDTRACK_STATEMENT_TIMEOUT_MS)")
    ap.add_argument("--shape", choices=("mixed", "ngo"), default="mixed",
                    help="the file: mixed (agencies paid by pooled funds, and NGOs) or NGOs only")
    ap.add_argument("--check", action="store_true",
                    help="after each database's last run: derived tables == a full rebuild")
    ap.add_argument("--in-place", metavar="DB", action="append", default=[],
                    help="a --db to import into directly, not a copy (10M: a copy is ~25 GB "
                    "of disk); each run imports its own file (new identifiers), so the "
                    "database grows by 500 flows a run and --check skips it")
    ap.add_argument("--child", metavar="FILE", help=argparse.SUPPRESS)
    ap.add_argument("--child-db", default="ft17_run", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(db_url(a.admin_url, a.child_db), a.child, a.statement_timeout_ms)
    if a.stream_parts_over is not None:
        from fundtrack.derived.trail import attribution
        attribution.STREAM_PARTS_OVER = a.stream_parts_over
    if a.load:
        return load(a.admin_url, a.load, a.flows, a.rss_limit_mb, a.from_ledger, a.register_orgs,
                    a.ledger_only)
    print("load average before:", " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    found: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "bench500.xml"
        write_file(path, "b17", shape=a.shape)
        print(f"file: {a.shape}, {path.stat().st_size:,} bytes", flush=True)
        for db in a.db:
            found[db] = []
            with psycopg.connect(db_url(a.admin_url, db)) as c:
                n = c.execute("SELECT count(*) FROM flow WHERE superseded_by IS NULL").fetchone()[0]
            print(f"== {db}: {n:,} current flows", flush=True)
            for i in range(a.runs):
                run_path = path
                if db in a.in_place:  # new identifiers each run: a new file, not a re-import
                    run_path = Path(work) / f"bench500-{db}-{i}.xml"
                    write_file(run_path, f"p{time.time_ns()}", shape=a.shape)
                r = one_run(a.admin_url, db, run_path, a.statement_timeout_ms, db in a.in_place)
                found[db].append(r)
                steps = ", ".join(f"{k} {v:.2f}" for k, v in r["derived"].items())
                print(f"  run {i + 1}: {r['outcome']}; total {r['total']:.2f} s = ledger write "
                      f"{r['ledger']:.2f} + derived {r['derived_total']:.2f} ({steps}); peak RSS "
                      f"{r['rss_mb']:.0f} MB; CPU client {r['cpu']:.2f} s, PostgreSQL "
                      f"{r['backend_cpu']:.2f} s", flush=True)
            if a.check and db not in a.in_place:
                check(a.admin_url)
    print("load average after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    floor = found[a.db[0]]

    def med(rs: list[dict[str, Any]], key: str, step: str | None = None) -> float:
        return statistics.median(r["derived"].get(step, 0.0) if step else r[key] for r in rs)

    print(f"\nmedians of {a.runs} runs; ratio = this database / {a.db[0]} (same run)")
    names = list(floor[0]["derived"])
    for db, rs in found.items():
        parts = [f"ledger write {med(rs, 'ledger'):.2f} s"]
        parts += [f"{s} {med(rs, '', s):.2f} s" for s in names]
        print(f"{db}: total {med(rs, 'total'):.2f} s "
              f"({med(rs, 'total') / med(floor, 'total'):.1f}x), derived "
              f"{med(rs, 'derived_total'):.2f} s "
              f"({med(rs, 'derived_total') / med(floor, 'derived_total'):.1f}x); "
              + ", ".join(parts)
              + f"; peak RSS {max(r['rss_mb'] for r in rs):.0f} MB; CPU client "
              f"{med(rs, 'cpu'):.2f} s, PostgreSQL {med(rs, 'backend_cpu'):.2f} s")


if __name__ == "__main__":
    main()
