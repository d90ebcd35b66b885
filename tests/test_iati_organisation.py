"""IATI organisation files: the organisation and its budgets/expenditure, exactly.

Expected values come from an independent reading of the XML with ``xml.etree`` (no
lxml, no importer code): per budget kind and currency, the count and exact sum, and
every line's period, status and recipient.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack.ingest.pipeline import import_file, revert_batch
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from tests.conftest import SHARED

ORG_FILES = sorted((SHARED / "iati-organisation").glob("*.xml")) + [
    SHARED / "iati-example/2.03/organisation-standard-example-annotated.xml"]
KINDS = ("total-budget", "recipient-org-budget", "recipient-country-budget",
         "recipient-region-budget", "total-expenditure")


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    for n in el.findall("narrative"):
        if (n.text or "").strip():
            return n.text.strip()
    return (el.text or "").strip() or None


def read_org_file(path: Path) -> dict[str, dict]:
    """{org ref: {name, currency, lines: Counter of line tuples, groups}} from the XML."""
    out: dict[str, dict] = {}
    for org in ET.parse(path).getroot().iter("iati-organisation"):
        ref = org.find("organisation-identifier").text.strip()
        default = org.get("default-currency")
        lines: Counter = Counter()
        groups: dict[tuple[str, str], list] = {}
        for child in org:
            if child.tag not in KINDS:
                continue
            kind = child.tag.replace("-", "_")
            value = child.find("value")
            currency = (value.get("currency") or default).upper()
            amount = Decimal(value.text.strip())
            g = groups.setdefault((kind, currency), [0, Decimal(0)])
            g[0] += 1
            g[1] += amount
            start, end = child.find("period-start"), child.find("period-end")
            country, region = child.find("recipient-country"), child.find("recipient-region")
            recipient = child.find("recipient-org")
            lines[(kind, currency, amount,
                   start.get("iso-date") if start is not None else None,
                   end.get("iso-date") if end is not None else None,
                   child.get("status"),
                   country.get("code") if country is not None else None,
                   region.get("code") if region is not None else None,
                   recipient.get("ref") if recipient is not None else None)] += 1
        out[ref] = {"name": _text(org.find("name")), "currency": default, "lines": lines,
                    "groups": {k: tuple(v) for k, v in groups.items()}}
    return out


def ledger_org(engine, ref: str, *, current_only: bool = True) -> dict:
    b = m.Budget
    where = [b.organisation_ref == ref, b.activity_id.is_(None)]
    if current_only:
        where.append(b.superseded_by.is_(None))
    with engine.connect() as c:
        groups = {(k, cur): (n, s) for k, cur, n, s in c.execute(
            select(b.kind, b.currency, func.count(), money_sum(b.amount)).where(*where)
            .group_by(b.kind, b.currency))}
        lines = Counter(
            (k, cur, amt, s.isoformat() if s else None, e.isoformat() if e else None, st, co, re_,
             rr)
            for k, cur, amt, s, e, st, co, re_, rr in c.execute(
                select(b.kind, b.currency, b.amount, b.period_start, b.period_end, b.status,
                       b.recipient_country, b.recipient_region, b.receiver_ref).where(*where)))
        org = c.execute(select(m.Organisation.name, m.Organisation.default_currency)
                        .where(m.Organisation.ref == ref)).one()
    return {"groups": groups, "lines": lines, "name": org.name, "currency": org.default_currency}


def test_shared_organisation_files_are_there():
    assert len(ORG_FILES) == 4


@pytest.mark.parametrize("path", ORG_FILES, ids=lambda p: p.name)
def test_organisation_file_matches_independent_count(engine, path: Path):
    expected = read_org_file(path)
    result = import_file(engine, path)
    assert result.status == "applied", result.summary()
    assert result.importer == "iati"
    assert result.counts["organisations"] == len(expected)
    assert result.counts["budgets"] == sum(sum(e["lines"].values()) for e in expected.values())
    for ref, exp in expected.items():
        got = ledger_org(engine, ref)
        assert got["groups"] == exp["groups"]
        assert got["lines"] == exp["lines"]
        assert (got["name"], got["currency"]) == (exp["name"], exp["currency"])
        for _, total in got["groups"].values():
            assert isinstance(total, Decimal)


def test_world_bank_ida_totals_written_down(engine):
    """IATI_ORG.xml: IDA (44002) reported by the World Bank (44000); sums from xml.etree."""
    path = SHARED / "iati-organisation/IATI_ORG.xml"
    exp = read_org_file(path)["44002"]["groups"]
    assert {k: n for k, (n, _) in exp.items()} == {
        ("total_budget", "USD"): 4, ("total_expenditure", "USD"): 4,
        ("recipient_country_budget", "USD"): 290, ("recipient_region_budget", "USD"): 12}
    import_file(engine, path)
    assert ledger_org(engine, "44002")["groups"] == exp
    with engine.connect() as c:
        publisher = c.execute(select(m.ImportBatch.publisher_ref)).scalar_one()
    # the reporting organisation, and the organisation the file describes (and changes)
    assert publisher == "44000,44002"


def test_reimport_is_unchanged_and_a_new_version_replaces_the_old(engine, tmp_path: Path):
    src = SHARED / "iati-organisation/asian-dev-bank-org.xml"
    ref = "XM-DAC-46004"
    first = import_file(engine, src)
    before = ledger_org(engine, ref)
    assert import_file(engine, src).status == "unchanged"
    assert ledger_org(engine, ref) == before

    # The publisher's next file: the same organisation without its last country budget.
    tree = ET.parse(src)
    org = tree.getroot().find("iati-organisation")
    dropped = org.findall("recipient-country-budget")[-1]
    org.remove(dropped)
    newer = tmp_path / "asian-dev-bank-org-v2.xml"
    tree.write(newer, encoding="utf-8", xml_declaration=True)
    second = import_file(engine, newer)
    assert second.status == "applied", second.summary()
    after = ledger_org(engine, ref)
    assert after["lines"] == read_org_file(newer)[ref]["lines"]
    n_before = sum(before["lines"].values())
    assert sum(after["lines"].values()) == n_before - 1
    # nothing deleted: the old rows are kept, marked as replaced by the new batch
    with engine.connect() as c:
        replaced = c.execute(select(func.count()).select_from(m.Budget)
                             .where(m.Budget.superseded_by == second.batch_id)).scalar_one()
    assert replaced == n_before

    revert_batch(engine, second.batch_id)
    assert ledger_org(engine, ref)["lines"] == before["lines"]
    assert first.batch_id is not None


def test_broken_organisation_file_writes_nothing(engine, tmp_path: Path):
    src = SHARED / "iati-organisation/IATI_ORG.xml"
    broken = tmp_path / "IATI_ORG-truncated.xml"
    broken.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    result = import_file(engine, broken)
    assert result.status == "rejected"
    assert result.issues and result.issues[0].location.startswith("line ")
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Budget)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 0


def test_copy_of_example_under_another_name_is_unchanged(engine, tmp_path: Path):
    """Idempotence is by content, not file name."""
    src = SHARED / "iati-organisation/3fi-org.xml"
    copy = tmp_path / "renamed.xml"
    shutil.copyfile(src, copy)
    assert import_file(engine, src).status == "applied"
    assert import_file(engine, copy).status == "unchanged"
    got = ledger_org(engine, "DK-CVR-31378028")
    assert got["groups"] == {("total_budget", "DKK"): (1, Decimal("23993333"))}
    assert got["name"] == "3F"
