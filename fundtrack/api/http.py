"""HTTP guards in front of the GraphQL view: body size, CSRF, bearer tokens.

- Bodies above ``Settings.max_upload_bytes`` are answered 413, whether the client
  declared a Content-Length or streamed chunks; a body that cannot carry a file (anything
  but multipart/form-data: a query and its variables) is held to
  :data:`fundtrack.api.limits.MAX_QUERY_BODY_BYTES` (issue 18: a 1 MB filter took a
  database down, a 10 MB comment filled the caches).
- A POST whose content type a browser may send cross-site without a preflight
  (multipart/form-data, x-www-form-urlencoded, text/plain) must carry a non-simple header
  (``GraphQL-Preflight: 1``, ``Apollo-Require-Preflight`` or ``X-Fundtrack-CSRF``).
- ``Authorization: Bearer <token>`` names the viewer; an unknown or revoked token is 401
  (never silently anonymous); a database that cannot be reached to check it is 503.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from fundtrack.api.limits import MAX_QUERY_BODY_BYTES, database_error_message
from fundtrack.auth.tokens import ANONYMOUS_VIEWER, viewer_for_secret
from fundtrack.config import Settings

SIMPLE_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded", "text/plain", "")
CSRF_HEADERS = (b"graphql-preflight", b"apollo-require-preflight", b"x-fundtrack-csrf",
                b"x-apollo-operation-name")


class _TooLarge(Exception):
    pass


async def _send_error(send: Any, status: int, message: str) -> None:
    body = json.dumps({"errors": [{"message": message}]}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class GraphQLGuard:
    """ASGI wrapper: checks size, CSRF and token, then hands over to the GraphQL view."""

    def __init__(self, app: Any, engine: Engine, settings: Settings) -> None:
        self.app = app
        self.engine = engine
        self.settings = settings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip()
        limit = self.settings.max_upload_bytes
        if ctype.lower() != "multipart/form-data":
            limit = min(limit, MAX_QUERY_BODY_BYTES)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(send, 413, f"request body of {int(declared)} bytes is above "
                              f"the limit of {limit} bytes")
            return
        if scope["method"] == "POST" and ctype.lower() in SIMPLE_TYPES and not any(
                h in headers for h in CSRF_HEADERS):
            await _send_error(send, 400, "this request needs a non-simple header such as "
                              "`GraphQL-Preflight: 1` (protection against cross-site "
                              "request forgery)")
            return
        viewer = ANONYMOUS_VIEWER
        auth = headers.get(b"authorization", b"").decode("latin-1").strip()
        if auth:
            scheme, _, secret = auth.partition(" ")
            try:
                found = await run_in_threadpool(viewer_for_secret, self.engine, secret.strip()) \
                    if scheme.lower() == "bearer" and secret.strip() else None
            except DBAPIError as exc:
                await _send_error(send, 503, database_error_message(exc)
                                  or "Internal error (details are in the server log).")
                return
            if found is None:
                await _send_error(send, 401, "unknown or revoked API token "
                                  "(send `Authorization: Bearer <token>`)")
                return
            viewer = found
        scope.setdefault("state", {})["viewer"] = viewer

        received = 0
        started = False

        async def counting_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_error(send, 413, f"request body is above the limit of {limit} bytes")
