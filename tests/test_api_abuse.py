"""Abuse of the API (issue 8, item 3): refused with messages naming the limit; the server
keeps answering.

Already covered elsewhere and not repeated: depth, aliases, tokens, width, cost with
literal and variable page sizes, array batching, the introspection and GraphiQL switches
and error masking (``tests/test_api_limits.py``); ``first: 501`` (``tests/test_api.py``);
a reporter uploading or reverting another organisation's report, anonymous and reporter
calls to admin mutations, unknown tokens, CSRF and the body limit
(``tests/test_api_access.py``). Added here: the edges of those limits (fragments,
``nodes(ids:)``, 32-bit overflow, introspection through ``__type`` and aliases),
reading unpublished data through ``node``/``nodes``, and more ways to use a reporter
token for another organisation.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from fundtrack.api import limits
from fundtrack.api.ids import encode_id
from fundtrack.api.paging import MAX_PAGE
from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token, revoke_token
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m

IMPORT = """mutation($file: Upload!) { importReport(input: {file: $file}) {
  status message errors { code message } batch { id } } }"""
REVERT = """mutation($id: ID!) { revertImport(input: {id: $id}) {
  errors { code message } batch { status } } }"""


def report(*activities: tuple[str, str, str]) -> bytes:
    """An IATI file of (reporting org, identifier, amount) activities, one transaction each."""
    body = "".join(
        f'<iati-activity default-currency="USD"><iati-identifier>{ident}</iati-identifier>'
        f'<reporting-org ref="{org}" type="10"><narrative>{org}</narrative></reporting-org>'
        f"<title><narrative>{ident}</narrative></title>"
        f'<transaction><transaction-type code="3"/><transaction-date iso-date="2021-03-01"/>'
        f'<value value-date="2021-03-01">{amount}</value></transaction></iati-activity>'
        for org, ident, amount in activities)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<iati-activities version="2.03">{body}'
            "</iati-activities>\n").encode()


def upload(api: Api, data: bytes, token: str, name: str = "r.xml") -> dict[str, Any]:
    ops = {"query": IMPORT, "variables": {"file": None}}
    r = api.post(None, headers={"GraphQL-Preflight": "1", "Authorization": f"Bearer {token}"},
                 data={"operations": json.dumps(ops), "map": json.dumps({"0": ["variables.file"]})},
                 files={"0": (name, data, "application/xml")})
    assert r.status_code == 200, r.text
    return r.json()["data"]["importReport"]


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as c:
        return tuple(c.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[return-value]
                     for t in (m.ImportBatch, m.Activity, m.Flow))


def alive(api: Api) -> None:
    assert api.query("{ flows { totalCount } }")["flows"]["totalCount"] >= 0


# -- limits at their edges ---------------------------------------------------------------


@pytest.fixture(scope="module")
def api(loaded_url: str) -> Api:
    return Api(loaded_url)


@pytest.mark.parametrize(("args", "message"), [
    ("first: 600", f"`first` is 600, above the maximum page size of {MAX_PAGE}"),
    ("last: 1000", f"`last` is 1000, above the maximum page size of {MAX_PAGE}"),
    ("first: 2147483647", f"query cost 2147483648 is above the cost limit of {limits.MAX_COST}"),
    ("first: -1", "must not be negative"),
    ("first: 99999999999", "Int cannot represent non 32-bit signed integer value"),
])
def test_huge_or_bad_page_sizes_are_refused(api: Api, args: str, message: str) -> None:
    assert message in api.error(f"{{ flows({args}) {{ totalCount }} }}")
    alive(api)


def test_huge_page_through_a_variable_is_refused(api: Api) -> None:
    msg = api.error("query($n: Int) { flows(first: $n) { nodes { id } } }", {"n": 10**6})
    assert f"cost limit of {limits.MAX_COST}" in msg or f"maximum page size of {MAX_PAGE}" in msg
    alive(api)


def test_too_many_node_ids_are_refused(api: Api) -> None:
    ids = [encode_id("Flow", i) for i in range(1, MAX_PAGE + 2)]
    msg = api.error("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})
    assert f"`ids` holds {MAX_PAGE + 1} ids, above the maximum of {MAX_PAGE}" in msg
    alive(api)


def test_cost_counts_through_fragments_and_node_ids(api: Api) -> None:
    frag = ("fragment F on Flow { id amount currency valueDate provider { ref name organization "
            "{ name } } receiver { ref name } activity { title sectors { code } } }")
    q = "{ a: flows(first: 500) { nodes { ...F } } b: flows(first: 500) { nodes { ...F } } } " + frag
    assert f"cost limit of {limits.MAX_COST}" in api.error(q)
    ids = [encode_id("Flow", i) for i in range(1, MAX_PAGE + 1)]
    body = "... on Flow { " + " ".join(["id amount currency provider { ref name }"] * 1) \
        + " activity { title sectors { code } policyMarkers { code } } }"
    q2 = "query($ids: [ID!]!) { a: nodes(ids: $ids) { " + body + " } b: nodes(ids: $ids) { " \
        + body + " } c: nodes(ids: $ids) { " + body + " } }"
    assert f"cost limit of {limits.MAX_COST}" in api.error(q2, {"ids": ids})
    alive(api)


def test_depth_through_fragments_is_refused(api: Api) -> None:
    deep = "fragment Deep on Flow { " + "provider { organization { " * 7 + "id" + " } }" * 7 + " }"
    chain = "{ flows { nodes { ...Deep } } } " + deep
    assert f"maximum operation depth of {limits.MAX_DEPTH}" in api.error(chain)
    alive(api)


def test_batched_mutations_are_refused_and_write_nothing(db_url: str, engine: Engine) -> None:
    _, admin = create_token(engine, "admin")
    a = Api(db_url)
    q = 'mutation { upsertOrganization(input: {ref: "XX-BATCH"}) { created } }'
    with engine.connect() as c:
        before = c.execute(select(func.count()).select_from(m.Organisation)).scalar_one()
    r = a.post([{"query": q}, {"query": q}], headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 400 and "batching is not enabled" in r.text.lower()
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Organisation)).scalar_one() == before
    alive(a)


def test_introspection_switched_off_everywhere(loaded_url: str) -> None:
    closed = Api(loaded_url, introspection=False)
    for q in ('{ __type(name: "Flow") { fields { name } } }',
              "{ a: __schema { types { name } } }",
              "query { flows { totalCount } ...on Query { __schema { queryType { name } } } }",
              "fragment I on Query { __schema { types { name } } } { ...I }"):
        assert "introspection" in closed.error(q).lower(), q
    assert closed.query("{ __typename }") == {"__typename": "Query"}
    alive(closed)


# -- unpublished data through node/nodes --------------------------------------------------


def test_superseded_and_reverted_rows_are_not_readable_by_id_anonymously(db_url: str,
                                                                         engine: Engine) -> None:
    """Published = the ledger as it stands (fundtrack.auth.tokens.published). A re-upload
    supersedes the old version: anonymous node/nodes give null for its rows, token holders
    see them with current: false. A reverted batch's rows are gone for everyone."""
    api = Api(db_url)
    assert import_file(engine, io.BytesIO(report(("XX-1", "XX-1-A", "100"))), filename="v1.xml"
                       ).status == "applied"
    with engine.connect() as c:
        old_flow, old_act = c.execute(select(m.Flow.id, m.Flow.activity_id)).one()
    v2 = import_file(engine, io.BytesIO(report(("XX-1", "XX-1-A", "250"))), filename="v2.xml")
    assert v2.status == "applied" and v2.counts["replaced_activities"] == 1
    with engine.connect() as c:
        new_flow = c.execute(select(m.Flow.id).where(m.Flow.superseded_by.is_(None))).scalar_one()
    q = """query($ids: [ID!]!) { nodes(ids: $ids) { id
             ... on Flow { amount current } ... on Activity { iatiIdentifier current } } }"""
    ids = [encode_id("Flow", old_flow), encode_id("Activity", old_act), encode_id("Flow", new_flow)]
    anon = api.query(q, {"ids": ids})["nodes"]
    assert anon == [None, None, {"id": ids[2], "amount": "250", "current": True}]
    one = api.query("query($id: ID!) { node(id: $id) { id } }", {"id": ids[0]})["node"]
    assert one is None
    # the lists agree: only the current version
    assert api.query("{ flows { nodes { amount } } }")["flows"]["nodes"] == [{"amount": "250"}]
    _, reporter = create_token(engine, "reporter", ["XX-1"])
    seen = api.query(q, {"ids": ids}, token=reporter)["nodes"]
    assert seen[0] == {"id": ids[0], "amount": "100", "current": False}
    assert seen[1] == {"id": ids[1], "iatiIdentifier": "XX-1-A", "current": False}
    # revert v2: its flow is deleted (null for everyone), v1 is current and public again
    done = api.query(REVERT, {"id": encode_id("ImportBatch", v2.batch_id)}, token=reporter)
    assert done["revertImport"]["errors"] == []
    after = api.query(q, {"ids": ids})["nodes"]
    assert after == [{"id": ids[0], "amount": "100", "current": True},
                     {"id": ids[1], "iatiIdentifier": "XX-1-A", "current": True}, None]
    assert api.query(q, {"ids": ids}, token=reporter)["nodes"][2] is None
    alive(api)


