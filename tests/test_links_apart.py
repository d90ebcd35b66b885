"""Links to another activity and links of an activity to itself are counted apart.

On the 13 real D-Portal pages, 848 provider-/receiver-activity-ids name the activity they
are reported in (UNDP's page alone: 753); they resolve by construction and trace nothing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from sqlalchemy import func, select

from fundtrack.accounting import reportcard
from fundtrack.api.testing import Api
from fundtrack.derived.trail import links
from fundtrack.derived.trail.tables import TrailLink
from fundtrack.ingest.pipeline import import_file
from tests.conftest import SHARED

PAGES = sorted((SHARED / "iati-activity" / "dportal-covid19-2021").glob("*.xml"))


def independent(paths: list[Path]) -> dict[str, int]:
    roots = [ET.parse(p).getroot() for p in paths]
    reported = {a.findtext("iati-identifier").strip() for r in roots
                for a in r.iter("iati-activity")}
    out = {"to_other": 0, "to_self": 0, "broken": 0}

    def count(ref: str, me: str) -> None:
        if ref == me:
            out["to_self"] += 1
        else:
            out["to_other" if ref in reported else "broken"] += 1

    for r in roots:
        for act in r.iter("iati-activity"):
            me = act.findtext("iati-identifier").strip()
            for t in act.findall("transaction"):
                for tag, at in (("provider-org", "provider-activity-id"),
                                ("receiver-org", "receiver-activity-id")):
                    el = t.find(tag)
                    ref = (el.get(at) or "").strip() if el is not None else ""
                    if ref:
                        count(ref, me)
            for ra in act.findall("related-activity"):
                ref = (ra.get("ref") or "").strip()
                if ref:
                    count(ref, me)
    return out


def test_self_links_are_counted_apart_on_real_pages(engine, db_url: str) -> None:
    for p in PAGES:
        assert import_file(engine, p).status == "applied"
    want = independent(PAGES)
    with engine.connect() as c:
        got = links.link_summary(c)
        undp = links.link_summary(c, "XM-DAC-41114", ("provider-activity", "receiver-activity"))
    assert got == want
    assert want["to_self"] == 848 and undp["to_self"] == 753
    api = Api(db_url).query("{ linkSummary { toOtherActivities toOwnActivity broken } }")
    assert api["linkSummary"] == {"toOtherActivities": want["to_other"],
                                  "toOwnActivity": want["to_self"], "broken": want["broken"]}


def test_360giving_grants_make_no_link_to_themselves(engine) -> None:
    path = SHARED / "360giving/grantnav-sample_data-2016/baring.json"
    assert import_file(engine, path).status == "applied"
    with engine.connect() as c:
        n = c.execute(select(func.count()).select_from(TrailLink)).scalar_one()
    assert n == 0


SELF = """<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="2.03">
 <iati-activity default-currency="USD">
  <iati-identifier>XM-SELF-A1</iati-identifier>
  <reporting-org ref="XM-SELF" type="10"><narrative>Donor</narrative></reporting-org>
  <title><narrative>Programme</narrative></title>
  <transaction><transaction-type code="3"/><transaction-date iso-date="2020-03-01"/>
   <value value-date="2020-03-01">100</value>
   <receiver-org ref="XM-SELF" receiver-activity-id="XM-SELF-A1"/></transaction>
  <transaction><transaction-type code="3"/><transaction-date iso-date="2020-04-01"/>
   <value value-date="2020-04-01">200</value>
   <receiver-org ref="XM-NGO" receiver-activity-id="XM-NGO-P1"/></transaction>
 </iati-activity>
 <iati-activity default-currency="USD">
  <iati-identifier>XM-NGO-P1</iati-identifier>
  <reporting-org ref="XM-NGO" type="22"><narrative>NGO</narrative></reporting-org>
  <title><narrative>Project</narrative></title>
 </iati-activity>
</iati-activities>
"""


def test_card_traceability_counts_only_links_to_other_activities(engine, tmp_path: Path) -> None:
    f = tmp_path / "self.xml"
    f.write_text(SELF)
    assert import_file(engine, f).status == "applied"
    with engine.connect() as c:
        card = reportcard.donor_card(c, "XM-SELF", 2020)
    tr = card.item("traceability")
    assert (tr.numerator, tr.denominator) == (1, 2)
    assert tr.note == ("1 link to another activity; 1 link only to their own activity "
                       "(resolves by construction, traces nothing: not counted)")
