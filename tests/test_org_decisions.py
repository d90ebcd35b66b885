"""People's decisions about who is who (issue 15 item 3), on real files, through the API
and the CLI: merge, split, flag (name-only parties included), undo restoring the earlier
answers exactly, and decisions surviving ``recompute`` and a re-import.

Expected values are computed from the XML with lxml here: transactions whose provider or
receiver is named only (no ``@ref``) by a given narrative, summed exactly.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import Engine, select

from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from tests.conftest import SHARED

D = SHARED / "iati-activity"
FILES = [D / "dportal-covid19-2021/dportal_139.xml", D / "dportal-covid19-2021/dportal_125.xml",
         D / "iom-oipa-export/example_203_references.xml"]
KSRELIEF = "King Salman Humanitarian Aid & Relief Centre"  # IOM names it without a ref
SIHA = "STRATEGIC INITIATIVE FOR WOMEN IN THE HORN OF AFRICA"  # the Netherlands, no ref

AGG = """query($w: FlowWhere) { flowsAggregate(where: $w, groupBy: [CURRENCY]) {
  groups { currency count sum } } }"""
ALL = """{ flowsAggregate(groupBy: [PROVIDER, RECEIVER, REPORTING_ORG, KIND, CURRENCY]) {
  groups { provider receiver reportingOrg kind currency count sum sumUsd } } }"""
DECIDE = """mutation($i: OrganizationDecisionInput!) { decideOrganization(input: $i) {
  decision { number action subject target value reason decidedBy via undoneAt }
  errors { code field message } } }"""
UNDO = """mutation($n: Int!) { undoOrganizationDecision(input: {number: $n}) {
  decision { number undoneAt undoneBy } errors { code field message } } }"""


def named_only(role: str, name: str) -> tuple[int, Decimal]:
    """(count, exact sum) of the files' transactions whose ``role`` (provider-org or
    receiver-org) has no ref and the narrative ``name``."""
    n, total = 0, Decimal(0)
    for path in FILES:
        for t in etree.parse(str(path)).getroot().iter("transaction"):
            org = t.find(role)
            if org is None or (org.get("ref") or "").strip():
                continue
            if any((x.text or "").strip() == name for x in org.findall("narrative")):
                n += 1
                total += Decimal(t.findtext("value").strip())
    return n, total


@pytest.fixture
def loaded(engine: Engine) -> tuple[Api, str, Engine]:
    from fundtrack.ingest.pipeline import import_file

    for path in FILES:
        assert import_file(engine, path).status == "applied"
    _, token = create_token(engine, "admin", label="analyst")
    return Api(str(engine.url.render_as_string(hide_password=False))), token, engine


def _agg(api: Api, where: dict[str, Any]) -> tuple[int, Decimal]:
    groups = api.query(AGG, {"w": where})["flowsAggregate"]["groups"]
    return (sum(g["count"] for g in groups),
            sum((Decimal(g["sum"]) for g in groups if g["sum"] is not None), Decimal(0)))


def _decide(api: Api, token: str, **inp: Any) -> dict[str, Any]:
    out = api.query(DECIDE, {"i": inp}, token)["decideOrganization"]
    assert out["errors"] == [], out["errors"]
    return out["decision"]


def test_merge_a_name_only_party_survives_recompute_and_reimport_and_undoes_exactly(
        loaded: tuple[Api, str, Engine]) -> None:
    from fundtrack.derived import steps
    from fundtrack.ingest.pipeline import import_file, revert_batch
    from fundtrack.ledger import tables as m

    api, token, engine = loaded
    n, total = named_only("provider-org", KSRELIEF)
    assert (n, total) == (3, Decimal("4579341.61"))
    by_ref = {"provider": {"ref": {"_eq": "SA-KS-1"}}}
    before_all = api.query(ALL)
    assert _agg(api, by_ref) == (0, Decimal(0))  # ambiguous by name: never merged silently
    cands = api.query("{ matchCandidates(first: 100) { nodes { partyName candidateRef } } }")
    assert {"partyName": KSRELIEF, "candidateRef": "SA-KS-1"} in \
        cands["matchCandidates"]["nodes"]

    d = _decide(api, token, action="MERGE", subject=f"name:{KSRELIEF}", target="SA-KS-1",
                reason="KSrelief publishes as SA-KS-1")
    assert (d["action"], d["decidedBy"], d["via"]) == ("merge", "token:1 analyst", "api")
    assert _agg(api, by_ref) == (n, total)
    org = api.query("""{ organization(ref: "SA-KS-1") { canonical { ref }
        matches { nodes { ref name rule } } decisions { number reason } } }""")["organization"]
    assert org["canonical"]["ref"] == "SA-KS-1"
    assert {"ref": None, "name": KSRELIEF, "rule": "decision"} in org["matches"]["nodes"]
    assert [x["number"] for x in org["decisions"]] == [d["number"]]
    cands = api.query("{ matchCandidates(first: 100) { nodes { partyName candidateRef } } }")
    assert {"partyName": KSRELIEF, "candidateRef": "SA-KS-1"} not in \
        cands["matchCandidates"]["nodes"]
    # the same decision twice is refused
    again = api.query(DECIDE, {"i": {"action": "MERGE", "subject": f"name:{KSRELIEF}",
                                     "target": "SA-KS-1", "reason": "x"}}, token)
    assert again["decideOrganization"]["errors"][0]["field"] == "subject"

    with engine.begin() as conn:  # fundtrack recompute
        steps.rebuild(conn)
    assert _agg(api, by_ref) == (n, total)
    b = m.ImportBatch.__table__
    with engine.connect() as conn:
        iom = conn.execute(select(b.c.id).where(b.c.file_name.like("example_203%"))).scalar_one()
    revert_batch(engine, iom)
    assert _agg(api, by_ref) == (0, Decimal(0))  # the flows are gone with their file
    assert import_file(engine, FILES[2]).status == "applied"  # and back: the decision holds
    assert _agg(api, by_ref) == (n, total)

    undone = api.query(UNDO, {"n": d["number"]}, token)["undoOrganizationDecision"]
    assert undone["errors"] == [] and undone["decision"]["undoneBy"] == "token:1 analyst"
    assert api.query(ALL) == before_all  # every group, count and cent as before
    assert api.query(UNDO, {"n": d["number"]}, token)["undoOrganizationDecision"][
        "errors"][0]["code"] == "INVALID"


def test_flag_a_name_only_receiver_and_split_a_name_match(
        loaded: tuple[Api, str, Engine]) -> None:
    api, token, _ = loaded
    n, total = named_only("receiver-org", SIHA)
    assert (n, total) == (2, Decimal("360000"))
    wro = {"receiver": {"isWomensRightsOrg": {"_eq": True}}}
    before = _agg(api, wro)
    d = _decide(api, token, action="FLAG_WRO", subject=f"name:{SIHA}", value="true",
                reason="SIHA: a network of women's rights organisations (sihanet.org)")
    assert _agg(api, wro) == (before[0] + n, before[1] + total)
    api.query(UNDO, {"n": d["number"]}, token)
    assert _agg(api, wro) == before

    # "AECOM" (IOM names it without a ref) matches the UK company GB-COH-01846493 by name
    aecom = {"provider": {"ref": {"_eq": "GB-COH-01846493"}}}
    n, total = named_only("provider-org", "AECOM")
    assert _agg(api, aecom) == (n, total) == (1, Decimal("249410.48"))
    d = _decide(api, token, action="SPLIT", subject="name:AECOM", target="GB-COH-01846493",
                reason="the US parent is not the UK company")
    assert _agg(api, aecom) == (0, Decimal(0))
    api.query(UNDO, {"n": d["number"]}, token)
    assert _agg(api, aecom) == (n, total)


def test_decisions_need_an_admin_and_say_what_is_wrong(
        loaded: tuple[Api, str, Engine]) -> None:
    api, token, engine = loaded
    _, reporter = create_token(engine, "reporter", ["XM-DAC-7"], label="r")
    inp = {"action": "FLAG_WRO", "subject": f"name:{SIHA}", "value": "true", "reason": "x"}
    assert "admin" in api.error(DECIDE, {"i": inp}, reporter)
    assert "API token" in api.error(DECIDE, {"i": inp})
    for bad, field in (({"value": "maybe"}, "value"), ({"subject": "name:Nobody at all"},
                                                       "subject"),
                       ({"reason": " "}, "reason"), ({"action": "MERGE"}, "target")):
        out = api.query(DECIDE, {"i": {**inp, **bad}}, token)["decideOrganization"]
        assert out["decision"] is None and out["errors"][0]["field"] == field, out


def test_cli_and_a_reviewable_file_applied_twice(loaded: tuple[Api, str, Engine],
                                                  tmp_path: Path) -> None:
    from fundtrack.cli import main

    api, _, engine = loaded
    env = {"FUNDTRACK_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    run = CliRunner().invoke
    by_ref = {"provider": {"ref": {"_eq": "SA-KS-1"}}}
    n, total = named_only("provider-org", KSRELIEF)
    file = tmp_path / "decisions.toml"
    file.write_text(f'''
[[decision]]
action = "merge"
subject = "name:{KSRELIEF}"
target = "SA-KS-1"
reason = "KSrelief publishes as SA-KS-1"

[[decision]]
action = "flag_wro"
subject = "name:{SIHA}"
value = "true"
reason = "sihanet.org"
''', "utf-8")
    out = run(main, ["orgs", "apply", str(file), "--by", "ana"], env=env)
    assert out.exit_code == 0, out.output
    assert "2 decision(s) recorded, 0 already in force" in out.output
    assert _agg(api, by_ref) == (n, total)
    out = run(main, ["orgs", "apply", str(file)], env=env)
    assert "0 decision(s) recorded, 2 already in force" in out.output
    listed = run(main, ["orgs", "list"], env=env).output
    assert listed.count("via file:decisions.toml") == 2 and "cli:ana" in listed
    exported = tmp_path / "out.toml"
    assert run(main, ["orgs", "export", str(exported)], env=env).exit_code == 0
    import tomllib

    entries = tomllib.loads(exported.read_text("utf-8"))["decision"]
    assert [(e["action"], e["subject"]) for e in entries] == [
        ("merge", f"name:{KSRELIEF}"), ("flag_wro", f"name:{SIHA}")]
    out = run(main, ["orgs", "undo", "1", "--by", "ana"], env=env)
    assert out.exit_code == 0 and "undone" in out.output
    assert _agg(api, by_ref) == (0, Decimal(0))
    out = run(main, ["orgs", "set-type", "SA-KS-1", "abc", "--reason", "x"], env=env)
    assert out.exit_code != 0 and "OrganisationType" in out.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[[decision]]\naction = "merge"\nsubject = "SA-KS-1"\nreason = "x"\n')
    out = run(main, ["orgs", "apply", str(bad)], env=env)
    assert out.exit_code != 0 and "decision 1 target" in out.output


def test_set_type_and_flag_a_pooled_fund_then_undo(loaded: tuple[Api, str, Engine]) -> None:
    api, token, _ = loaded
    n, total = named_only("provider-org", KSRELIEF)
    gov = {"provider": {"type": {_EQ: "10"}}}
    pooled = {"provider": {"isPooledFund": {_EQ: True}}}
    before = api.query(ALL), _agg(api, gov), _agg(api, pooled)
    t = _decide(api, token, action="SET_TYPE", subject=f"name:{KSRELIEF}", value="10",
                reason="KSrelief is a Saudi government agency")
    p = _decide(api, token, action="FLAG_POOLED_FUND", subject=f"name:{KSRELIEF}",
                value="true", reason="mechanism test: flags follow the name-only party")
    assert _agg(api, gov) == (before[1][0] + n, before[1][1] + total)
    assert _agg(api, pooled) == (before[2][0] + n, before[2][1] + total)
    for d in (p, t):
        assert api.query(UNDO, {"n": d["number"]}, token)["undoOrganizationDecision"][
            "errors"] == []
    assert (api.query(ALL), _agg(api, gov), _agg(api, pooled)) == before
    listed = api.query("{ organizationDecisions(includeUndone: true) { totalCount "
                       "nodes { number undoneBy } } }")["organizationDecisions"]
    assert listed["totalCount"] == 2 and all(x["undoneBy"] for x in listed["nodes"])
    assert api.query("{ organizationDecisions { totalCount } }")[
        "organizationDecisions"]["totalCount"] == 0


_EQ = "_eq"


def test_merged_into_names_the_organisation_a_ref_joined(
        loaded: tuple[Api, str, Engine]) -> None:
    api, token, _ = loaded
    q = """{ organization(ref: "XM-OCHA-HPC6770") { ref canonical { ref } mergedInto { ref }
             decisions { action target } } }"""
    assert api.query(q)["organization"] == {
        "ref": "XM-OCHA-HPC6770", "canonical": {"ref": "XM-OCHA-HPC6770"},
        "mergedInto": None, "decisions": []}
    _decide(api, token, action="MERGE", subject="XM-OCHA-HPC6770", target="SA-KS-1",
            reason="OCHA's code for KSrelief")
    assert api.query(q)["organization"] == {
        "ref": "XM-OCHA-HPC6770", "canonical": {"ref": "SA-KS-1"},
        "mergedInto": {"ref": "SA-KS-1"},
        "decisions": [{"action": "merge", "target": "SA-KS-1"}]}
    page = api.get("/organization?ref=XM-OCHA-HPC6770").text
    assert 'id="org-merged"' in page and "OCHA&#39;s code for KSrelief" in page