def test_node_ids_that_are_not_ours_are_refused(api: Api) -> None:
    assert "not a valid id" in api.error('{ node(id: "%%%") { id } }')
    bogus = encode_id("ApiToken", 1)
    assert "does not name an object of this API" in api.error(f'{{ node(id: "{bogus}") {{ id }} }}')
    sql = encode_id("Flow", "1 OR 1=1")
    assert "does not name an object of this API" in api.error(f'{{ node(id: "{sql}") {{ id }} }}')
    alive(api)


# -- a reporter token used for another organisation ----------------------------------------


def test_reporter_cannot_smuggle_another_orgs_activity_in_its_own_file(db_url: str,
                                                                       engine: Engine) -> None:
    api = Api(db_url)
    _, mine = create_token(engine, "reporter", ["XX-MINE"])
    before = counts(engine)
    mixed = report(("XX-MINE", "XX-MINE-1", "10"), ("XX-OTHER", "XX-OTHER-1", "20"))
    out = upload(api, mixed, mine)
    assert out["status"] == "refused" and out["errors"][0]["code"] == "NOT_PERMITTED"
    assert "reported by XX-OTHER" in out["message"] and "XX-MINE" in out["message"]
    assert counts(engine) == before  # all or nothing: not even its own activity
    alive(api)


