"""IATI activity and organisation XML (2.01, 2.02, 2.03; legacy 1.0x mapped on the way in).

Streams with ``lxml.etree.iterparse`` and clears each activity once read, so memory stays
flat in file size. The parser is hardened: no entity resolution, no network, no DTD
loading, ``huge_tree`` off, and any DOCTYPE is refused (IATI files never need one).

What real files do and what we do about it:

- ``<value>`` without ``@currency``: the activity's ``@default-currency`` (no currency at
  all: the flow is kept without one, so it gets no USD, and a warning says where);
- empty ``@significance`` on a policy marker: kept as "not given";
- 1.0x letter codes (``IF``, ``C``, ``D``, ``E`` ...) in 2.0x files: mapped to 1-10;
- activities of one version inside a file of another (D-Portal, aggregators): each
  activity is read by its own ``@iati-activities:version`` when it carries one;
- 1.0x files: imported; role names (Funding ...) and vocabulary names (DAC) mapped to
  the 2.0x codes, plain-text titles read where 2.0x has ``<narrative>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any, BinaryIO

from lxml import etree

from fundtrack.hookspecs import hookimpl
from fundtrack.ingest.codelists import legacy_code
from fundtrack.ingest.filesafety import xml_without_doctype
from fundtrack.money import AmountError, parse_amount
from fundtrack.plugins import ImportContext
from fundtrack.records import (
    ActivityRecord,
    BudgetRecord,
    Coded,
    FileRejected,
    FlowRecord,
    Issue,
    OrganisationRecord,
    OrgRef,
    PolicyMarker,
    Record,
    Severity,
    flow_kind_from_code,
)

DPORTAL_VERSION = "{http://d-portal.org/xmlns/iati-activities}version"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ROOT_RE = re.compile(rb"<\s*iati-(activities|organisations)[\s>/]")

#: Versions of the activity standard published since 2011 ("1.0" is how the US
#: Government, the EU and IATI's own Datastore fixtures write 1.00).
KNOWN_VERSIONS = re.compile(r"^(1|1\.0|1\.0[0-5]|2\.0[1-3])$")
DATE_FIELDS = {"1": "start_planned", "2": "start_actual", "3": "end_planned", "4": "end_actual"}
EARMARK_LETTERS = {
    **dict.fromkeys("ABC", 1), **dict.fromkeys("DEF", 2), **dict.fromkeys("GH", 3),
    **dict.fromkeys("IJKL", 4),
}
ORG_BUDGET_KINDS = {
    "total-budget": "total_budget",
    "recipient-org-budget": "recipient_org_budget",
    "recipient-country-budget": "recipient_country_budget",
    "recipient-region-budget": "recipient_region_budget",
    "total-expenditure": "total_expenditure",
}


def secure_iterparse(stream: BinaryIO, tags: tuple[str, ...]) -> Any:
    """``iterparse`` with every dangerous feature off; one place for the settings."""
    return etree.iterparse(
        stream,
        events=("start", "end"),
        tag=tags,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=False,
    )


def text_of(el: Any) -> str | None:
    """The human text of an element: its first non-empty narrative, else its own text."""
    if el is None:
        return None
    for child in el:
        if child.tag == "narrative":
            t = (child.text or "").strip()
            if t:
                return t
    t = (el.text or "").strip()
    return t or None


def attr(el: Any, name: str) -> str | None:
    v = el.get(name)
    if v is None:
        return None
    v = v.strip()
    return v or None


class _Reader:
    """Reads one file; holds the per-file state (version, issue sink, positions)."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.file_version: str | None = None

    # -- small parsers that report instead of failing --------------------------------

    def warn(self, where: str, message: str, code: str = "invalid") -> None:
        self.issues.append(Issue(Severity.WARNING, message, where, code))

    def code(self, codelist: str, value: str | None, where: str, what: str) -> str | None:
        """``value`` as a code of ``codelist``: 1.0x text values and codelist names
        ("Multilateral", "DAC", "Untied") mapped; anything else kept as reported and
        warned about (never a reason to drop the record)."""
        code, known = legacy_code(codelist, value)
        if not known:
            self.warn(where, f"{what} {value[:40]!r} is not in the IATI {codelist} codelist "
                      "(nor a 1.0x name for one of its codes); kept as reported",
                      "unknown-code")
        return code

    def org_type(self, el: Any, where: str, what: str) -> str | None:
        return self.code("OrganisationType", attr(el, "type"), where, f"{what} type")

    def date_of(self, value: str | None, where: str) -> date | None:
        if not value:
            return None
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            self.warn(where, f"not an ISO date: {value[:30]!r}; ignored", "bad-date")
            return None

    def percentage(self, el: Any, where: str) -> Decimal | None:
        raw = el.get("percentage")
        if raw is None or not raw.strip():
            return None
        try:
            return parse_amount(raw)
        except AmountError as exc:
            self.warn(where, f"percentage {exc}; ignored", "bad-percentage")
            return None

    def currency_of(self, raw: str | None, default: str | None, where: str) -> str | None:
        cur = (raw or "").strip().upper() or default
        if cur is None:
            self.warn(where, "no currency on the value and no default-currency", "no-currency")
            return None
        if len(cur) != 3 or not cur.isalpha():
            self.warn(where, f"currency {cur[:10]!r} is not an ISO 4217 code; kept without one",
                      "bad-currency")
            return None
        return cur

    # -- activities ----------------------------------------------------------------------

    def activity(self, el: Any, where: str) -> ActivityRecord | Issue:
        version = (el.get(DPORTAL_VERSION) or attr(el, "version") or self.file_version
                   or "").strip()
        ident_el = el.find("iati-identifier")
        identifier = (ident_el.text or "").strip() if ident_el is not None else ""
        if not identifier:
            return Issue(Severity.ERROR, "activity has no iati-identifier; skipped with its "
                         "transactions and budgets", where, "no-identifier",
                         {"activities": 1, "flows": len(el.findall("transaction")),
                          "budgets": len(el.findall("budget"))
                          + len(el.findall("planned-disbursement"))})
        rep = el.find("reporting-org")
        rep_ref = attr(rep, "ref") if rep is not None else None
        if not rep_ref:
            # Kept (its money is real) but flagged: it cannot be matched to a publisher, so
            # only an admin may import it and links to its publisher will not resolve.
            self.warn(where, f"activity {identifier} has no reporting-org/@ref; imported "
                      "without a reporting organisation reference", "no-reporting-org")
        default_currency = (attr(el, "default-currency") or "").upper() or None
        if default_currency and not (len(default_currency) == 3 and default_currency.isalpha()):
            # Not a reason to lose the activity: its values without @currency are kept
            # without a currency (no USD), as when no default is given.
            self.warn(where, f"default-currency {default_currency[:20]!r} is not an ISO 4217 "
                      "code; ignored", "bad-currency")
            default_currency = None
        act = ActivityRecord(
            identifier=identifier,
            reporting_org=OrgRef(ref=rep_ref, name=text_of(rep) if rep is not None else None,
                                 type=self.org_type(rep, where, "reporting-org")
                                 if rep is not None else None),
            default_currency=default_currency,
            humanitarian=attr(el, "humanitarian") in ("1", "true"),
            last_updated=attr(el, "last-updated-datetime"),
            version=version or None,
            location=where,
        )
        hierarchy = attr(el, "hierarchy")
        if hierarchy and hierarchy.isdigit() and len(hierarchy) <= 9:
            act.hierarchy = int(hierarchy)
        elif hierarchy and hierarchy.isdigit():
            self.warn(where, f"hierarchy {hierarchy[:20]!r} is not a small whole number; ignored",
                      "bad-hierarchy")
        defaults: dict[str, Any] = {"aid_type": None, "earmarking": None}
        transactions: list[tuple[Any, int]] = []
        budgets: list[tuple[Any, int, str]] = []
        counters = {"transaction": 0, "budget": 0, "planned-disbursement": 0}
        for child in el:
            tag = child.tag
            if tag == "transaction":
                counters[tag] += 1
                transactions.append((child, counters[tag]))
            elif tag == "title":
                act.title = text_of(child)
            elif tag == "description":
                if act.description is None or attr(child, "type") in (None, "1", "general"):
                    act.description = act.description or text_of(child)
            elif tag == "activity-status":
                act.status = self.code("ActivityStatus", attr(child, "code") or text_of(child),
                                       where, "activity-status")
            elif tag == "activity-date":
                dtype = self.code("ActivityDateType", attr(child, "type"), where,
                                  "activity-date type") or ""
                fname = DATE_FIELDS.get(dtype)
                if fname:
                    setattr(act, fname, self.date_of(attr(child, "iso-date"), where))
            elif tag == "recipient-country":
                code = attr(child, "code")
                if code:
                    act.recipient_countries.append(
                        Coded(code.upper(), None, self.percentage(child, where)))
            elif tag == "recipient-region":
                code = attr(child, "code")
                if code:
                    act.recipient_regions.append(Coded(
                        code, self.code("RegionVocabulary", attr(child, "vocabulary"), where,
                                        "recipient-region vocabulary") or "1",
                        self.percentage(child, where)))
            elif tag == "sector":
                code = attr(child, "code")
                if code:
                    act.sectors.append(Coded(code, self.vocab(child, "SectorVocabulary", where),
                                             self.percentage(child, where)))
            elif tag == "policy-marker":
                code = attr(child, "code")
                if code:
                    act.policy_markers.append(PolicyMarker(
                        code, self.vocab(child, "PolicyMarkerVocabulary", where),
                        attr(child, "significance"), attr(child, "vocabulary-uri")))
            elif tag == "participating-org":
                act.participating_orgs.append(OrgRef(
                    ref=attr(child, "ref"), name=text_of(child),
                    type=self.org_type(child, where, "participating-org"),
                    activity_id=attr(child, "activity-id"),
                    role=self.code("OrganisationRole", attr(child, "role"), where,
                                   "participating-org role")))
            elif tag == "related-activity":
                ref = attr(child, "ref")
                if ref:
                    act.related_activities.append((self.code(
                        "RelatedActivityType", attr(child, "type"), where,
                        "related-activity type") or "", ref))
            elif tag == "tag":
                code = attr(child, "code")
                if code:
                    act.tags.append(Coded(code, attr(child, "vocabulary")))
            elif tag == "default-aid-type":
                self.aid_type(child, defaults, where)
            elif tag == "default-flow-type":
                defaults["flow_type"] = self.coded_child("FlowType", child, where)
            elif tag == "default-finance-type":
                defaults["finance_type"] = self.coded_child("FinanceType", child, where)
            elif tag == "default-tied-status":
                defaults["tied_status"] = self.coded_child("TiedStatus", child, where)
            elif tag in ("budget", "planned-disbursement"):
                counters[tag] += 1
                budgets.append((child, counters[tag], tag))
        for tx, n in transactions:
            flow = self.transaction(tx, f"{where}/transaction[{n}] (line {tx.sourceline})",
                                    act, defaults)
            if isinstance(flow, Issue):
                self.issues.append(flow)
            else:
                act.flows.append(flow)
        for b, n, tag in budgets:
            budget = self.budget(b, f"{where}/{tag}[{n}] (line {b.sourceline})", tag,
                                 default_currency)
            if isinstance(budget, Issue):
                self.issues.append(budget)
            else:
                act.budgets.append(budget)
        return act

    def vocab(self, el: Any, codelist: str, where: str) -> str:
        v = attr(el, "vocabulary")
        if v is None:
            return "1"
        return self.code(codelist, v, where, f"{el.tag} vocabulary") or "1"

    def coded_child(self, codelist: str, el: Any, where: str) -> str | None:
        """The code of a classification element (``@code``, or its text in 1.0x files)."""
        return self.code(codelist, attr(el, "code") or text_of(el), where, el.tag)

    def aid_type(self, el: Any, into: dict[str, Any], where: str) -> None:
        code = attr(el, "code") or text_of(el)
        if not code:
            return
        vocab = attr(el, "vocabulary") or "1"
        if vocab == "1":
            into["aid_type"] = self.code("AidType", code, where, el.tag)
        elif vocab == "2" and code[:1].isdigit():
            into["earmarking"] = int(code[:1])
        elif vocab == "3":
            head = code[:1].upper()
            if head.isdigit():
                into["earmarking"] = int(head)
            elif head in EARMARK_LETTERS:
                into["earmarking"] = EARMARK_LETTERS[head]

    def org_ref(self, el: Any, activity_attr: str, where: str) -> OrgRef:
        return OrgRef(ref=attr(el, "ref"), name=text_of(el),
                      type=self.org_type(el, where, el.tag),
                      activity_id=attr(el, activity_attr))

    def transaction(self, tx: Any, where: str, act: ActivityRecord,
                    defaults: dict[str, Any]) -> FlowRecord | Issue:
        kind_code = None
        value_el = None
        tx_date = None
        fields: dict[str, Any] = {
            "aid_type": defaults.get("aid_type"), "earmarking": defaults.get("earmarking"),
        }
        provider = OrgRef()
        receiver = OrgRef()
        description = None
        sector = None
        country = region = channel = None
        flow_type = defaults.get("flow_type")
        finance_type = defaults.get("finance_type")
        tied = defaults.get("tied_status")
        for child in tx:
            tag = child.tag
            if tag == "transaction-type":
                kind_code = attr(child, "code") or text_of(child)
            elif tag == "value":
                value_el = child
            elif tag == "transaction-date":
                tx_date = attr(child, "iso-date")
            elif tag == "provider-org":
                provider = self.org_ref(child, "provider-activity-id", where)
            elif tag == "receiver-org":
                receiver = self.org_ref(child, "receiver-activity-id", where)
            elif tag == "description":
                description = text_of(child)
            elif tag == "sector" and sector is None:
                code = attr(child, "code")
                if code:
                    sector = Coded(code, self.vocab(child, "SectorVocabulary", where))
            elif tag == "recipient-country":
                country = (attr(child, "code") or "").upper() or None
            elif tag == "recipient-region":
                region = attr(child, "code")
            elif tag == "aid-type":
                self.aid_type(child, fields, where)
            elif tag == "flow-type":
                flow_type = self.coded_child("FlowType", child, where) or flow_type
            elif tag == "finance-type":
                finance_type = self.coded_child("FinanceType", child, where) or finance_type
            elif tag == "tied-status":
                tied = self.coded_child("TiedStatus", child, where) or tied
            elif tag == "disbursement-channel":
                channel = self.coded_child("DisbursementChannel", child, where)
        kind = flow_kind_from_code(kind_code)
        if kind is None and kind_code:
            named, known = legacy_code("TransactionType", kind_code)
            kind = flow_kind_from_code(named) if known else None
        if kind is None:
            return Issue(Severity.ERROR, f"unknown transaction-type code {kind_code!r}; skipped",
                         where, "bad-transaction-type")
        if value_el is None:
            return Issue(Severity.ERROR, "transaction has no value; skipped", where, "no-value")
        try:
            amount = parse_amount(value_el.text)
        except AmountError as exc:
            return Issue(Severity.ERROR, f"value: {exc}; skipped", where, "bad-amount")
        currency = self.currency_of(value_el.get("currency"), act.default_currency, where)
        tdate = self.date_of(tx_date, where)
        vdate = self.date_of(attr(value_el, "value-date"), where) or tdate
        humanitarian = attr(tx, "humanitarian")
        return FlowRecord(
            kind=kind, amount=amount, currency=currency, value_date=vdate,
            transaction_date=tdate, provider=provider, receiver=receiver,
            description=description, ref=attr(tx, "ref"), sector=sector,
            recipient_country=country, recipient_region=region,
            aid_type=fields["aid_type"], earmarking=fields["earmarking"],
            flow_type=flow_type, finance_type=finance_type, tied_status=tied,
            disbursement_channel=channel,
            humanitarian=None if humanitarian is None else humanitarian in ("1", "true"),
            location=where,
        )

    def budget(self, el: Any, where: str, tag: str, default_currency: str | None,
               kind: str | None = None) -> BudgetRecord | Issue:
        value_el = el.find("value")
        if value_el is None:
            return Issue(Severity.ERROR, f"{tag} has no value; skipped", where, "no-value",
                         {"budgets": 1})
        try:
            amount = parse_amount(value_el.text)
        except AmountError as exc:
            return Issue(Severity.ERROR, f"value: {exc}; skipped", where, "bad-amount",
                         {"budgets": 1})
        start = el.find("period-start")
        end = el.find("period-end")
        rec = BudgetRecord(
            kind=kind or tag.replace("-", "_"),
            amount=amount,
            currency=self.currency_of(value_el.get("currency"), default_currency, where),
            period_start=self.date_of(attr(start, "iso-date") if start is not None else None, where),
            period_end=self.date_of(attr(end, "iso-date") if end is not None else None, where),
            value_date=self.date_of(attr(value_el, "value-date"), where),
            budget_type=self.code("BudgetType", attr(el, "type"), where, f"{tag} type"),
            status=self.code("BudgetStatus", attr(el, "status"), where, f"{tag} status"),
            location=where,
        )
        for child in el:
            if child.tag == "provider-org":
                rec.provider = self.org_ref(child, "provider-activity-id", where)
            elif child.tag in ("receiver-org", "recipient-org"):
                rec.receiver = self.org_ref(child, "receiver-activity-id", where)
            elif child.tag == "recipient-country":
                rec.recipient_country = attr(child, "code")
            elif child.tag == "recipient-region":
                rec.recipient_region = attr(child, "code")
        return rec

    # -- organisations -------------------------------------------------------------------

    def organisation(self, el: Any, where: str) -> OrganisationRecord | Issue:
        ident = el.find("organisation-identifier")
        if ident is None:
            ident = el.find("iati-identifier")  # 1.0x
        ref = (ident.text or "").strip() if ident is not None else ""
        rep = el.find("reporting-org")
        if not ref and rep is not None:
            ref = attr(rep, "ref") or ""
        if not ref:
            return Issue(Severity.ERROR, "organisation has no organisation-identifier; skipped",
                         where, "no-identifier",
                         {"organisations": 1,
                          "budgets": sum(1 for c in el if c.tag in ORG_BUDGET_KINDS)})
        currency = (attr(el, "default-currency") or "").upper() or None
        org = OrganisationRecord(
            ref=ref, name=text_of(el.find("name")), default_currency=currency, location=where,
            reporting_org=OrgRef(ref=attr(rep, "ref"), name=text_of(rep),
                                 type=self.org_type(rep, where, "reporting-org"))
            if rep is not None else None,
        )
        if org.reporting_org is not None and org.reporting_org.ref == ref:
            org.type = org.reporting_org.type
        counters: dict[str, int] = {}
        for child in el:
            kind = ORG_BUDGET_KINDS.get(child.tag)
            if kind is None:
                continue
            counters[child.tag] = counters.get(child.tag, 0) + 1
            b = self.budget(child, f"{where}/{child.tag}[{counters[child.tag]}] "
                            f"(line {child.sourceline})", child.tag, currency, kind)
            if isinstance(b, Issue):
                self.issues.append(b)
            else:
                org.budgets.append(b)
        return org


