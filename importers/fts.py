"""OCHA Financial Tracking Service (FTS) API v1 flow searches, as JSON.

One file is one response of ``/v1/public/fts/flow`` or ``.../flow/custom-search``:
``{"status": "ok", "data": {"flows": [...], "incoming": ...}, "meta": {...}}``. A large
search comes in pages (``meta.nextLink``); each page is a file, imported on its own.

How a flow becomes a :class:`FlowRecord` (the choices, so they can be cited):

- **Kind**, from the source's side: ``paid`` -> DISBURSEMENT, ``commitment`` ->
  OUTGOING_COMMITMENT, ``pledge`` -> OUTGOING_PLEDGE. Any other status skips the flow.
- **Identity**: ``external_id`` is the FTS flow id and the reporting organisation is
  ``XM-OCHA-FTS`` for every flow, so the ledger replaces a flow imported before (another
  page, an overlapping search, a later download) instead of counting it twice. A flow id
  seen twice in one file is imported once (an error says where).
- **Money**: ``amount``/``currency`` are ``originalAmount``/``originalCurrency`` where FTS
  gives both, else ``amountUSD`` in USD. ``usd_amount`` is always ``amountUSD``; the rate
  (USD per unit) is derived as amountUSD / originalAmount. FTS's own ``exchangeRate``
  (units of the currency per USD) is kept in ``extra`` beside it. Numbers are parsed as
  Decimal straight from the JSON text: nothing passes through float.
- **Parties**: the first ``Organization`` of sourceObjects/destinationObjects is the
  provider/receiver (ref ``FTS-ORG-<id>``: FTS organisation ids are not IATI identifiers,
  so they get their own prefix; more than one organisation on a side is kept in ``extra``).
  A single destination ``Location`` whose name is a country gives ``recipient_country``
  (ISO alpha-2, see :mod:`importers.countries`); every location is kept in ``extra``.
  Plan, Cluster, GlobalCluster, Emergency, Project and UsageYear objects go to ``extra``
  as ``<side>_<type>`` = ``id:name; ...``.
- **Chains**: ``parentFlowId`` -> ``parent_external_ids`` (the ``flow_parent`` table);
  ``childFlowIds`` are kept in ``extra`` (each child names its parent itself).
- **Classification**: ``grandBargainEarmarkingType`` -> ``earmarking`` 1-4 (unearmarked,
  softly, earmarked, tightly; the most restrictive if several); ``flowType`` (standard,
  parked, pass-through, carryover), ``boundary``, ``onBoundary``, ``keywords``, ``method``,
  ``contributionType``, ``newMoney`` go to ``extra``; ``humanitarian`` is true.
- **Dates**: ``date`` -> value and transaction date; ``decisionDate``,
  ``firstReportedDate``, ``budgetYear``, ``createdAt``, ``updatedAt`` -> ``extra``.

Other FTS responses (plan overview, groupby totals, location lists) hold no flows; they
are refused as a whole with a message saying what they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, BinaryIO

from fundtrack.hookspecs import hookimpl
from fundtrack.money import AmountError, parse_amount
from fundtrack.plugins import ImportContext
from fundtrack.records import (
    FileRejected,
    FlowKind,
    FlowRecord,
    Issue,
    OrgRef,
    Record,
    Severity,
)
from importers.countries import iso2_for_name

REPORTING_ORG = OrgRef(ref="XM-OCHA-FTS", name="OCHA Financial Tracking Service")
ORG_PREFIX = "FTS-ORG-"
RATE_QUANTUM = Decimal("1e-10")

STATUS_KINDS = {
    "paid": FlowKind.DISBURSEMENT,
    "commitment": FlowKind.OUTGOING_COMMITMENT,
    "pledge": FlowKind.OUTGOING_PLEDGE,
}
EARMARKING = {"unearmarked": 1, "softly earmarked": 2, "earmarked": 3, "tightly earmarked": 4}
FLOW_TYPES = {"standard": "standard", "parked": "parked", "pass through": "pass-through",
              "pass-through": "pass-through", "carryover": "carryover"}
EXTRA_OBJECT_TYPES = ("Plan", "Cluster", "GlobalCluster", "Emergency", "Project", "UsageYear")

_JSON_START = re.compile(rb'^(\xef\xbb\xbf)?\s*\{')
_FLOWS = re.compile(rb'"flows"\s*:\s*\[')
_FLOW_FIELDS = re.compile(rb'"(amountUSD|sourceObjects|destinationObjects)"\s*:')
_NON_FLOW = re.compile(rb'"(report3|fundingTotals|totalRevisedReqs|revisedRequirements)"\s*:')


def _text(value: Any) -> str | None:
    """A JSON scalar as text (Decimals keep their digits), ``None`` for null/empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None


