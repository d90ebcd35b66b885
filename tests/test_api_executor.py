"""The fast executor (fundtrack/api/executor.py) answers exactly as graphql-core does.

Every query runs twice through the real ASGI app: with the fast path, and with it switched
off (plain graphql-core). The answers, errors included, must be identical, and the fast
path must actually be taken (graphql-core's per-field ``execute_field`` barely runs).
"""

from __future__ import annotations

from typing import Any

import pytest
import strawberry

from fundtrack.api import executor
from fundtrack.api.executor import MISSING, FastExecutor, fast
from fundtrack.api.testing import Api

PAGE = """{ flows(first: 200) { totalCount nodes { __typename id kind amount currency valueDate
  amountUsd usdRate earmarking current
  provider { ref name activityId organization { __typename id ref name type isPooledFund } }
  receiver { ref name organization { name } }
  reportingOrg { ref name }
  activity { iatiIdentifier title reportingOrgRef humanitarian startPlanned
             reportingOrg { ref } sectors { vocabulary code percentage }
             policyMarkers { vocabulary code significance } genderSignificance
             recipientCountries { code percentage } recipientRegions { code }
             participatingOrgs { ref name role } batch { fileName counts } } } } }"""

QUERIES = [
    PAGE,
    """{ activities(first: 120, orderBy: [{field: TITLE, direction: DESC}]) { edges { cursor node {
         ... on Activity { id title } ...A } } pageInfo { hasNextPage endCursor } } }
       fragment A on Activity { sectors { code } x: genderSignificance description }""",
    """{ flowsAggregate(groupBy: [YEAR, RECIPIENT_COUNTRY]) { count
         groups { year recipientCountry count sum sumUsd countWithoutUsd currencies
                  firstDate lastDate kind currency } } }""",
    """{ flowsAggregate(groupBy: [KIND, CURRENCY, GENDER_SIGNIFICANCE]) {
         groups { kind currency genderSignificance count sum sumUsd } } }""",
    """{ organizations(first: 100) { nodes { id ref name type country isWomensRightsOrg
         isPooledFund defaultCurrency } } }""",
    """{ importBatches(first: 5) { nodes { id fileName status counts
         issues { severity code location message } } } }""",
]


def _run(api: Api, query: str, monkeypatch: pytest.MonkeyPatch, *, fast_path: bool,
         ) -> tuple[dict[str, Any], int]:
    calls = 0
    original = FastExecutor.execute_field

    def counting(self: Any, *args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, *args, **kw)

    with monkeypatch.context() as mp:
        mp.setattr(FastExecutor, "execute_field", counting)
        if not fast_path:
            mp.setattr(FastExecutor, "_planned", lambda *_a: (None, None, None))
        out = api.raw(query)
    return out, calls


@pytest.mark.parametrize("query", QUERIES)
def test_same_answer_as_graphql_core(loaded_url: str, query: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(loaded_url)
    plain, plain_calls = _run(api, query, monkeypatch, fast_path=False)
    quick, quick_calls = _run(api, query, monkeypatch, fast_path=True)
    assert "errors" not in plain, plain
    assert quick == plain
    # Only the connection/root fields go through graphql-core's per-field path.
    assert quick_calls <= 12, (quick_calls, plain_calls)
    assert plain_calls > 2 * quick_calls


def test_node_lookup_without_prefetch_uses_resolvers(loaded_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``node(id:)`` loads nothing ahead: relations are not cached, so their resolvers run."""
    api = Api(loaded_url)
    first = api.query("{ flows(first: 3) { nodes { id } } }")["flows"]["nodes"]
    ids = ", ".join(f'"{n["id"]}"' for n in first)
    q = "{ nodes(ids: [IDS]) { ... on Flow { id amount activity { title sectors { code } } } } }" \
        .replace("IDS", ids)
    plain, _ = _run(api, q, monkeypatch, fast_path=False)
    quick, _ = _run(api, q, monkeypatch, fast_path=True)
    assert "errors" not in plain
    assert quick == plain and len(quick["data"]["nodes"]) == 3


# A schema with the awkward cases: nulls in non-null fields, bad scalars, fast functions
# that decline, interfaces. Errors must carry the same message and path.
@strawberry.interface
class Named:
    name: str | None


@strawberry.type
class Item(Named):
    n: int | None
    tags: list[str]

    @strawberry.field(metadata=fast(lambda s, _c: MISSING if s.name == "b" else (s.name or "").upper()))
    def upper(self) -> str:
        return (self.name or "").upper()


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(name="a", n=1, tags=["x"]), Item(name="b", n=2**40, tags=[]),
                Item(name=None, n=None, tags=["y", "z"])]

    @strawberry.field
    def strict(self) -> list[Item]:
        return [Item(name="c", n=3, tags=None)]  # type: ignore[arg-type]

    @strawberry.field
    def named(self) -> list[Named]:
        return [Item(name="d", n=4, tags=[])]


@pytest.mark.parametrize("query", [
    "{ items { name n tags upper __typename } }",
    "{ items { name upper } }",
    "{ items { name n } }",
    "{ items { name tags } strict { name } }",
    "{ strict { tags } }",
    "{ named { name ... on Item { n upper } __typename } }",
    "{ a: items { name @include(if: false) upper } b: items { tags @skip(if: true) name } }",
])
def test_errors_and_edge_cases_match(query: str) -> None:
    fast_schema = strawberry.Schema(query=Query, execution_context_class=FastExecutor)
    plain_schema = strawberry.Schema(query=Query)
    quick, plain = fast_schema.execute_sync(query), plain_schema.execute_sync(query)
    assert quick.data == plain.data
    assert [(e.message, e.path) for e in quick.errors or []] == \
        [(e.message, e.path) for e in plain.errors or []]


def test_plain_fields_are_compiled() -> None:
    """The simple case really takes the fast path (a plan exists for Item)."""
    seen: list[Any] = []
    original = FastExecutor._compile

    def spy(self: Any, parent: Any, grouped: Any) -> Any:
        plan = original(self, parent, grouped)
        seen.append((parent.name, plan is not None))
        return plan

    schema = strawberry.Schema(query=Query, execution_context_class=FastExecutor)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FastExecutor, "_compile", spy)
        assert schema.execute_sync("{ items { name upper } }").errors is None
    assert ("Item", True) in seen
    assert executor.FAST == "fundtrack.fast"
