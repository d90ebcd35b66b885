"""A GraphQL client over the real ASGI app (httpx, in process), for tests of any area."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from fundtrack.app import create_app
from fundtrack.config import Settings


class Api:
    def __init__(self, url: str, **settings: Any) -> None:
        self.settings = Settings(database_url=url, **settings)
        self.app = create_app(self.settings)

    def post(self, body: Any = None, *, headers: dict[str, str] | None = None,
             **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.post("/graphql", json=body, headers=headers, **kw) \
                    if body is not None else await c.post("/graphql", headers=headers, **kw)

        return asyncio.run(go())

    def get(self, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.get(path, **kw)

        return asyncio.run(go())

    def raw(self, query: str, variables: dict[str, Any] | None = None,
            token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        r = self.post({"query": query, "variables": variables or {}}, headers=headers)
        assert r.status_code in (200, 400), r.text
        return r.json()

    def query(self, query: str, variables: dict[str, Any] | None = None,
              token: str | None = None) -> dict[str, Any]:
        """``data`` of a query that must succeed."""
        out = self.raw(query, variables, token)
        assert not out.get("errors"), str(out["errors"])[:1000]
        return out["data"]

    def error(self, query: str, variables: dict[str, Any] | None = None,
              token: str | None = None) -> str:
        """The error messages of a query that must fail, joined."""
        out = self.raw(query, variables, token)
        assert out.get("errors"), str(out)[:500]
        return " | ".join(e["message"] for e in out["errors"])
