"""Page statements built once per shape (fundtrack/api/paging.py): a reused statement must
still give each request its own window, order, columns and filter values."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text

from fundtrack.api.testing import Api
from fundtrack.query.ids import decode_id

PAGE = """query($n: Int, $after: String, $order: [FlowOrder!]) {
  flows(first: $n, after: $after, orderBy: $order) {
    edges { cursor node { id } } } }"""


def _pks(edges: list[dict]) -> list[int]:
    return [int(decode_id(e["node"]["id"])[1]) for e in edges]


def test_cached_page_statement_follows_window_and_order(loaded_url: str) -> None:
    api = Api(loaded_url)
    with api.app.state.engine.connect() as c:
        by_id = [r[0] for r in c.execute(text(
            "SELECT id FROM flow WHERE superseded_by IS NULL ORDER BY id LIMIT 7"))]
        by_amount = [r[0] for r in c.execute(text(
            "SELECT id FROM flow WHERE superseded_by IS NULL "
            "ORDER BY CAST(amount AS NUMERIC) DESC, id DESC LIMIT 4"))]
    first = api.query(PAGE, {"n": 3})["flows"]["edges"]
    assert _pks(first) == by_id[:3]
    # Same shape, other offset and limit: the cached statement gets new parameters.
    after = api.query(PAGE, {"n": 4, "after": first[2]["cursor"]})["flows"]["edges"]
    assert _pks(after) == by_id[3:7]
    order = [{"field": "AMOUNT", "direction": "DESC"}]
    assert _pks(api.query(PAGE, {"n": 4, "order": order})["flows"]["edges"]) == by_amount
    assert _pks(api.query(PAGE, {"n": 3})["flows"]["edges"]) == by_id[:3]


def test_same_shape_other_selection_reads_its_columns(loaded_url: str) -> None:
    api = Api(loaded_url)
    with api.app.state.engine.connect() as c:
        pk, amount, currency = c.execute(text(
            "SELECT id, amount, currency FROM flow WHERE superseded_by IS NULL "
            "ORDER BY id LIMIT 1")).one()
    api.query("{ flows(first: 1) { nodes { id } } }")
    node = api.query("{ flows(first: 1) { nodes { id amount currency } } }")["flows"]["nodes"][0]
    assert int(decode_id(node["id"])[1]) == pk
    assert (Decimal(node["amount"]), node["currency"]) == (Decimal(str(amount)), currency)


def test_filter_values_are_never_cached(loaded_url: str) -> None:
    api = Api(loaded_url)
    query = """query($c: String!) { flows(first: 500, where: {currency: {_eq: $c}}) {
      nodes { currency } } }"""
    with api.app.state.engine.connect() as c:
        counts = dict(c.execute(text(
            "SELECT currency, COUNT(*) FROM flow WHERE superseded_by IS NULL "
            "AND currency IN ('USD', 'EUR') GROUP BY currency")).all())
    for cur in ("USD", "EUR", "USD"):
        nodes = api.query(query, {"c": cur})["flows"]["nodes"]
        assert {n["currency"] for n in nodes} == {cur}
        assert len(nodes) == min(counts[cur], 500)
