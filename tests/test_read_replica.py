"""``FUNDTRACK_READ_DATABASE_URL``: queries read the replica, mutations write and read the primary.

The "replica" here is a second database of the same kind (a copy that replication has not
caught up with yet): what a query answers shows which database it read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from fundtrack.config import Settings
from fundtrack.db import make_engine
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from tests.synthetic_iati import write_batch

COUNT = "{ flows(first: 1) { totalCount } flowsAggregate(groupBy: [CURRENCY]) { groups { currency count sum } } }"
IMPORT = """mutation($file: Upload!) { importReport(input: {file: $file}) {
  status batch { id issues { code } } } }"""


@pytest.fixture
def replica_url(db_factory) -> Iterator[str]:
    url = db_factory.new_url()
    yield url
    db_factory.drop(url)


def _flows(url: str) -> int:
    eng = make_engine(url)
    with eng.connect() as c:
        n = c.execute(select(func.count()).select_from(m.Flow)).scalar_one()
    eng.dispose()
    return n


def test_settings_read_the_replica_url_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("FUNDTRACK_READ_DATABASE_URL", "postgresql://replica/db")
    assert Settings().read_database_url == "postgresql://replica/db"
    monkeypatch.setenv("FUNDTRACK_READ_DATABASE_URL", "")
    assert Settings().read_database_url is None


def test_queries_read_the_replica_and_mutations_the_primary(db_url: str, replica_url: str,
                                                           tmp_path: Path) -> None:
    first, second = tmp_path / "first.xml", tmp_path / "second.xml"
    n1, sum1 = write_batch(first, 1, activities=3, per_activity=4)
    # AFN has no ECB rate (and no fixed parity): the import records a `no-usd-rate` issue.
    n2, sum2 = write_batch(second, 2, activities=2, per_activity=3, currency="AFN")
    primary = make_engine(db_url)
    assert import_file(primary, first).status == "applied"
    _, admin = create_token(primary, "admin")  # the token lives on the primary only
    primary.dispose()

    api = Api(db_url, read_database_url=replica_url)
    empty = api.query(COUNT)
    assert empty == {"flows": {"totalCount": 0}, "flowsAggregate": {"groups": []}}, \
        "a query must read the replica, which has not seen the first batch"
    assert "XX-SYN" not in api.get("/export.csv").text  # the web front reads the replica too

    ops = {"query": IMPORT, "variables": {"file": None}}
    r = api.post(None, headers={"GraphQL-Preflight": "1", "Authorization": f"Bearer {admin}"},
                 data={"operations": json.dumps(ops), "map": json.dumps({"0": ["variables.file"]})},
                 files={"0": ("second.xml", second.read_bytes(), "application/xml")})
    out = r.json()["data"]["importReport"]
    assert out["status"] == "applied"
    # batch.issues is resolved by a DataLoader: read from the primary inside a mutation.
    assert "no-usd-rate" in {i["code"] for i in out["batch"]["issues"]}
    assert _flows(db_url) == n1 + n2 and _flows(replica_url) == 0
    assert api.query(COUNT)["flows"]["totalCount"] == 0

    # Replication catches up (here: the same files applied to the replica, batch by batch).
    replica = make_engine(replica_url)
    assert import_file(replica, first).status == "applied"
    caught_up = api.query(COUNT)
    assert caught_up["flows"]["totalCount"] == n1 == 12
    assert caught_up["flowsAggregate"]["groups"] == [{"currency": "USD", "count": 12, "sum": str(sum1)}]
    assert import_file(replica, second).status == "applied"
    replica.dispose()
    groups = {g["currency"]: (g["count"], Decimal(g["sum"]))
              for g in api.query(COUNT)["flowsAggregate"]["groups"]}
    assert groups == {"USD": (12, sum1), "AFN": (6, sum2)}
    # Worked by hand: 12 x 1001 + 10 x (0+1+2) x 4 + 3 x (0+1+2+3) units and 318 cents;
    # 6 x 2001 + 10 x 1 x 3 + 2 x (0+1+2) units and 99 cents.
    assert sum1 == Decimal("12153.18") and sum2 == Decimal("12042.99")


def test_without_a_replica_everything_uses_the_primary(db_url: str, tmp_path: Path) -> None:
    f = tmp_path / "one.xml"
    n, _ = write_batch(f, 1, activities=1, per_activity=5)
    eng = make_engine(db_url)
    import_file(eng, f)
    eng.dispose()
    api = Api(db_url)
    assert api.app.state.replica is None
    assert api.query(COUNT)["flows"]["totalCount"] == n == 5
