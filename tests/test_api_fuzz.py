"""A bounded schemathesis run in GraphQL mode against the real ASGI app: no server error.

Schemathesis reads the schema by introspection and, for every root query and mutation
field, sends queries built by hypothesis-graphql (random arguments, filters, page sizes,
ids, dates, decimals, including hostile values for our custom scalars). "No server error"
means no 5xx and, because errors are masked outside debug mode, no masked internal error
in a 200 response either: a client may get a clear refusal, never a crash.
Bounded: ``FUZZ_EXAMPLES`` examples per root field (about 30 s on two cores).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from fundtrack.api.testing import Api

FUZZ_EXAMPLES = int(os.environ.get("FUNDTRACK_FUZZ_EXAMPLES", "12"))
MASKED = "Internal error"
#: Root fields with a known server error found by this run, owned by other modules; each
#: is reported to its owner and must be removed from here when fixed.
KNOWN_BROKEN: set[str] = set()

_dates = st.one_of(st.dates().map(str), st.sampled_from(["2020-02-30", "", "0000-01-01",
                                                         "2020-01-01T00:00:00", "yesterday"]))
schemathesis.graphql.scalar("Date", _dates.map(nodes.String))
schemathesis.graphql.scalar("DateTime", st.one_of(
    st.datetimes().map(lambda d: d.isoformat()), st.just("not a time")).map(nodes.String))
schemathesis.graphql.scalar("Decimal", st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["NaN", "Infinity", "-0", "1e999999", "12.50", "abc", ""]),
).map(nodes.String))
schemathesis.graphql.scalar("JSON", st.sampled_from(["{}", "[]", "null"]).map(nodes.String))
schemathesis.graphql.scalar("Upload", st.just(nodes.Null))


@pytest.fixture(scope="module")
def graphql_schema(loaded_url: str):
    return schemathesis.graphql.from_asgi("/graphql", Api(loaded_url).app)


def _check(case) -> None:  # noqa: ANN001
    response = case.call(headers={"GraphQL-Preflight": "1"})
    assert response.status_code < 500, f"{case.body}\n-> {response.text[:1000]}"
    body = response.json()
    masked = [e for e in body.get("errors") or [] if MASKED in e.get("message", "")]
    assert not masked, f"{case.body}\n-> {masked}"


def test_no_server_error(graphql_schema) -> None:  # noqa: ANN001
    # Hypothesis driven by hand (one run per root field): schemathesis' pytest plugin
    # (``from_fixture``) does not work with pytest 9.
    operations = [r.ok() for r in graphql_schema.get_all_operations()]
    assert len(operations) > 15
    failures = []
    for op in operations:
        if op.label in KNOWN_BROKEN:
            continue
        run = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
                       suppress_health_check=list(HealthCheck), database=None,
                       )(given(case=op.as_strategy())(_check))
        try:
            run()
        except AssertionError as e:  # keep going: report every failing root field at once
            failures.append(f"{op.label}: {str(e)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_nul_in_a_filter_is_a_clear_error(loaded_url: str) -> None:
    """Found by the run above on PostgreSQL (which refuses NUL in text): was a server error."""
    api = Api(loaded_url)
    msg = api.error('{ flowsAggregate(where: {aidType: {_nin: ["\\u0000"]}}) { count } }')
    assert "NUL character" in msg
    assert api.query("{ flows { totalCount } }")["flows"]["totalCount"] > 0
