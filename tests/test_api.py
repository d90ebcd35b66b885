"""The GraphQL API through the real ASGI app, on the shared IATI files (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from sqlalchemy import select

from fundtrack import models as m
from fundtrack.api.testing import Api


@pytest.fixture(scope="module")
def api(loaded_url: str) -> Api:
    return Api(loaded_url)


@pytest.fixture(scope="module")
def flow_rows(loaded_engine):
    """Current flows read straight from the tables, to check the API against."""
    with loaded_engine.connect() as c:
        return list(c.execute(select(m.Flow.__table__).where(
            m.Flow.superseded_by.is_(None))).mappings())


def test_counts_and_aggregate_by_kind_and_currency(api: Api, loaded_engine, flow_rows) -> None:
    data = api.query("""{ activities { totalCount } flows { totalCount }
        organizations { totalCount }
        flowsAggregate(groupBy: [KIND, CURRENCY]) { groups { kind currency count sum } } }""")
    with loaded_engine.connect() as c:
        n_act = len(c.execute(select(m.Activity.id).where(
            m.Activity.superseded_by.is_(None))).all())
        n_org = len(c.execute(select(m.Organisation.id)).all())
    assert data["activities"]["totalCount"] == n_act > 2000
    assert data["flows"]["totalCount"] == len(flow_rows) > 10000
    assert data["organizations"]["totalCount"] == n_org

    expect_count: Counter[tuple[str, str | None]] = Counter()
    expect_sum: dict[tuple[str, str | None], Decimal] = defaultdict(Decimal)
    for r in flow_rows:
        key = (r["kind"].name, r["currency"])
        expect_count[key] += 1
        expect_sum[key] += r["amount"]
    groups = data["flowsAggregate"]["groups"]
    got = {(g["kind"], g["currency"]): g for g in groups}
    assert len(groups) == len(got) == len(expect_count)
    for key, n in expect_count.items():
        assert got[key]["count"] == n
        assert Decimal(got[key]["sum"]) == expect_sum[key]
        assert "E" not in got[key]["sum"]  # fixed point, never exponent notation
    # a known exact total from the shared files, to the last digit
    usd_disb = got[("DISBURSEMENT", "USD")]
    assert usd_disb["sum"] == format(expect_sum[("DISBURSEMENT", "USD")], "f")
