"""The public contract: schema/fundtrack.graphql is exactly the live schema's SDL."""

from __future__ import annotations

from pathlib import Path

from fundtrack.api.schema import printed_schema

SDL = Path(__file__).resolve().parents[1] / "schema" / "fundtrack.graphql"


def test_schema_file_matches_live_schema() -> None:
    assert SDL.read_text() == printed_schema(), (
        "schema/fundtrack.graphql is stale: run "
        "`python -m fundtrack.api.schema > schema/fundtrack.graphql` and review the diff")


def test_schema_has_the_public_shapes() -> None:
    sdl = printed_schema()
    for needle in ("flowsAggregate(where: FlowWhere", "interface Node",
                   "importReport(input: ImportReportInput!): ImportReportPayload!",
                   "scalar Upload", "totalCount: Int!", "_and: [FlowWhere!]"):
        assert needle in sdl, needle
