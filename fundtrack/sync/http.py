"""A polite HTTP client for sync, on the standard library only.

Why not a plain ``urlopen``: public APIs ask to be treated gently and fail in known ways.
This client sends conditional requests (``If-None-Match``/``If-Modified-Since``) so an
unchanged file costs a 304 and no body; retries 429, 5xx and broken connections with
exponential backoff, honouring ``Retry-After``; waits between requests to one host (a
per-host rate limit); streams bodies to a temporary file, counting bytes, and treats a
body shorter than its ``Content-Length`` (a connection cut mid-body) as a failed attempt
rather than a document.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fundtrack import __version__

log = logging.getLogger(__name__)

USER_AGENT = f"fundtrack/{__version__} (sync; +https://github.com/fundtrack)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CHUNK = 1 << 16


class FetchError(Exception):
    """A document could not be fetched after every retry (the message says why)."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.status = status


@dataclass
class Fetched:
    """The answer to one GET: a body in a temporary file, or ``not_modified``."""

    url: str
    final_url: str
    status: int
    not_modified: bool
    etag: str | None = None
    last_modified: str | None = None
    path: Path | None = None
    size: int = 0
    sha256: str | None = None
    attempts: int = 1

    def read_bytes(self) -> bytes:
        return self.path.read_bytes() if self.path else b""

    def discard(self) -> None:
        """Delete the temporary body (callers call this when they are done with it)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


@dataclass
class HttpSettings:
    """How polite to be. Defaults suit public APIs; tests shorten the waits."""

    timeout_seconds: float = 60.0
    retries: int = 5
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0
    #: At least this long between two requests to one host.
    min_interval_seconds: float = 1.0
    max_bytes: int = 1 << 30
    headers: dict[str, str] = field(default_factory=dict)


class _NoRedirectErrors(urllib.request.HTTPErrorProcessor):
    """Let 304 through as a response instead of an exception."""

    def http_response(self, request, response):  # type: ignore[no-untyped-def]
        if response.status == 304:
            return response
        return super().http_response(request, response)

    https_response = http_response


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only: a listing must not lead us to ftp:// or file://."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl!r} refused "
                                         "(http and https only)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class HttpClient:
    """GET with conditional requests, retries, backoff and a per-host rate limit."""

    def __init__(self, settings: HttpSettings | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings or HttpSettings()
        self.sleep = sleep
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirectErrors(), _HttpOnlyRedirects())
        self.requests = 0
        self.bytes = 0

    def _wait_turn(self, url: str) -> None:
        host = urllib.parse.urlsplit(url).netloc
        with self._lock:
            last = self._last.get(host)
            now = time.monotonic()
            wait = 0.0 if last is None else last + self.settings.min_interval_seconds - now
            self._last[host] = now + max(wait, 0.0)
        if wait > 0:
            self.sleep(wait)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        s = self.settings
        if retry_after:
            seconds = _retry_after_seconds(retry_after)
            if seconds is not None:
                return min(max(seconds, 0.0), s.max_backoff_seconds)
        return min(s.backoff_seconds * (2 ** (attempt - 1)), s.max_backoff_seconds)

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
            headers: dict[str, str] | None = None,
            progress: Callable[[int], None] | None = None) -> Fetched:
        """Fetch ``url``; a 304 when the validators still hold. Raises :class:`FetchError`."""
        s = self.settings
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise FetchError(url, "only http and https URLs are fetched")
        last_error = "no attempt"
        status: int | None = None
        for attempt in range(1, s.retries + 2):
            self._wait_turn(url)
            req = urllib.request.Request(url, headers={
                "User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                **s.headers, **(headers or {})})
            if etag:
                req.add_header("If-None-Match", etag)
            if last_modified:
                req.add_header("If-Modified-Since", last_modified)
            retry_after = None
            self.requests += 1
            try:
                with self._opener.open(req, timeout=s.timeout_seconds) as resp:
                    status = resp.status
                    final = resp.geturl()
                    new_etag = resp.headers.get("ETag")
                    new_lm = resp.headers.get("Last-Modified")
                    if status == 304:
                        log.info("%s: not modified", url)
                        return Fetched(url, final, 304, True, etag=new_etag or etag,
                                       last_modified=new_lm or last_modified, attempts=attempt)
                    path, size, sha = self._body(resp, url, progress)
                    return Fetched(url, final, status, False, etag=new_etag, last_modified=new_lm,
                                   path=path, size=size, sha256=sha, attempts=attempt)
            except urllib.error.HTTPError as exc:
                status = exc.code
                last_error = f"HTTP {exc.code} {exc.reason}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                exc.close()
                if exc.code not in RETRY_STATUSES:
                    raise FetchError(url, last_error, exc.code) from None
            except (http.client.IncompleteRead, http.client.HTTPException, OSError) as exc:
                # URLError is an OSError; so are resets and timeouts.
                last_error = f"{type(exc).__name__}: {exc}"
                status = None
            if attempt <= s.retries:
                wait = self._backoff(attempt, retry_after)
                log.warning("%s: %s; retry %d of %d in %.1f s", url, last_error, attempt,
                            s.retries, wait)
                self.sleep(wait)
        raise FetchError(url, f"{last_error} (gave up after {s.retries + 1} attempts)", status)

    def _body(self, resp: http.client.HTTPResponse, url: str,
              progress: Callable[[int], None] | None) -> tuple[Path, int, str]:
        expected = resp.headers.get("Content-Length")
        h = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(prefix="fundtrack-sync-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as tmp:
                while chunk := resp.read(CHUNK):
                    size += len(chunk)
                    if size > self.settings.max_bytes:
                        raise FetchError(url, f"body larger than {self.settings.max_bytes} bytes")
                    h.update(chunk)
                    tmp.write(chunk)
                    if progress:
                        progress(len(chunk))
            if expected is not None and expected.isdigit() and int(expected) != size:
                raise http.client.IncompleteRead(b"", int(expected) - size)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.bytes += size
        return path, size, h.hexdigest()


def _retry_after_seconds(value: str) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
