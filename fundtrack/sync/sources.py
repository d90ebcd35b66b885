"""The built-in sync sources (IATI Registry, IATI Datastore, OCHA FTS) and their protocol.

A source turns its options (a ``[[source]]`` table of the config file) into a stream of
:class:`Document` s, each a remote file that the runner fetches (conditionally) and
imports through the ordinary pipeline. Sources that page by a link inside each answer
(FTS ``meta.nextLink``) fetch through ``ctx.fetch`` themselves and hand the answer on.
A source whose documents are whole datasets (the Registry) also yields
:class:`ScopeListed` when it has listed one publisher completely; the runner then
withdraws the datasets that are gone, unless the listing is suspiciously small.

They are plugins like any other: registered through the ``fundtrack_sync_sources`` hook
(entry point ``sync`` in the ``fundtrack.importers`` group).
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fundtrack.config import secret_from_env
from fundtrack.hookspecs import hookimpl
from fundtrack.sync.config import ConfigError
from fundtrack.sync.http import Fetched, FetchError, HttpClient

log = logging.getLogger(__name__)


@dataclass
class Document:
    """One remote file to keep current."""

    key: str  # stable identity within the source: a Registry dataset id, a query's page
    url: str
    scope: str  # the publisher or query it was listed under
    name: str  # a file name for people (import history)
    fmt: str | None = None  # importer name; sniffed when None
    meta: dict[str, Any] = field(default_factory=dict)
    fetched: Fetched | None = None  # already fetched by the source (paging by next link)


@dataclass
class ScopeListed:
    """A publisher's listing completed: these are all its datasets now."""

    scope: str
    keys: set[str]


class SourceContext(Protocol):
    """What the runner gives a source."""

    name: str
    options: dict[str, Any]
    client: HttpClient

    def fetch(self, key: str, url: str) -> Fetched:
        """GET ``url`` with the validators stored for ``key`` (a 304 when unchanged)."""

    def fail(self, key: str, url: str, message: str) -> None:
        """Record a failure that stops one part of the source, not the whole run."""

    def state_meta(self, key: str) -> dict[str, Any]:
        """What the source stored with ``key`` last time (e.g. the next page's link)."""


@runtime_checkable
class SyncSource(Protocol):
    """A kind of remote source (``type`` in the config file)."""

    type: str
    title: str
    #: Documents are whole datasets: one missing from a complete listing was withdrawn.
    whole_datasets: bool

    def check(self, options: dict[str, Any]) -> None:
        """Raise :class:`~fundtrack.sync.config.ConfigError` for unusable options."""

    def documents(self, ctx: SourceContext) -> Iterator[Document | ScopeListed]: ...


def _get_json(ctx: SourceContext, url: str) -> Any:
    fetched = ctx.client.get(url)
    try:
        return json.loads(fetched.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FetchError(url, f"answer is not JSON: {exc}") from None
    finally:
        fetched.discard()


def _strings(options: dict[str, Any], key: str) -> list[str]:
    value = options.get(key, [])
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"`{key}` must be a list")
    return [str(v) for v in value]


def _allowed(options: dict[str, Any], known: set[str], source_type: str) -> None:
    bad = set(options) - known
    if bad:
        raise ConfigError(f"{source_type}: unknown option(s) {', '.join(sorted(bad))}; "
                          f"known: {', '.join(sorted(known))}")