class IatiImporter:
    """IATI XML: activity files (2.01-2.03, 1.0x) and organisation files."""

    name = "iati"
    version = "1.0.0"
    title = "IATI activity and organisation XML (2.01, 2.02, 2.03; legacy 1.0x)"

    def sniff(self, head: bytes, filename: str) -> float | None:
        return 1.0 if ROOT_RE.search(head) else None

    def parse(self, stream: BinaryIO, context: ImportContext) -> Iterator[Record | Issue]:
        reader = _Reader()
        tags = ("iati-activities", "iati-activity", "iati-organisations", "iati-organisation")
        n_act = n_org = 0
        root_seen = False
        # Before libxml2 sees a byte of a DTD. The original (seekable) stream is kept to say
        # where the file ends when the parser stops early.
        checked = xml_without_doctype(stream)
        try:
            for event, el in secure_iterparse(checked, tags):
                if event == "start":
                    if not root_seen:
                        root_seen = True
                        self._check_root(el, reader)
                        reader.file_version = attr(el, "version")
                        context.meta["generated"] = attr(el, "generated-datetime")
                    continue
                if el.tag == "iati-activity":
                    n_act += 1
                    where = f"/iati-activities/iati-activity[{n_act}] (line {el.sourceline})"
                    record = reader.activity(el, where)
                elif el.tag == "iati-organisation":
                    n_org += 1
                    where = f"/iati-organisations/iati-organisation[{n_org}] (line {el.sourceline})"
                    record = reader.organisation(el, where)
                else:
                    continue
                yield from reader.issues
                reader.issues.clear()
                yield record
                el.clear()
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
        except etree.XMLSyntaxError as exc:
            raise FileRejected(*plain_xml_error(exc, stream)) from None
        if not root_seen:
            raise FileRejected("no <iati-activities> or <iati-organisations> root element", "")

    @staticmethod
    def _check_root(el: Any, reader: _Reader) -> None:
        docinfo = el.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            raise FileRejected(
                "DOCTYPE declarations are not allowed in IATI files (entity and DTD attacks)",
                "line 1")
        version = (attr(el, "version") or "").strip()
        if version and not KNOWN_VERSIONS.match(version):
            # Never a reason to refuse a file: read it by its major version and say so.
            reader.warn(f"line {el.sourceline}", f"IATI version {version[:20]!r} is not one "
                        "published (1.0, 1.01-1.05, 2.01-2.03); read as "
                        + ("1.0x" if version.startswith("1") else "2.0x"), "unknown-version")


