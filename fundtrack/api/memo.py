"""Small bounded caches for work that depends only on the parsed query and its variables.

Why: a client repeats the same query (often with the same variables); the parser and the
validation are cached already (:mod:`fundtrack.api.limits`), and the per-request
walks over the same document (the cost estimate, a connection's look-ahead) cost ~0.1 ms
each for a page of 100 flows.

Every cache that keeps a query text or its parsed document alive is bounded by bytes as
well as by entries (:data:`QUERY_CACHE_BYTES`, weights from :func:`text_weight`).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Hashable
from contextlib import suppress
from typing import Any

MISS = object()


class Lru:
    """A dict that forgets its least recently used entries beyond ``maxsize`` entries or
    ``maxbytes`` of their (estimated) weight.

    Why bytes: a count alone let 24 distinct 10 MB query texts hold 541 MB (issue 18).
    Weights are the caller's estimate (see :func:`text_weight`); an entry heavier than the
    whole budget is not kept.
    """

    def __init__(self, maxsize: int = 256, maxbytes: int | None = None) -> None:
        self.maxsize = maxsize
        self.maxbytes = maxbytes
        self.bytes = 0
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable) -> Any:
        found = self._data.get(key)
        if found is None:
            return MISS
        with suppress(KeyError):  # evicted meanwhile by another thread's put
            self._data.move_to_end(key)
        return found[0]

    def put(self, key: Hashable, value: Any, weight: int = 0) -> None:
        if self.maxbytes is not None and weight > self.maxbytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._data[key] = (value, weight)
            self.bytes += weight
            while self._data and (len(self._data) > self.maxsize or (
                    self.maxbytes is not None and self.bytes > self.maxbytes)):
                _, (_, w) = self._data.popitem(last=False)
                self.bytes -= w

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0


#: Estimated bytes a parsed document keeps alive per character of its query text: the
#: AST of a dense query measured ~97 bytes per character (tracemalloc, graphql-core 3.3).
BYTES_PER_QUERY_CHAR = 100
#: Budget of each cache that keeps query texts or their parsed documents alive.
QUERY_CACHE_BYTES = 32 * 1024 * 1024


def text_weight(text: str | None) -> int:
    """Estimated bytes a cached entry keeps alive for a query text (its parsed document)."""
    return 256 + BYTES_PER_QUERY_CHAR * len(text or "")


def node_weight(node: Any) -> int:
    """:func:`text_weight` of the document an AST node belongs to (it keeps it alive)."""
    loc = getattr(node, "loc", None)
    return text_weight(loc.source.body if loc is not None else None)


def variables_key(variables: dict[str, Any] | None) -> str | None:
    """A cache key for a request's variables; None (do not cache) if they are not plain JSON
    (uploads) or are large."""
    if not variables:
        return ""
    try:
        key = json.dumps(variables, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return key if len(key) <= 4096 else None
