"""The fast path (fundtrack/api/execution/) answers exactly as plain graphql-core does.

Every query runs twice through the real ASGI app: with the fast path, and with it switched
off (``FUNDTRACK_FAST_EXECUTOR=0``: strawberry's execution, relations through DataLoaders,
no look-ahead). The answers, errors included, must be identical, and the fast path must
actually be taken (graphql-core's per-field ``execute_field`` barely runs).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest
import strawberry

from fundtrack.api.execution import execution_context_class, fields, lookahead
from fundtrack.api.execution.compat import PlainExecution
from fundtrack.api.execution.fields import MISSING, fast
from fundtrack.api.execution.plans import FastExecutor
from fundtrack.api.testing import Api
from fundtrack.config import Settings

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


def _run(api: Api, query: str, monkeypatch: pytest.MonkeyPatch,
         ) -> tuple[dict[str, Any], int, int]:
    """(answer, graphql-core per-field calls, look-ahead fetches)."""
    calls = fetches = 0
    original, original_prefetch = PlainExecution.execute_field, lookahead.prefetch

    def counting(self: Any, *args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, *args, **kw)

    def counting_prefetch(*args: Any, **kw: Any) -> Any:
        nonlocal fetches
        fetches += 1
        return original_prefetch(*args, **kw)

    with monkeypatch.context() as mp:
        mp.setattr(PlainExecution, "execute_field", counting)  # FastExecutor inherits it
        mp.setattr("fundtrack.api.paging.prefetch", counting_prefetch)
        out = api.raw(query)
    return out, calls, fetches


@pytest.mark.parametrize("query", QUERIES)
def test_same_answer_as_graphql_core(loaded_url: str, query: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    plain, plain_calls, plain_fetches = _run(Api(loaded_url, fast_executor=False), query,
                                             monkeypatch)
    quick, quick_calls, _ = _run(Api(loaded_url, fast_executor=True), query, monkeypatch)
    assert "errors" not in plain, plain
    assert quick == plain
    # Only the connection/root fields go through graphql-core's per-field path.
    assert quick_calls <= 12, (quick_calls, plain_calls)
    assert plain_calls > 2 * quick_calls
    assert plain_fetches == 0  # switched off: nothing looked ahead


def test_the_switch_turns_the_whole_fast_path_off(loaded_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Off: strawberry's own execution context, no look-ahead (no narrowed page, no
    prefetch: the relations go through DataLoaders), no plan compiled."""
    assert execution_context_class(Settings(fast_executor=False)) is PlainExecution
    assert execution_context_class(Settings(fast_executor=True)) is FastExecutor
    assert issubclass(execution_context_class(Settings(fast_executor=False,
                                                       introspection=False)), PlainExecution)
    compiled = 0
    original = FastExecutor._compile

    def spy(self: Any, parent: Any, grouped: Any) -> Any:
        nonlocal compiled
        compiled += 1
        return original(self, parent, grouped)

    monkeypatch.setattr(FastExecutor, "_compile", spy)
    _, _, fetches = _run(Api(loaded_url, fast_executor=False), PAGE, monkeypatch)
    assert (compiled, fetches) == (0, 0)
    _, _, fetches = _run(Api(loaded_url, fast_executor=True), PAGE, monkeypatch)
    assert compiled > 0 and fetches == 1


def test_node_lookup_without_prefetch_uses_resolvers(loaded_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``node(id:)`` loads nothing ahead: relations are not cached, so their resolvers run."""
    api = Api(loaded_url, fast_executor=True)
    first = api.query("{ flows(first: 3) { nodes { id } } }")["flows"]["nodes"]
    ids = ", ".join(f'"{n["id"]}"' for n in first)
    q = "{ nodes(ids: [IDS]) { ... on Flow { id amount activity { title sectors { code } } } } }" \
        .replace("IDS", ids)
    plain, _, _ = _run(Api(loaded_url, fast_executor=False), q, monkeypatch)
    quick, _, _ = _run(api, q, monkeypatch)
    assert "errors" not in plain
    assert quick == plain and len(quick["data"]["nodes"]) == 3


# A schema with the awkward cases: nulls in non-null fields, bad scalars, fast functions
# that decline, interfaces. Errors must carry the same message and path.
@strawberry.interface
class Named:
    name: str | None


@strawberry.enum
class Size(Enum):
    SMALL = 1
    LARGE = 2


@strawberry.type
class Item(Named):
    n: int | None
    tags: list[str]
    size: Size | None = None

    @strawberry.field(metadata=fast(lambda s, _c: MISSING if s.name == "b" else (s.name or "").upper()))
    def upper(self) -> str:
        return (self.name or "").upper()


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(name="a", n=1, tags=["x"], size=Size.SMALL),
                Item(name="b", n=2**40, tags=[], size=Size.LARGE),
                Item(name=None, n=None, tags=["y", "z"], size=1)]  # type: ignore[arg-type]

    @strawberry.field
    def strict(self) -> list[Item]:
        return [Item(name="c", n=3, tags=None)]  # type: ignore[arg-type]

    @strawberry.field
    def wrong(self) -> list[Item]:  # an enum value the enum does not have
        return [Item(name="e", n=5, tags=[], size="HUGE")]  # type: ignore[arg-type]

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
    "{ items { size name } wrong { size } }",
    "{ wrong { name size } items { size } }",
])
def test_errors_and_edge_cases_match(query: str) -> None:
    fast_schema = strawberry.Schema(query=Query, execution_context_class=FastExecutor)
    plain_schema = strawberry.Schema(query=Query)
    for _ in range(2):  # again, with what the plans remember (enum names, plans)
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
    assert fields.FAST == "fundtrack.fast"
