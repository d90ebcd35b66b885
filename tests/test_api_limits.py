"""Limits refuse abusive queries with messages naming the limit; the server keeps answering."""

from __future__ import annotations

import pytest

from fundtrack.api import limits
from fundtrack.api.testing import Api


@pytest.fixture(scope="module")
def api(loaded_url: str) -> Api:
    return Api(loaded_url)


def _alive(api: Api) -> None:
    assert api.query("{ flows { totalCount } }")["flows"]["totalCount"] > 0


def test_too_deep(api: Api) -> None:
    ok = "{ flows { edges { node { activity { reportingOrg { id } } } } } }"
    assert "errors" not in api.raw(ok)
    chain = "{ flows { edges { node { " + "provider { organization { " * 6 + "id" \
        + " } }" * 6 + " } } } }"
    msg = api.error(chain)
    assert f"maximum operation depth of {limits.MAX_DEPTH}" in msg
    _alive(api)


def test_too_many_aliases(api: Api) -> None:
    q = "{ " + " ".join(f"a{i}: flows(first: 1) {{ totalCount }}"
                        for i in range(limits.MAX_ALIASES + 1)) + " }"
    msg = api.error(q)
    assert f"{limits.MAX_ALIASES + 1} aliases found. Allowed: {limits.MAX_ALIASES}" in msg
    _alive(api)


def test_too_many_tokens(api: Api) -> None:
    q = "{ flows { nodes { " + "id " * (limits.MAX_TOKENS + 10) + "} } }"
    msg = api.error(q)
    assert f"more than {limits.MAX_TOKENS} tokens" in msg
    _alive(api)


def test_too_wide(api: Api) -> None:
    sel = " ".join(["nodes { id amount currency valueDate kind provider { ref name } }"] * 60)
    msg = api.error("{ flows(first: 1) { " + sel + " } }")
    assert f"width limit of {limits.MAX_FIELDS}" in msg
    _alive(api)


def test_too_costly(api: Api) -> None:
    body = ("nodes { id amount currency valueDate provider { ref name organization { name } } "
            "receiver { ref name } activity { title sectors { code } policyMarkers { code } } }")
    q = "{ a: flows(first: 500) { " + body + " } b: flows(first: 500) { " + body + " } }"
    msg = api.error(q)
    assert f"cost limit of {limits.MAX_COST}" in msg
    # the same cost through a variable page size
    q2 = "query($n: Int) { a: flows(first: $n) { " + body + " } b: flows(first: $n) { " \
        + body + " } }"
    assert f"cost limit of {limits.MAX_COST}" in api.error(q2, {"n": 500})
    assert "errors" not in api.raw(q2, {"n": 10})
    _alive(api)


def test_no_batching_and_switchable_introspection_and_graphiql(loaded_url: str,
                                                                api: Api) -> None:
    r = api.post([{"query": "{ flows { totalCount } }"}] * 2)
    assert r.status_code == 400
    assert "__schema" in api.query("{ __schema { queryType { name } } }")
    assert api.get("/graphql", headers={"Accept": "text/html"}).status_code == 200
    closed = Api(loaded_url, introspection=False, graphiql=False)
    assert "introspection" in closed.error("{ __schema { queryType { name } } }").lower()
    assert closed.get("/graphql", headers={"Accept": "text/html"}).status_code != 200
    _alive(closed)


def test_unexpected_errors_are_masked_outside_debug(loaded_url: str, monkeypatch) -> None:
    from fundtrack.api import aggregate

    def boom(*_a, **_k):
        raise RuntimeError("secret detail /etc/passwd")

    monkeypatch.setattr(aggregate, "aggregate_statement", boom)
    q = "{ flowsAggregate { count } }"
    masked = Api(loaded_url).error(q)
    assert "secret" not in masked and "Internal error" in masked
    assert "secret detail" in Api(loaded_url, debug=True).error(q)
