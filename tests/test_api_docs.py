"""Every GraphQL query in docs/api.md runs without errors on the shared IATI files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fundtrack.api.testing import Api

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
QUERIES = re.findall(r"```graphql\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def api(loaded_url: str) -> Api:
    return Api(loaded_url)


def test_the_doc_has_watchdog_queries() -> None:
    assert len(QUERIES) >= 8


@pytest.mark.parametrize("query", QUERIES, ids=[q.split("{")[1].strip()[:30] for q in QUERIES])
def test_doc_query_runs(api: Api, query: str) -> None:
    data = api.query(query)
    assert data and all(v is not None for v in data.values())


def test_spain_gender_principal_2020_by_country(api: Api, loaded_engine) -> None:
    """The headline example, against a hand-written SQL count."""
    from sqlalchemy import text

    q = next(x for x in QUERIES if "ES-DIR3-EA0035768" in x and "genderSignificance: {_eq: 2}" in x)
    got = api.query(q)["flowsAggregate"]
    with loaded_engine.connect() as c:
        n = c.execute(text(
            "SELECT count(*) FROM flow f WHERE f.superseded_by IS NULL "
            "AND f.reporting_org_ref = 'ES-DIR3-EA0035768' AND f.kind = 'DISBURSEMENT' "
            "AND f.value_date BETWEEN '2020-01-01' AND '2020-12-31' AND EXISTS ("
            "SELECT 1 FROM policy_marker p WHERE p.activity_id = f.activity_id "
            "AND p.vocabulary = '1' AND p.code = '1' AND p.significance = '2')")).scalar_one()
    assert got["count"] == n > 0
