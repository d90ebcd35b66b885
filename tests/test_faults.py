"""Faults (issue 8, item 2): a killed import, racing uploads, a database restart.

- ``kill -9`` of ``fundtrack import`` while its batch transaction is writing (PostgreSQL;
  the transaction is seen in ``pg_stat_activity``): nothing of it stays, and importing the
  file again gives exactly the state of one clean import into a fresh database.
- Two uploads of the same file at the same time, as two concurrent HTTP uploads to one
  app: one batch is applied, the other answers ``unchanged``; the ledger equals one
  import. Both databases. (The same race on ``import_file`` in threads is
  ``tests/test_ingest.py::test_concurrent_uploads_of_the_same_file_apply_once``.)
- The database stopped and started again under a running app (PostgreSQL): a private
  throwaway cluster in a temp dir on a free port (the shared server is never touched);
  requests while it is down get a short, masked error; an upload cut off by the stop
  writes nothing; once it is back the same app object answers again, no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from fundtrack.db import make_engine, normalise_url
from fundtrack.db.migrate import upgrade
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
LEDGER = [m.ImportBatch, m.Activity, m.Flow, m.Budget, m.Organisation, m.ActivitySector,
          m.BatchIssue]
IMPORT = """mutation($file: Upload!) { importReport(input: {file: $file}) {
  status message errors { code message } batch { id } } }"""


def write_report(path: Path, n_activities: int, org: str = "XX-BIG") -> Path:
    """A generated IATI file: ``n_activities`` activities, two transactions and a budget each."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<iati-activities version="2.03">\n')
        for i in range(n_activities):
            fh.write(
                f'<iati-activity default-currency="EUR"><iati-identifier>{org}-{i}</iati-identifier>'
                f'<reporting-org ref="{org}" type="10"><narrative>Big donor</narrative></reporting-org>'
                f"<title><narrative>Activity {i}</narrative></title>"
                f'<sector code="15170" vocabulary="1"/>'
                f'<budget type="1"><period-start iso-date="2020-01-01"/><period-end iso-date="2020-12-31"/>'
                f'<value value-date="2020-01-01">{1000 + i}.25</value></budget>'
                f'<transaction><transaction-type code="2"/><transaction-date iso-date="2020-02-03"/>'
                f'<value value-date="2020-02-03">{500 + i}.10</value>'
                f'<receiver-org ref="XX-NGO-{i % 97}"><narrative>NGO {i % 97}</narrative></receiver-org>'
                f"</transaction>"
                f'<transaction><transaction-type code="3"/><transaction-date iso-date="2020-03-04"/>'
                f'<value value-date="2020-03-04">{250 + i}.05</value>'
                f'<receiver-org ref="XX-NGO-{i % 97}"><narrative>NGO {i % 97}</narrative></receiver-org>'
                f"</transaction></iati-activity>\n")
        fh.write("</iati-activities>\n")
    return path


def state(engine: Engine) -> dict[str, Any]:
    """Row counts of the ledger tables and exact sums of current money, ids left out."""
    with engine.connect() as c:
        out: dict[str, Any] = {t.__tablename__: c.execute(select(func.count()).select_from(t))
                               .scalar_one() for t in LEDGER}
        out["applied_batches"] = c.execute(select(func.count()).select_from(m.ImportBatch).where(
            m.ImportBatch.status == "applied")).scalar_one()
        out["flow_sum"] = c.execute(select(money_sum(m.Flow.amount)).where(
            m.Flow.superseded_by.is_(None))).scalar_one()
        out["flow_usd_sum"] = c.execute(select(money_sum(m.Flow.amount_usd)).where(
            m.Flow.superseded_by.is_(None))).scalar_one()
        out["budget_sum"] = c.execute(select(money_sum(m.Budget.amount)).where(
            m.Budget.superseded_by.is_(None))).scalar_one()
    return out


def needs_postgres(db_kind: str) -> None:
    if db_kind != "postgresql":
        pytest.skip("PostgreSQL only: this fault is about a server process and its "
                    "transactions (run with FUNDTRACK_TEST_DATABASE_URL=postgresql://...)")


# -- kill -9 mid-import ---------------------------------------------------------------------


def _writing_backend(admin: Engine, dbname: str) -> int | None:
    """pid of a backend of ``dbname`` inside a transaction that has started COPYing rows."""
    with admin.connect() as c:
        return c.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = :db AND xact_start IS NOT NULL "
            "AND query LIKE 'COPY %' AND pid <> pg_backend_pid() LIMIT 1"), {"db": dbname}).scalar()