def _day(value: Any) -> date | None:
    text = _text(value)
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _objects(flow: dict[str, Any], side: str) -> list[dict[str, Any]]:
    objs = flow.get(side) or []
    return [o for o in objs if isinstance(o, dict)] if isinstance(objs, list) else []


def _label(obj: dict[str, Any]) -> str:
    return f"{_text(obj.get('id')) or ''}:{_text(obj.get('name')) or ''}"


class _FlowReader:
    """Turns one FTS flow object into a record or an issue."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def warn(self, where: str, message: str, code: str) -> None:
        self.issues.append(Issue(Severity.WARNING, message, where, code))

    def amount(self, value: Any, field: str, where: str) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, (bool, dict, list)):
            self.warn(where, f"{field} is not a number; ignored", "bad-amount")
            return None
        try:
            return parse_amount(_text(value))
        except AmountError as exc:
            self.warn(where, f"{field}: {exc}; ignored", "bad-amount")
            return None

    def org(self, objs: list[dict[str, Any]]) -> OrgRef:
        orgs = [o for o in objs if o.get("type") == "Organization"]
        if not orgs:
            return OrgRef()
        first = orgs[0]
        ident = _text(first.get("id"))
        return OrgRef(ref=f"{ORG_PREFIX}{ident}" if ident else None, name=_text(first.get("name")))

    def flow(self, raw: Any, index: int) -> FlowRecord | Issue:
        ident = _text(raw.get("id")) if isinstance(raw, dict) else None
        where = f"data.flows[{index}]" + (f" (id {ident})" if ident else "")
        if not isinstance(raw, dict):
            return Issue(Severity.ERROR, "flow is not a JSON object; skipped", where, "bad-flow")
        if not ident:
            return Issue(Severity.ERROR, "flow has no id; skipped", where, "no-identifier")
        status = (_text(raw.get("status")) or "").lower()
        kind = STATUS_KINDS.get(status)
        if kind is None:
            return Issue(Severity.ERROR, f"unknown flow status {status or None!r} (expected paid, "
                         "commitment or pledge); skipped", where, "bad-status")
        usd = self.amount(raw.get("amountUSD"), "amountUSD", where)
        original = self.amount(raw.get("originalAmount"), "originalAmount", where)
        currency = (_text(raw.get("originalCurrency")) or "").upper() or None
        extra: dict[str, str] = {}
        rate: Decimal | None = None
        fts_rate = self.amount(raw.get("exchangeRate"), "exchangeRate", where)
        if fts_rate is not None:
            extra["fts_exchange_rate"] = format(fts_rate, "f")
        if original is not None and currency and len(currency) == 3 and currency.isalpha():
            amount, cur = original, currency
            if usd is not None:
                if original != 0:
                    rate = (usd / original).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)
                elif fts_rate:
                    rate = (Decimal(1) / fts_rate).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)
        elif usd is not None:
            amount, cur, rate = usd, "USD", Decimal(1)
            if currency and currency != "USD":
                extra["original_currency"] = currency
                self.warn(where, f"originalCurrency {currency} without originalAmount; kept in USD "
                          "(amountUSD)", "no-original-amount")
        else:
            return Issue(Severity.ERROR, "flow has neither amountUSD nor originalAmount with "
                         "originalCurrency; skipped", where, "no-value")
        sources = _objects(raw, "sourceObjects")
        dests = _objects(raw, "destinationObjects")
        provider = self.org(sources)
        receiver = self.org(dests)
        if provider.ref is None:
            self.warn(where, "no source organisation in sourceObjects", "no-provider")
        if receiver.ref is None:
            self.warn(where, "no destination organisation in destinationObjects", "no-receiver")
        for side, objs in (("source", sources), ("destination", dests)):
            orgs = [o for o in objs if o.get("type") == "Organization"]
            if orgs:
                first = orgs[0]
                types = first.get("organizationTypes") or []
                if types:
                    extra[f"{side}_organization_types"] = "; ".join(str(t) for t in types)
                if len(orgs) > 1:
                    extra[f"{side}_organizations"] = "; ".join(_label(o) for o in orgs)
            locs = [o for o in objs if o.get("type") == "Location"]
            if locs:
                extra[f"{side}_locations"] = "; ".join(_label(o) for o in locs)
            for otype in EXTRA_OBJECT_TYPES:
                found = [o for o in objs if o.get("type") == otype]
                if found:
                    extra[f"{side}_{otype.lower()}"] = "; ".join(_label(o) for o in found)
        country = None
        dest_locs = [o for o in dests if o.get("type") == "Location"]
        if len(dest_locs) == 1:
            country = iso2_for_name(_text(dest_locs[0].get("name")))
        earmarking = None
        gb = raw.get("grandBargainEarmarkingType")
        if isinstance(gb, list) and gb:
            extra["grand_bargain_earmarking"] = "; ".join(str(g) for g in gb)
            levels = [EARMARKING.get(str(g).strip().lower()) for g in gb]
            if None in levels:
                self.warn(where, f"unknown Grand Bargain earmarking type in {gb!r}; kept in extra",
                          "bad-earmarking")
            known = [lv for lv in levels if lv is not None]
            earmarking = max(known) if known else None
        ftype = _text(raw.get("flowType"))
        if ftype:
            extra["flow_type"] = FLOW_TYPES.get(ftype.lower(), ftype)
        keywords = raw.get("keywords")
        if isinstance(keywords, list) and keywords:
            extra["keywords"] = "; ".join(str(k) for k in keywords)
        children = raw.get("childFlowIds")
        if isinstance(children, list) and children:
            extra["child_flow_ids"] = ",".join(str(c) for c in children)
        for key, name in (("boundary", "boundary"), ("onBoundary", "on_boundary"),
                          ("method", "method"), ("contributionType", "contribution_type"),
                          ("newMoney", "new_money"), ("budgetYear", "budget_year"),
                          ("decisionDate", "decision_date"),
                          ("firstReportedDate", "first_reported_date"),
                          ("createdAt", "created_at"), ("updatedAt", "updated_at"),
                          ("versionId", "version_id")):
            value = _text(raw.get(key))
            if value is not None:
                extra[name] = value
        for key in ("decision_date", "first_reported_date"):
            if key in extra and _day(extra[key]):
                extra[key] = str(_day(extra[key]))
        details = raw.get("reportDetails")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            d = details[0]
            extra["reported_by"] = "; ".join(
                x for x in (_text(d.get("organization")), _text(d.get("sourceType")),
                            _text(d.get("reportChannel"))) if x)
        parent = _text(raw.get("parentFlowId"))
        when = _day(raw.get("date"))
        if raw.get("date") and when is None:
            self.warn(where, f"date {str(raw.get('date'))[:30]!r} is not an ISO date; ignored",
                      "bad-date")
        return FlowRecord(
            kind=kind, amount=amount, currency=cur, value_date=when, transaction_date=when,
            provider=provider, receiver=receiver, description=_text(raw.get("description")),
            ref=_text(raw.get("refCode")), external_id=ident, reporting_org=REPORTING_ORG,
            recipient_country=country, earmarking=earmarking, humanitarian=True,
            usd_amount=usd, usd_rate=rate, parent_external_ids=[parent] if parent else [],
            extra=extra, location=where,
        )


class FtsImporter:
    """OCHA FTS API v1 flow-search JSON (one page per file)."""

    name = "fts"
    version = "1.0.0"
    title = "OCHA FTS API v1 flow search JSON (custom-search pages)"

    def sniff(self, head: bytes, filename: str) -> float | None:
        if not _JSON_START.match(head):
            return None
        if _FLOWS.search(head) and _FLOW_FIELDS.search(head):
            return 0.95
        if _NON_FLOW.search(head):
            return 0.5  # an FTS flow-endpoint response without flows: claimed to refuse it clearly
        return None

    def parse(self, stream: BinaryIO, context: ImportContext) -> Iterator[Record | Issue]:
        """Stream the flows one at a time (``ijson``): memory does not grow with the file."""
        state = _Walk()
        reader = _FlowReader()
        seen: set[str] = set()
        for i, raw in enumerate(state.flows(stream)):
            item = reader.flow(raw, i)
            yield from reader.issues
            reader.issues.clear()
            if isinstance(item, FlowRecord):
                assert item.external_id is not None
                if item.external_id in seen:
                    yield Issue(Severity.ERROR, f"flow id {item.external_id} appears twice in this "
                                "file; the first is kept", item.location, "duplicate-flow")
                    continue
                seen.add(item.external_id)
            yield item
        if state.body_kind == "list":
            raise FileRejected("this is an FTS list response (locations, organisations, plans ...), "
                               "not a flow search", "data")
        if state.body_kind != "map":
            raise FileRejected("not an FTS flow search: no data object", "data")
        if state.flows_kind is None:
            raise FileRejected(self._what(state.data_keys) + "; fundtrack imports FTS flow "
                               "searches (/v1/public/fts/flow?... or custom-search without "
                               "groupby)", "data")
        if state.flows_kind != "list":
            raise FileRejected("data.flows is not a list", "data.flows")
        if not state.n_flows:
            raise FileRejected("this FTS flow search holds no flows (data.flows is empty)",
                               "data.flows")
        next_link = _text(state.meta.get("nextLink"))
        if next_link:
            yield Issue(Severity.WARNING,
                        f"this file is one page of a longer search ({state.n_flows} of "
                        f"{_text(state.meta.get('count')) or '?'} flows); import the other pages "
                        f"too (next: {next_link})", "meta.nextLink", "partial-search")

    @staticmethod
    def _what(body: set[str]) -> str:
        if "report3" in body or "requirements" in body:
            return ("this is an FTS grouped (groupby) response: funding and requirement totals by "
                    "cluster, not individual flows")
        if "plans" in body or "totals" in body:
            return "this is an FTS plan overview/progress response: plan totals, not flows"
        return f"this FTS response holds no flows (data has {', '.join(sorted(body)[:6])})"


def _as_utf8(stream: BinaryIO) -> BinaryIO:
    """The stream as UTF-8 (JSON may be UTF-16 or UTF-32, RFC 8259's older forms; the
    streaming parser reads UTF-8 only), recoded chunk by chunk."""
    import codecs
    import io

    head = stream.read(4)
    boms = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
            (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    enc = next((name for bom, name in boms if head.startswith(bom)), None)
    if enc is None:
        # no BOM: the pattern of NUL bytes around the first character (RFC 4627, 3)
        nul = tuple(i < len(head) and head[i] == 0 for i in range(4))
        enc = {(True, True, True, False): "utf-32-be", (False, True, True, True): "utf-32-le",
               (True, False, True, False): "utf-16-be", (False, True, False, True): "utf-16-le",
               }.get(nul)
    if enc is None:
        return io.BufferedReader(_Chain(head, stream))  # type: ignore[arg-type]
    decoder = codecs.getincrementaldecoder(enc)("strict")

    def chunks() -> Iterator[bytes]:
        yield decoder.decode(head).encode()
        while data := stream.read(64 * 1024):
            yield decoder.decode(data).encode()
        yield decoder.decode(b"", final=True).encode()

    return io.BufferedReader(_Chain(b"", chunks()))  # type: ignore[arg-type]


class _Chain:
    """A raw reader over some first bytes and then a stream or an iterator of chunks."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self.buf = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    closed = False

    def readinto(self, b: Any) -> int:
        while not self.buf:
            if hasattr(self.rest, "read"):
                self.buf = self.rest.read(len(b))
                if not self.buf:
                    return 0
            else:
                chunk = next(self.rest, None)  # a chunk may be empty: only None ends
                if chunk is None:
                    return 0
                self.buf = chunk
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


