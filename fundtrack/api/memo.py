"""Small bounded caches for work that depends only on the parsed query and its variables.

Why: a client repeats the same query (often with the same variables); the parser and the
validation are cached already (``ParserCache``, ``ValidationCache``), and the per-request
walks over the same document (the cost estimate, a connection's look-ahead) cost ~0.1 ms
each for a page of 100 flows.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Hashable
from contextlib import suppress
from typing import Any

MISS = object()


class Lru:
    """A dict that forgets its least recently used entry beyond ``maxsize``."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        value = self._data.get(key, MISS)
        if value is not MISS:
            with suppress(KeyError):  # evicted meanwhile by another thread's put
                self._data.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self._data[key] = value
        with suppress(KeyError):
            self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            with suppress(KeyError):
                self._data.popitem(last=False)


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
