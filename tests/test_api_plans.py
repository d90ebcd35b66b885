"""Completion plans shared across requests (fundtrack/api/execution/plans.py ``_compiled``):
a plan is reused only for the same parsed selection and the same variables."""

from __future__ import annotations

from fundtrack.api.testing import Api

# The flows' own fields do not change with $s; only the nested provider's do.
SKIP = """query($s: Boolean!) { flows(first: 2) { nodes { id
  provider { ... @include(if: $s) { ref } name } } } }"""


def test_cached_plan_follows_skip_and_include_variables(loaded_url: str) -> None:
    api = Api(loaded_url, fast_executor=True)
    for s in (False, True, False, True):
        nodes = api.query(SKIP, {"s": s})["flows"]["nodes"]
        assert len(nodes) == 2
        for n in nodes:
            assert set(n["provider"]) == ({"ref", "name"} if s else {"name"})


def test_cached_plan_per_selection(loaded_url: str) -> None:
    api = Api(loaded_url, fast_executor=True)
    small = api.query("{ flows(first: 2) { nodes { id } } }")["flows"]["nodes"]
    big = api.query("{ flows(first: 2) { nodes { id kind } } }")["flows"]["nodes"]
    again = api.query("{ flows(first: 2) { nodes { id } } }")["flows"]["nodes"]
    assert [set(n) for n in small] == [{"id"}] * 2 == [set(n) for n in again]
    assert [set(n) for n in big] == [{"id", "kind"}] * 2
    assert [n["id"] for n in big] == [n["id"] for n in small]