#: Deeper than any FTS response (a flow is about 5 levels deep); deeper is refused.
MAX_JSON_DEPTH = 64


class _Walk:
    """One pass over the JSON events: yields each ``data.flows`` item as a Python value and
    notes what else the document holds (the shape of ``data``, ``meta``'s scalars).

    Nothing but one flow at a time is built, so a 200 MB file costs no more memory than
    its largest flow. Nesting deeper than :data:`MAX_JSON_DEPTH` is refused (the standard
    ``json`` module raised RecursionError on a deeply nested file: an internal error).
    """

    def __init__(self) -> None:
        self.top_kind: str | None = None
        self.body_kind: str | None = None
        self.flows_kind: str | None = None
        self.data_keys: set[str] = set()
        self.meta: dict[str, Any] = {}
        self.n_flows = 0
        self.read = 0
        self.newlines = 0
        self.last_newline = 0

    def _counting(self, stream: BinaryIO) -> Any:
        walk = self

        class Counting:
            def read(self, n: int = -1) -> bytes:
                data = stream.read(n)
                if data and walk.read == 0 and data.startswith(b"\xef\xbb\xbf"):
                    data = data[3:]  # a UTF-8 byte-order mark
                    walk.read = 3
                nl = data.rfind(b"\n")
                if nl >= 0:
                    walk.newlines += data.count(b"\n")
                    walk.last_newline = walk.read + nl + 1
                walk.read += len(data)
                return data
        return Counting()

    def where(self) -> str:
        """Where reading had got to (the parser reads ahead by up to 16 KiB)."""
        return f"line {self.newlines + 1}, column {self.read - self.last_newline + 1}"

    def flows(self, stream: BinaryIO) -> Iterator[Any]:
        import ijson

        stream = _as_utf8(stream)

        depth = 0
        builder: Any = None
        try:
            for prefix, event, value in ijson.parse(self._counting(stream), buf_size=16 * 1024):
                if event in ("start_map", "start_array"):
                    depth += 1
                    if depth > MAX_JSON_DEPTH:
                        raise FileRejected(f"JSON nested more than {MAX_JSON_DEPTH} levels deep; "
                                           "no FTS response is, so the file is refused",
                                           f"{self.where()} ({(prefix or 'top level')[:60]})")
                elif event in ("end_map", "end_array"):
                    depth -= 1
                if builder is not None:
                    builder.event(event, value)
                    if depth == 3:  # the flow is complete (top, data, flows)
                        yield builder.value
                        self.n_flows += 1
                        builder = None
                    continue
                kind = {"start_map": "map", "start_array": "list"}.get(event, "scalar")
                if prefix == "data.flows.item":
                    builder = ijson.ObjectBuilder()
                    builder.event(event, value)
                    if kind == "scalar":
                        yield builder.value
                        self.n_flows += 1
                        builder = None
                elif prefix == "" and event != "map_key" and self.top_kind is None:
                    self.top_kind = kind
                elif prefix == "data" and event == "map_key":
                    if len(self.data_keys) < 100:
                        self.data_keys.add(value)
                elif prefix == "data" and self.body_kind is None and event != "map_key":
                    self.body_kind = kind if self.top_kind == "map" else None
                elif prefix == "data.flows" and self.flows_kind is None and event != "map_key":
                    self.flows_kind = kind if self.body_kind == "map" else None
                elif (prefix.startswith("meta.") and prefix.count(".") == 1 and kind == "scalar"
                      and self.top_kind == "map" and len(self.meta) < 20):
                    self.meta[prefix[5:]] = value
        except ijson.JSONError as exc:
            reason = str(exc).split("\n", 1)[0].removeprefix("b'")
            raise FileRejected(f"malformed JSON: {reason}", self.where()) from None



FTS = FtsImporter()


@hookimpl
def fundtrack_importers() -> list[Any]:
    return [FTS]