def plain_xml_error(exc: etree.XMLSyntaxError, stream: Any) -> tuple[str, str]:
    """(message, location) for a parse error, in words a reporter can act on.

    libxml2 appends "line L, column C" to its messages and the exception carries the
    position again: the location is given once. When the error is where the file's bytes
    end (a truncated download or upload), it says the file ends early instead of naming
    the half-read attribute or tag libxml2 complains about.
    """
    line, col = exc.position if exc.position else (exc.lineno, 0)
    msg = re.sub(r",?\s*line \d+, column \d+\s*$", "", (exc.msg or "").strip())
    where = f"line {line}, column {col}"
    end = _end_of_text(stream)
    if end is not None and (line > end[0] or (line == end[0] and col >= end[1] - 1)):
        return "malformed XML: the file ends early (truncated?)", where
    return f"malformed XML: {msg}", where


def _end_of_text(stream: Any) -> tuple[int, int] | None:
    """(line, length) of the file's last non-blank line, or None if it cannot be re-read.

    Reads in 1 MiB chunks: a file of one 100 MB line costs no more memory than any other.
    """
    try:
        stream.seek(0)
        line, length, last = 1, 0, (0, 0)
        while chunk := stream.read(1 << 20):
            pieces = chunk.split(b"\n")
            for i, piece in enumerate(pieces):
                if i:
                    line, length = line + 1, 0
                length += len(piece)
                if piece.strip():
                    last = (line, length - (len(piece) - len(piece.rstrip())))
        return last
    except (OSError, ValueError, AttributeError):
        return None


IATI = IatiImporter()


@hookimpl
def fundtrack_importers() -> list[Any]:
    return [IATI]