def test_reporter_cannot_revert_a_mixed_batch_or_use_a_revoked_token(db_url: str,
                                                                      engine: Engine) -> None:
    api = Api(db_url)
    _, admin = create_token(engine, "admin")
    mixed = upload(api, report(("XX-MINE", "XX-MINE-1", "10"), ("XX-OTHER", "XX-OTHER-1", "20")),
                   admin)
    assert mixed["status"] == "applied"
    token_id, mine = create_token(engine, "reporter", ["XX-MINE"])
    before = counts(engine)
    refused = api.query(REVERT, {"id": mixed["batch"]["id"]}, token=mine)["revertImport"]
    assert refused["errors"][0]["code"] == "NOT_PERMITTED"
    assert "XX-MINE, XX-OTHER" in refused["errors"][0]["message"]
    assert counts(engine) == before
    assert "is not a ImportBatch id" in api.error(
        REVERT, {"id": encode_id("Flow", 1)}, token=mine)
    revoke_token(engine, token_id)
    r = api.post({"query": REVERT, "variables": {"id": mixed["batch"]["id"]}},
                 headers={"Authorization": f"Bearer {mine}"})
    assert r.status_code == 401 and "unknown or revoked" in r.text
    assert counts(engine) == before
    alive(api)


def test_statement_timeout_cuts_a_slow_query_with_a_clear_masked_error(
        db_kind: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: every connection carries ``FUNDTRACK_STATEMENT_TIMEOUT_MS``; a query that
    runs longer is cancelled and the client is told so, without SQL or driver details."""
    if db_kind != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no statement timeout")
    from sqlalchemy import func as sql_func

    from fundtrack.api import aggregate

    monkeypatch.setattr(aggregate, "aggregate_statement",
                        lambda *_a, **_k: select(sql_func.pg_sleep(5)))
    slow = Api(db_url, statement_timeout_ms=200)
    msg = slow.error("{ flowsAggregate { count } }")
    assert msg == ("The query ran longer than the statement timeout and was cancelled; "
                   "ask for less (smaller pages, narrower filters).")
    alive(slow)
