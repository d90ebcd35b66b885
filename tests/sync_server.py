"""A local HTTP server that replays API answers for the sync tests (no internet).

Routes map a path (and, for APIs, the query string) to a body; every static body gets a
strong ``ETag`` and a ``Last-Modified`` and answers conditional requests with 304, as the
IATI publishers' web servers, the Registry's and FTS do. Faults are scripted per path: a
queue of ``("status", 500)``, ``("status", 429, retry_after)``, ``("cut", n)`` (send the
headers with the full Content-Length, n bytes of body, then close the connection) and
``("hang", release, arrived)`` (set ``arrived``, block until ``release`` is set: a
process killed mid-download).
Every request is logged (before it is answered) with its status and body bytes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "sync"


@dataclass
class Hit:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    body_bytes: int


@dataclass
class Replay:
    """What the server answers; tests change it between syncs."""

    files: dict[str, bytes] = field(default_factory=dict)  # path -> body (static files)
    apis: dict[str, Callable[[dict[str, str]], tuple[int, Any]]] = field(default_factory=dict)
    faults: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    last_modified: str = formatdate(1_700_000_000, usegmt=True)

    def downloads(self, prefix: str = "/files/") -> list[Hit]:
        """Requests under ``prefix`` that were answered with a body."""
        return [h for h in self.hits if h.path.startswith(prefix) and h.status == 200]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    replay: Replay

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        r = self.replay
        fault = r.faults.get(url.path, [])
        action = fault.pop(0) if fault else None
        headers = {k: v for k, v in self.headers.items()}
        if action and action[0] == "status":
            extra = {"Retry-After": str(action[2])} if len(action) > 2 else {}
            r.hits.append(Hit(url.path, query, headers, action[1], 0))
            self._send(action[1], b"busy" if action[1] == 429 else b"error", extra)
            return
        if action and action[0] == "hang":
            action[2].set()  # arrived
            action[1].wait(60)  # released
            self.close_connection = True
            return
        if url.path in r.apis:
            status, payload = r.apis[url.path](query)
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            ctype = "application/json" if body[:1] in (b"{", b"[") else "application/xml"
        elif url.path in r.files:
            status, body = 200, r.files[url.path]
            ctype = "application/json" if url.path.endswith(".json") else "application/xml"
        else:
            r.hits.append(Hit(url.path, query, headers, 404, 0))
            self._send(404, b"not found", {})
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if status == 200 and (self.headers.get("If-None-Match") == etag
                              or (self.headers.get("If-Modified-Since") == r.last_modified
                                  and "If-None-Match" not in self.headers)):
            r.hits.append(Hit(url.path, query, headers, 304, 0))
            self._send(304, b"", {"ETag": etag, "Last-Modified": r.last_modified})
            return
        extra = {"ETag": etag, "Last-Modified": r.last_modified, "Content-Type": ctype}
        if action and action[0] == "cut":
            r.hits.append(Hit(url.path, query, headers, -200, action[1]))
            self.send_response(200)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:action[1]])
            self.wfile.flush()
            self.close_connection = True
            return
        r.hits.append(Hit(url.path, query, headers, status, len(body)))
        self._send(status, body, extra)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)


class ReplayServer:
    """``with ReplayServer() as srv:`` -> ``srv.base`` (http://127.0.0.1:port), ``srv.replay``."""

    def __init__(self) -> None:
        self.replay = Replay()
        handler = type("Handler", (_Handler,), {"replay": self.replay})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the IATI Registry (CKAN action API) ----------------------------------------------------

def ckan_datasets(base: str) -> list[dict[str, Any]]:
    """The recorded datasets (real CKAN ``package_search`` result shape), URLs on ``base``."""
    text = (FIXTURES / "registry_package_search.json").read_text("utf-8")
    return json.loads(text.replace("{BASE}", base))["result"]["results"]


def ckan_package_search(datasets: Callable[[], list[dict[str, Any]]]
                        ) -> Callable[[dict[str, str]], tuple[int, Any]]:
    """``/api/3/action/package_search``: ``fq=organization:NAME``, ``rows``, ``start``."""
    recorded = json.loads((FIXTURES / "registry_package_search.json").read_text("utf-8"))

    def answer(q: dict[str, str]) -> tuple[int, Any]:
        found = datasets()
        fq = q.get("fq", "")
        if fq.startswith("organization:"):
            org = fq.split(":", 1)[1]
            found = [d for d in found if d["organization"]["name"] == org]
        found = sorted(found, key=lambda d: d["name"])
        start, rows = int(q.get("start", 0)), int(q.get("rows", 10))
        return 200, {"help": recorded["help"], "success": True, "result": {
            "count": len(found), "facets": {}, "search_facets": {},
            "sort": q.get("sort", "score desc, metadata_modified desc"),
            "results": found[start:start + rows]}}

    return answer
