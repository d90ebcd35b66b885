"""The sync configuration file (TOML): which sources, publishers, queries, plans, years.

```toml
[http]                       # optional; these are the defaults
min_interval_seconds = 1.0   # per host
retries = 5
backoff_seconds = 2.0

[[source]]
name = "registry-nl"         # unique; state and runs are kept under this name
type = "iati-registry"       # a source type from `fundtrack sync --list-types`
publishers = ["minbuza_nl"]
```

Everything in a ``[[source]]`` table other than ``name`` and ``type`` is the source's own
options, checked by the source (see docs/sync.md).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fundtrack.sync.http import HttpSettings

DEFAULT_CONFIG_NAME = "fundtrack-sync.toml"


class ConfigError(Exception):
    """The configuration file cannot be used (the message says where and why)."""


@dataclass
class SourceConfig:
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyncConfig:
    http: HttpSettings
    sources: list[SourceConfig]
    path: str | None = None


HTTP_KEYS = {"timeout_seconds", "retries", "backoff_seconds", "max_backoff_seconds",
             "min_interval_seconds", "max_bytes"}


def parse_config(data: dict[str, Any], path: str | None = None) -> SyncConfig:
    where = path or "config"
    unknown = set(data) - {"http", "source"}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}; "
                          "expected [http] and [[source]]")
    raw_http = data.get("http", {})
    bad = set(raw_http) - HTTP_KEYS
    if bad:
        raise ConfigError(f"{where}: [http] has unknown key(s) {', '.join(sorted(bad))}; "
                          f"known: {', '.join(sorted(HTTP_KEYS))}")
    http = HttpSettings(**{k: (int(v) if k in ("retries", "max_bytes") else float(v))
                           for k, v in raw_http.items()})
    sources: list[SourceConfig] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("source", [])):
        name, kind = raw.get("name"), raw.get("type")
        if not isinstance(name, str) or not name or not isinstance(kind, str) or not kind:
            raise ConfigError(f"{where}: [[source]] number {i + 1} needs a `name` and a `type`")
        if name in seen:
            raise ConfigError(f"{where}: two sources are named {name!r}")
        seen.add(name)
        sources.append(SourceConfig(name, kind, {k: v for k, v in raw.items()
                                                 if k not in ("name", "type")}))
    if not sources:
        raise ConfigError(f"{where}: no [[source]] configured")
    return SyncConfig(http=http, sources=sources, path=path)


def load_config(path: str | Path) -> SyncConfig:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, str(p))
