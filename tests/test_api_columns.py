"""A page of flows reads only the columns of the fields its client selected, and answers
exactly as a page that reads every column (``FLOW_COLUMNS``, ``narrow_columns``)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from fundtrack.api.prefetch import narrow_columns
from fundtrack.api.schema import build_schema
from fundtrack.api.testing import Api
from fundtrack.api.types import FLOW_COLUMNS
from fundtrack.config import Settings

WIDE = """{ flows(ARGS) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
  edges { cursor node { __typename id kind amount currency valueDate transactionDate
  amountUsd usdRate usdRateDate usdRateSource reportingOrgRef externalId ref
  provider { ref name activityId organization { ref name } }
  receiver { ref name activityId organization { name } }
  sectorVocabulary sectorCode recipientCountry recipientRegion aidType earmarking flowType
  financeType tiedStatus humanitarian description sourceLocation current
  activity { iatiIdentifier title } reportingOrg { ref } batch { fileName } } } } }"""

NARROW = """{ flows(ARGS) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
  edges { cursor node { id amount valueDate provider { ref organization { ref name } }
  activity { iatiIdentifier } current } } } }"""

ARGS = [
    "first: 120",
    "first: 40, orderBy: [{field: VALUE_DATE, direction: DESC}]",
    'last: 25, where: {currency: {_eq: "USD"}}, orderBy: [{field: AMOUNT, direction: ASC}]',
]


def test_every_flow_field_has_its_columns() -> None:
    """A new Flow field must say which columns it reads (or every page reads all of them)."""
    fields = build_schema(Settings())._schema.type_map["Flow"].fields  # type: ignore[union-attr]
    assert set(fields) | {"__typename"} == set(FLOW_COLUMNS)


def test_unknown_field_reads_every_column() -> None:
    from sqlalchemy import select

    from fundtrack.ledger import tables as m

    q = select(m.Flow.__table__)
    assert narrow_columns(q, "Flow", {"id": {}, "notAField": {}}) == (q, None)
    assert narrow_columns(q, "Organization", {"id": {}}) == (q, None)
    narrow, blank = narrow_columns(q, "Flow", {"amount": {}, "current": {}})
    assert [c.name for c in narrow.selected_columns] == ["id", "superseded_by", "amount"]
    assert blank is not None and len(blank) == len(m.Flow.__table__.columns)


def _project(node: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
    return {k: (_project(node[k], v) if isinstance(v, dict) and node[k] is not None else node[k])
            for k, v in shape.items()}


@pytest.mark.parametrize("args", ARGS)
def test_narrow_page_equals_wide_page(loaded_url: str, args: str) -> None:
    api = Api(loaded_url)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        if "FROM flow" in statement and "count(" not in statement:
            statements.append(statement)

    engine = api.app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        wide = api.query(WIDE.replace("ARGS", args))["flows"]
        narrow = api.query(NARROW.replace("ARGS", args))["flows"]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 2
    assert "description" in statements[0] and "source_location" in statements[0]
    page_columns = statements[1].split("FROM flow")[0]
    assert "source_location" not in page_columns and "usd_rate" not in page_columns
    assert "superseded_by" in page_columns and "provider_ref" in page_columns

    assert narrow["totalCount"] == wide["totalCount"] > 0
    assert narrow["pageInfo"] == wide["pageInfo"]
    assert len(wide["edges"]) == len(narrow["edges"]) > 0
    shape = {"id": 1, "amount": 1, "valueDate": 1, "current": 1, "activity": {"iatiIdentifier": 1},
             "provider": {"ref": 1, "organization": {"ref": 1, "name": 1}}}
    for w, n in zip(wide["edges"], narrow["edges"], strict=True):
        assert n["cursor"] == w["cursor"]
        assert n["node"] == _project(w["node"], shape)
    # The wide page really carries values the narrow one did not read.
    assert all(e["node"]["sourceLocation"] for e in wide["edges"])