class RegistrySource:
    """IATI Registry (CKAN action API): the activity and organisation files of publishers.

    ``package_search`` with ``fq=organization:<publisher>``, paged by ``rows``/``start``;
    each dataset's first resource URL is downloaded; ``metadata_modified`` is kept.
    """

    type = "iati-registry"
    title = "IATI Registry (CKAN package_search): publishers' activity and organisation files"
    whole_datasets = True
    OPTIONS = {"url", "publishers", "filetypes", "rows", "min_listing_ratio", "api_key_env"}

    def check(self, options: dict[str, Any]) -> None:
        _allowed(options, self.OPTIONS, self.type)
        _strings(options, "publishers")
        bad = set(_strings(options, "filetypes")) - {"activity", "organisation"}
        if bad:
            raise ConfigError(f"{self.type}: filetypes may be activity, organisation; not {bad}")

    def documents(self, ctx: SourceContext) -> Iterator[Document | ScopeListed]:
        o = ctx.options
        base = str(o.get("url", "https://iatiregistry.org/api/3/action")).rstrip("/")
        rows = int(o.get("rows", 1000))
        filetypes = set(_strings(o, "filetypes") or ["activity", "organisation"])
        for publisher in _strings(o, "publishers") or ["*"]:
            params: dict[str, Any] = {"rows": rows, "sort": "name asc"}
            if publisher != "*":
                params["fq"] = f"organization:{publisher}"
            listed: set[str] = set()
            docs: list[Document] = []
            start = 0
            try:
                while True:
                    url = f"{base}/package_search?{urllib.parse.urlencode({**params, 'start': start})}"
                    answer = _get_json(ctx, url)
                    if not isinstance(answer, dict) or answer.get("success") is not True:
                        raise FetchError(url, "package_search did not answer success: true")
                    result = answer["result"]
                    page = result.get("results") or []
                    for ds in page:
                        doc = self._document(ds, publisher)
                        if doc is None:
                            continue
                        listed.add(doc.key)
                        if doc.meta.get("filetype", "activity") in filetypes:
                            docs.append(doc)
                    start += len(page)
                    if not page or start >= int(result.get("count", 0)):
                        break
            except (FetchError, KeyError, TypeError, ValueError) as exc:
                ctx.fail(f"listing:{publisher}", base, f"listing of {publisher} failed: {exc}; "
                         "nothing of this publisher is withdrawn this run")
                continue
            yield from docs
            yield ScopeListed(publisher, listed)

    @staticmethod
    def _document(ds: dict[str, Any], publisher: str) -> Document | None:
        url = next((r.get("url") for r in ds.get("resources") or [] if r.get("url")), None)
        if not url or not ds.get("id"):
            return None
        extras = {e.get("key"): e.get("value") for e in ds.get("extras") or []
                  if isinstance(e, dict)}
        name = str(ds.get("name") or ds["id"])
        org = ds.get("organization") or {}
        return Document(
            key=str(ds["id"]), url=str(url), scope=publisher, name=f"{name}.xml", fmt="iati",
            meta={"registry_name": name, "metadata_modified": ds.get("metadata_modified"),
                  "filetype": extras.get("filetype") or "activity",
                  "publisher": org.get("name") if isinstance(org, dict) else None})


class DatastoreSource:
    """IATI Datastore (v3, Solr): the activities a query finds, as IATI XML pages.

    ``/activity/select?q=..&rows=0&wt=json`` says how many (``response.numFound``);
    ``/activity/iati?q=..&sort=iati_identifier asc&rows=..&start=..`` answers each page as
    an ``<iati-activities>`` document, imported like any IATI file. The subscription key is
    sent as ``Ocp-Apim-Subscription-Key`` from the environment variable ``api_key_env``.
    """

    type = "iati-datastore"
    title = "IATI Datastore (activity query API): activities matching a Solr query"
    whole_datasets = False
    OPTIONS = {"url", "query", "queries", "rows", "api_key_env"}

    def check(self, options: dict[str, Any]) -> None:
        _allowed(options, self.OPTIONS, self.type)
        if not (_strings(options, "queries") or options.get("query")):
            raise ConfigError(f"{self.type}: give a `query` (Solr, e.g. "
                              "'recipient_country_code:AF AND sector_code:15170')")

    def documents(self, ctx: SourceContext) -> Iterator[Document | ScopeListed]:
        o = ctx.options
        base = str(o.get("url", "https://api.iatistandard.org/datastore")).rstrip("/")
        rows = int(o.get("rows", 1000))
        for query in _strings(o, "queries") or [str(o["query"])]:
            url = f"{base}/activity/select?" + urllib.parse.urlencode(
                {"q": query, "rows": 0, "wt": "json", "fl": "iati_identifier"})
            try:
                found = int(_get_json(ctx, url)["response"]["numFound"])
            except (FetchError, KeyError, TypeError, ValueError) as exc:
                ctx.fail(f"count:{query}"[:500], url, f"count of {query!r} failed: {exc}")
                continue
            qkey = query if len(query) <= 400 else hashlib.sha256(query.encode()).hexdigest()
            for start in range(0, found, rows):
                page_url = f"{base}/activity/iati?" + urllib.parse.urlencode(
                    {"q": query, "sort": "iati_identifier asc", "rows": rows, "start": start})
                yield Document(key=f"{qkey}|start={start}", url=page_url, scope=qkey,
                               name=f"datastore-{start // rows + 1}.xml", fmt="iati",
                               meta={"query": query, "start": start, "num_found": found})


