"""Pooled funds in the registry: the `funds` list and the admin-only `upsertFund`.

The registry (seeded with the funds the sources name: the Peacebuilding Fund, WPHF,
CERF, UNDEF, the UN Trust Fund to End Violence against Women) lives in
:mod:`fundtrack.derived.trail.funds`; this module only exposes it.
"""

from __future__ import annotations

import json
from typing import Any

import strawberry
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from fundtrack import registry
from fundtrack.api.filters import StringComparison, compare
from fundtrack.api.ids import encode_id
from fundtrack.api.mutations import UserError, _require_admin
from fundtrack.api.paging import Connection, PageArgs, connection
from fundtrack.api.types import Node, Organization, _organization
from fundtrack.derived.trail.tables import Fund as FundRow


@strawberry.type(description="A pooled fund in the registry (editable by admins).")
class Fund(Node):
    pk: strawberry.Private[int]
    ref: str = strawberry.field(description="The fund's organisation reference.")
    name: str
    acronym: str | None
    administrative_agent_ref: str | None = strawberry.field(
        description="The administrative agent (e.g. the MPTF Office), where there is one.")
    administrative_agent_name: str | None
    aliases: list[str] = strawberry.field(
        description="Other references and names seen in reports for this fund.")
    note: str | None

    @classmethod
    def from_row(cls, r: Any) -> Fund:
        aliases = r["aliases"]
        if isinstance(aliases, str):
            aliases = json.loads(aliases)
        return cls(id=strawberry.ID(encode_id("Fund", r["id"])), pk=r["id"],
                   ref=r["organisation_ref"], name=r["name"], acronym=r["acronym"],
                   administrative_agent_ref=r["administrative_agent_ref"],
                   administrative_agent_name=r["administrative_agent_name"],
                   aliases=list(aliases or []), note=r["note"])

    @strawberry.field(description="The fund's organisation in the registry.")
    def organization(self, info: Info) -> Organization | None:
        return info.context.loaders.get("organisation_by_ref", self.ref, _organization)


@strawberry.input
class FundWhere:
    ref: StringComparison | None = None
    name: StringComparison | None = None
    acronym: StringComparison | None = None


@strawberry.type
class FundQuery:
    @strawberry.field(description="The pooled-fund registry.")
    def funds(self, info: Info, where: FundWhere | None = None, first: int | None = None,
              after: str | None = None, last: int | None = None, before: str | None = None,
              ) -> Connection[Fund]:
        t = FundRow.__table__
        q = select(t)
        if where is not None:
            for attr, col in (("ref", t.c.organisation_ref), ("name", t.c.name),
                              ("acronym", t.c.acronym)):
                if getattr(where, attr) is not None:
                    q = q.where(compare(col, getattr(where, attr)))
        return connection(info.context, q, [t.c.organisation_ref, t.c.id], Fund.from_row,
                          PageArgs(first, after, last, before))


@strawberry.input
class FundInput:
    ref: str
    name: str
    acronym: str | None = None
    administrative_agent_ref: str | None = None
    administrative_agent_name: str | None = None
    aliases: list[str] | None = None
    note: str | None = None


@strawberry.type
class FundPayload:
    fund: Fund | None
    errors: list[UserError]


@strawberry.type
class FundMutation:
    @strawberry.mutation(description="Add or edit a pooled fund (admin only); its "
                         "organisation is marked as a pooled fund.")
    async def upsert_fund(self, info: Info, input: FundInput) -> FundPayload:
        ctx = info.context
        _require_admin(ctx.viewer, "upsertFund")
        ref, name = input.ref.strip(), input.name.strip()
        if not ref or not name:
            return FundPayload(fund=None, errors=[UserError(
                code="INVALID", message="ref and name must not be empty",
                field="ref" if not ref else "name")])
        fields = {k: getattr(input, k) for k in ("acronym", "administrative_agent_ref",
                                                 "administrative_agent_name", "aliases",
                                                 "note") if getattr(input, k) is not None}
        def run() -> Any:
            with ctx.engine.begin() as conn:
                return registry.upsert_fund(conn, ref, name, **fields)

        return FundPayload(fund=Fund.from_row(await run_in_threadpool(run)), errors=[])


def _register_node() -> None:
    """Make `node(id:)` / `nodes(ids:)` answer for funds too."""
    from fundtrack.api.loaders import SPECS, LoaderSpec
    from fundtrack.api.types import NODE_TYPES

    SPECS.setdefault("fund_by_id", LoaderSpec("fund", "id"))
    NODE_TYPES.setdefault("Fund", (Fund, "fund_by_id"))


_register_node()