def test_kill_9_mid_import_leaves_nothing_and_rerun_converges(db_kind: str, db_url: str,
                                                               engine: Engine, db_factory: Any,
                                                               tmp_path: Path) -> None:
    needs_postgres(db_kind)
    big = write_report(tmp_path / "big.xml", 3_000)
    seed = write_report(tmp_path / "seed.xml", 5, org="XX-SEED")
    assert import_file(engine, seed).status == "applied"
    before = state(engine)
    admin = create_engine(normalise_url(db_url).rsplit("/", 1)[0] + "/postgres",
                          isolation_level="AUTOCOMMIT")
    dbname = db_url.rsplit("/", 1)[1]
    env = {**os.environ, "FUNDTRACK_DATABASE_URL": db_url}
    proc = subprocess.Popen([sys.executable, "-m", "fundtrack.cli", "import", "--quiet", str(big)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        backend = None
        while backend is None and proc.poll() is None and time.monotonic() < deadline:
            backend = _writing_backend(admin, dbname)
            time.sleep(0.05)
        assert backend is not None, f"import never reached COPY: {proc.communicate()[0]!r}"
        time.sleep(0.3)  # let it write a few thousand rows more
        assert proc.poll() is None, "the import finished before it could be killed; make it bigger"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the server notices the dead client and rolls its transaction back
    deadline = time.monotonic() + 30
    with admin.connect() as c:
        while c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                        {"p": backend}).scalar() and time.monotonic() < deadline:
            time.sleep(0.1)
    admin.dispose()
    assert state(engine) == before  # no batch row, no flow, no organisation from it

    rerun = import_file(engine, big)
    assert rerun.status == "applied", rerun.summary()
    assert rerun.counts["flows"] == 6_000 and rerun.counts["activities"] == 3_000
    clean_url = db_factory.new_url()
    try:
        clean = make_engine(clean_url)
        assert import_file(clean, seed).status == "applied"
        assert import_file(clean, big).status == "applied"
        assert state(engine) == state(clean)
        clean.dispose()
    finally:
        db_factory.drop(clean_url)


# -- two uploads of the same file at once -----------------------------------------------------


def test_concurrent_http_uploads_of_the_same_file_apply_once(db_url: str, engine: Engine,
                                                             tmp_path: Path) -> None:
    data = write_report(tmp_path / "same.xml", 300).read_bytes()
    api = Api(db_url)
    _, token = create_token(engine, "admin")
    ops = json.dumps({"query": IMPORT, "variables": {"file": None}})

    async def both() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     timeout=120) as c:
            def post() -> Any:
                return c.post("/graphql", headers={"GraphQL-Preflight": "1",
                                                   "Authorization": f"Bearer {token}"},
                              data={"operations": ops, "map": json.dumps({"0": ["variables.file"]})},
                              files={"0": ("same.xml", data, "application/xml")})
            return list(await asyncio.gather(post(), post()))

    outs = [r.json()["data"]["importReport"] for r in asyncio.run(both())]
    assert sorted(o["status"] for o in outs) == ["applied", "unchanged"], outs
    assert outs[0]["batch"]["id"] == outs[1]["batch"]["id"]
    got = state(engine)
    assert got["import_batch"] == 1 and got["flow"] == 600
    assert api.query("{ flows { totalCount } }")["flows"]["totalCount"] == 600


# -- the database restarted under a running app -----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    """A throwaway PostgreSQL cluster (initdb in a temp dir, own port), run as ``postgres``."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="ft_faults_pg_"))
        self.data = self.base / "data"
        self.port = _free_port()
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/ft_faults"
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("CREATE DATABASE ft_faults"))
        admin.dispose()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(PG_BIN / tool), *args], check=True, capture_output=True,
                       timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def cluster(db_kind: str) -> Iterator[PrivateCluster]:
    needs_postgres(db_kind)
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL server binaries in {PG_BIN} to start a private cluster")
    c = PrivateCluster()
    yield c
    c.remove()


def test_database_restart_gives_clean_errors_then_recovers(cluster: PrivateCluster,
                                                           tmp_path: Path) -> None:
    upgrade(cluster.url)
    engine = make_engine(cluster.url)
    _, token = create_token(engine, "admin")
    engine.dispose()
    api = Api(cluster.url)
    q = "{ flows { totalCount } }"
    seed = write_report(tmp_path / "seed.xml", 5, org="XX-SEED")
    big = write_report(tmp_path / "big.xml", 3_000)

    def upload(path: Path) -> httpx.Response:
        ops = json.dumps({"query": IMPORT, "variables": {"file": None}})
        with path.open("rb") as fh:
            return api.post(None, headers={"GraphQL-Preflight": "1",
                                           "Authorization": f"Bearer {token}"},
                            data={"operations": ops, "map": json.dumps({"0": ["variables.file"]})},
                            files={"0": (path.name, fh, "application/xml")})

    assert upload(seed).json()["data"]["importReport"]["status"] == "applied"
    assert api.query(q)["flows"]["totalCount"] == 10

    # an upload in flight when the server stops: a clean error, nothing written
    outcome: dict[str, httpx.Response] = {}
    t = threading.Thread(target=lambda: outcome.setdefault("r", upload(big)))
    t.start()
    admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/postgres",
                          isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + 60
    while _writing_backend(admin, "ft_faults") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    admin.dispose()
    cluster.stop("fast")
    t.join(120)
    cut = outcome["r"]
    assert cut.status_code == 200
    errors = cut.json()["errors"]
    assert errors[0]["message"] == "The database is unavailable just now; try again shortly."
    assert "Traceback" not in cut.text and "psycopg" not in cut.text and "5432" not in cut.text

    # while it is down: short masked errors, right status codes, no stack traces
    down = api.post({"query": q})
    assert down.status_code == 200
    assert down.json()["errors"][0]["message"] == \
        "The database is unavailable just now; try again shortly."
    assert "psycopg" not in down.text and str(cluster.port) not in down.text
    authed = api.post({"query": q}, headers={"Authorization": f"Bearer {token}"})
    assert authed.status_code == 503 and "unavailable" in authed.text
    assert api.get("/livez").status_code == 200  # the process itself is alive
    health = api.get("/healthz")  # but it could not serve a page: not ready
    assert health.status_code == 503 and "database" in health.text

    # back up: the same app object answers again, and the cut upload left nothing
    cluster.start()
    assert api.query(q)["flows"]["totalCount"] == 10
    assert api.query("{ importBatches { totalCount } }")["importBatches"]["totalCount"] == 1
    again = upload(big).json()["data"]["importReport"]
    assert again["status"] == "applied", again
    assert api.query(q, token=token)["flows"]["totalCount"] == 10 + 6_000