class FtsSource:
    """OCHA FTS API v1 flow search, by year, plan, location or organisation, every page.

    Each query's first page is ``<url>?<params>``; each answer's ``meta.nextLink`` names the
    next page (FTS caps a page at a few hundred flows). Each page is imported as one FTS
    file; flows move between pages from one run to the next and replace each other by
    their FTS id.
    """

    type = "fts"
    title = "OCHA FTS API v1 flow search: by year, plan, location, organisation"
    whole_datasets = False
    OPTIONS = {"url", "years", "plans", "locations", "organizations", "queries", "max_pages"}

    def check(self, options: dict[str, Any]) -> None:
        _allowed(options, self.OPTIONS, self.type)
        if not self.queries(options):
            raise ConfigError(f"{self.type}: give `years`, `plans`, `locations`, "
                              "`organizations` or `queries`")

    @staticmethod
    def queries(options: dict[str, Any]) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for q in options.get("queries", []):
            if not isinstance(q, dict) or not q:
                raise ConfigError("fts: each of `queries` is a table of parameters, "
                                  "e.g. { locationid = 1, year = 2020 }")
            out.append({str(k): str(v) for k, v in q.items()})
        years = _strings(options, "years")
        for plan in _strings(options, "plans"):
            out.append({"planid": plan})
        for param, key in (("locationid", "locations"), ("organizationid", "organizations")):
            for value in _strings(options, key):
                out.extend([{param: value, "year": y} for y in years] or [{param: value}])
        if years and not (options.get("locations") or options.get("organizations")):
            out.extend({"year": y} for y in years)
        return out

    def documents(self, ctx: SourceContext) -> Iterator[Document | ScopeListed]:
        o = ctx.options
        base = str(o.get("url", "https://api.hpc.tools/v1/public/fts/flow")).rstrip("/")
        max_pages = int(o.get("max_pages", 10_000))
        for params in self.queries(o):
            qs = urllib.parse.urlencode(sorted(params.items()))
            url: str | None = f"{base}?{qs}"
            seen: set[str] = set()
            page = 0
            while url and page < max_pages:
                if url in seen:
                    ctx.fail(f"{qs}#page={page + 1}", url, "nextLink loops back; stopped")
                    break
                seen.add(url)
                page += 1
                key = f"{qs}#page={page}"
                try:
                    fetched = ctx.fetch(key, url)
                except FetchError as exc:
                    ctx.fail(key, url, f"{exc}; later pages of this query not fetched")
                    break
                if fetched.not_modified:
                    next_url = ctx.state_meta(key).get("next_url")
                else:
                    try:
                        meta = json.loads(fetched.read_bytes()).get("meta") or {}
                        next_url = meta.get("nextLink") or None
                    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
                        fetched.discard()
                        ctx.fail(key, url, f"page is not FTS JSON: {exc}")
                        break
                yield Document(key=key, url=url, scope=qs, name=f"fts-{qs}-page-{page}.json",
                               fmt="fts", meta={"next_url": next_url, "query": params},
                               fetched=fetched)
                url = next_url


BUILT_IN: list[Any] = [RegistrySource(), DatastoreSource(), FtsSource()]


@hookimpl
def fundtrack_sync_sources() -> list[Any]:
    return BUILT_IN


def api_key_headers(options: dict[str, Any]) -> dict[str, str]:
    """The Datastore's subscription key header, from the environment variable named."""
    env = options.get("api_key_env")
    if env is None:
        env = "IATI_DATASTORE_KEY"
    key = secret_from_env(str(env))
    return {"Ocp-Apim-Subscription-Key": key} if key else {}


def source_types(pm: Any = None) -> dict[str, SyncSource]:
    """Every registered source type by its ``type`` (first registration wins)."""
    from fundtrack.plugins import plugin_manager

    pm = pm or plugin_manager()
    found: dict[str, SyncSource] = {}
    for batch in pm.hook.fundtrack_sync_sources():
        for src in batch or []:
            found.setdefault(src.type, src)
    for src in BUILT_IN:  # also when run from a checkout without the entry point installed
        found.setdefault(src.type, src)
    return found
