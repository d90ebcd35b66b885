"""WPS data that people manage: NAPs (costed and domestic budget lines), stipulations and
fund targets through GraphQL (admin), the CLI and CSV import (all or nothing, errors by
row and field), with the change history; NAP coverage on real shared files."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from fundtrack.accounting import wps, wps_csv
from fundtrack.accounting.tables import NationalActionPlan, WpsChange
from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from fundtrack.ingest.pipeline import import_file
from tests.conftest import SHARED

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "wps-example"
#: Every shared activity file that reports money to Liberia or Georgia.
FILES = ["dportal-covid19-2021/dportal_118.xml", "dportal-covid19-2021/dportal_125.xml",
         "dportal-covid19-2021/dportal_26.xml", "dportal-covid19-2021/dportal_36.xml",
         "dportal-covid19-2021/dportal_39.xml", "dportal-covid19-2021/dportal_8.xml",
         "iati-flattener-fixtures/fcdo-activity.xml",
         "iati-flattener-fixtures/gdihub-activity.xml",
         "iom-oipa-export/example_203_references.xml"]

PLAN = """query($c: String!) { nationalActionPlan(code: $c) { code country title periodStart
  periodEnd costedUsd fundedUsd coverage coverageNote unlinkedUsd unlinkedMovements movements
  reports domesticBudgetUsd lines { code pillar costedUsd costedAmount costedCurrency
  fundedUsd flows rule } budgetLines { code year amount currency amountUsd lineCode }
  funders { ref usd } } }"""
SAVE_NAP = """mutation($i: NationalActionPlanInput!) { saveNationalActionPlan(input: $i) {
  status record errors { code field message } } }"""
SAVE_LINE = """mutation($i: NapLineInput!) { saveNapLine(input: $i) {
  status record errors { field message } } }"""
SAVE_BUDGET = """mutation($i: NapBudgetLineInput!) { saveNapBudgetLine(input: $i) {
  status record errors { field message } } }"""
SAVE_STIP = """mutation($i: StipulationInput!) { saveStipulation(input: $i) {
  status record errors { field message } } }"""
SAVE_TARGET = """mutation($i: FundTargetInput!) { saveFundTarget(input: $i) {
  status record errors { field message } } }"""
CHANGES = """query($n: String, $e: String) { wpsChanges(napCode: $n, entity: $e) {
  actor action entity entityKey via before after } }"""


def _cli(monkeypatch: pytest.MonkeyPatch, db_url: str, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("FUNDTRACK_DATABASE_URL", db_url)
    from fundtrack.cli import main
    from fundtrack.config import get_settings

    clear = getattr(get_settings, "cache_clear", lambda: None)
    clear()
    try:
        r = CliRunner().invoke(main, list(args))
    finally:
        clear()
    return r.exit_code, r.output


def _errors(payload: dict) -> list[tuple[str, str]]:
    return [(e["field"], e["message"]) for e in payload["errors"]]


def test_example_csv_on_real_files_gives_the_hand_counted_coverage(engine, db_url,
                                                                   monkeypatch):
    for f in FILES:
        assert import_file(engine, SHARED / "iati-activity" / f).status == "applied"
    code, out = _cli(monkeypatch, db_url, "naps", "import", *map(str, sorted(
        EXAMPLE.glob("*.csv"))), "--by", "analyst")
    assert code == 0, out
    assert out.splitlines()[-1] == ("imported: 1 fund_targets created, 13 nap_lines created, "
                                    "3 naps created")
    api = Api(db_url)
    lr = api.query(PLAN, {"c": "LR-2019"})["nationalActionPlan"]
    # Expected values computed once with a separate xml.etree script over the same nine
    # files (no fundtrack code): transactions of type 1 or 3 placed in LR (the
    # transaction's recipient-country, else the activity's), value date 2019-2023, the
    # last file's version of each activity; line = first of 15220 / 15180 / 15170,15150 /
    # 72010,73010 among the activity's DAC sectors. All are USD except 5 CAD and 6 GBP
    # reports, converted at the ECB rate of their value date (currency_converter, rate to
    # 1e-10, amount to the cent); none of them matches a line. No LR report in these files
    # mirrors another, so 28 reports are 28 movements.
    lines = {ln["code"]: (D(ln["fundedUsd"]), ln["flows"]) for ln in lr["lines"]}
    assert lines == {"1": (D("5134781.1671891925"), 5), "2": (D(0), 0),
                     "3": (D("2203297.2588779725"), 4), "4": (D("359575.1548910388"), 4),
                     "5": (D(0), 0)}
    assert (D(lr["unlinkedUsd"]), lr["unlinkedMovements"]) == (D("11717549.1904378687"), 15)
    assert (lr["movements"], lr["reports"]) == (28, 28)
    assert D(lr["fundedUsd"]) == D("7697653.5809582038")
    assert lr["coverage"] is None
    assert lr["coverageNote"] == "insufficient data: the plan states no cost"
    assert lr["funders"] == [{"ref": "SE-0", "usd": "7697653.5809582038"}]
    assert (lr["periodStart"], lr["periodEnd"]) == ("2019-01-01", "2023-12-31")
    ge = api.query(PLAN, {"c": "GE-2022"})["nationalActionPlan"]
    total = {ln["code"]: ln for ln in ge["lines"]}["TOTAL"]
    assert (total["costedAmount"], total["costedCurrency"], total["costedUsd"]) == (
        "27680907", "GEL", "10426877")
    assert (ge["coverage"], ge["movements"]) == (None, 0)
    assert ge["coverageNote"].startswith("insufficient data: no movement of money to GE")
    # importing the same files again changes nothing and records nothing
    with engine.connect() as c:
        before = c.execute(select(func.count()).select_from(WpsChange)).scalar_one()
    code, out = _cli(monkeypatch, db_url, "naps", "import", *map(str, sorted(
        EXAMPLE.glob("*.csv"))))
    assert out.splitlines()[-1] == ("imported: 1 fund_targets unchanged, 13 nap_lines "
                                    "unchanged, 3 naps unchanged")
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(WpsChange)).scalar_one() == before
    changes = api.query(CHANGES, {"n": "LR-2019"})["wpsChanges"]
    assert len(changes) == 6 and {c["actor"] for c in changes} == {"cli:analyst"}
    assert changes[-1]["entityKey"] == "LR-2019" and changes[-1]["action"] == "create"
    assert changes[-1]["via"].startswith("csv:naps.csv sha256:")


def test_mutations_validate_fields_and_record_who_changed_what(engine, db_url):
    _, admin = create_token(engine, "admin", label="analyst")
    _, reporter = create_token(engine, "reporter", ["GB-GOV-1"])
    api = Api(db_url)
    nap = {"code": "GE-2018", "country": "ge", "title": "Georgia NAP 2018-2020",
           "periodStart": "2018", "periodEnd": "2020"}
    assert "needs an API token" in api.error(SAVE_NAP, {"i": nap})
    assert "needs an admin token" in api.error(SAVE_NAP, {"i": nap}, token=reporter)
    bad = api.query(SAVE_NAP, {"i": {**nap, "code": "GE 2018", "country": "XX",
                                     "periodStart": "2021", "periodEnd": "2020-13-01"}},
                    token=admin)["saveNationalActionPlan"]
    assert bad["status"] is None and _errors(bad) == [
        ("code", "'GE 2018' is not a code: letters, digits and . _ / - only, starting with "
                 "a letter or digit, at most 60 characters"),
        ("country", "'XX' is not an ISO 3166-1 alpha-2 country code (IATI Country "
                    "codelist), e.g. GE, LR, JO"),
        ("period_end", "'2020-13-01' is not a year (2018) or a date (2018-01-01)")]
    ok = api.query(SAVE_NAP, {"i": nap}, token=admin)["saveNationalActionPlan"]
    assert ok["status"] == "created" and ok["record"]["country"] == "GE"
    assert (ok["record"]["period_start"], ok["record"]["period_end"]) == (
        "2018-01-01", "2020-12-31")
    end = api.query(SAVE_NAP, {"i": {"code": "GE-2018", "periodEnd": "2017"}},
                    token=admin)["saveNationalActionPlan"]
    assert _errors(end) == [("period_end", "2017-12-31 is before the start 2018-01-01")]

    line = {"napCode": "GE-2018", "code": "3", "pillar": "protection",
            "costedAmount": "250000.50", "costedCurrency": "USD", "sectors": ["15180"]}
    bad = api.query(SAVE_LINE, {"i": {**line, "pillar": "peace", "costedAmount": "1,000",
                                      "sectors": ["1518"], "keywords": ["women"]}},
                    token=admin)["saveNapLine"]
    assert _errors(bad) == [
        ("pillar", "'peace' is not one of participation, protection, prevention, "
                   "relief-and-recovery, cross-cutting"),
        ("costed_amount", "not a decimal number: '1,000' (write it without thousands "
                          "separators: 1000)"),
        ("sectors", "'1518' is not a 5-digit DAC sector code (e.g. 15170)")]
    kw = api.query(SAVE_LINE, {"i": {**line, "sectors": None, "keywords": ["women"]}},
                   token=admin)["saveNapLine"]
    assert _errors(kw) == [("keywords", "keywords only narrow a code condition: give "
                                        "sectors, sector_ranges or tags too (a word alone "
                                        "matches too much)")]
    ok = api.query(SAVE_LINE, {"i": line}, token=admin)["saveNapLine"]
    assert ok["status"] == "created"
    assert (ok["record"]["costed_amount"], ok["record"]["costed_usd"]) == ("250000.50",
                                                                           "250000.50")
    gel = api.query(SAVE_LINE, {"i": {**line, "costedAmount": "100", "costedCurrency": "GEL"}},
                    token=admin)["saveNapLine"]
    assert _errors(gel) == [("costed_usd", "no ECB reference rate for GEL on 2018-01-01: "
                                           "give the USD figure the source states")]
    eur = api.query(SAVE_LINE, {"i": {**line, "costedAmount": "100000",
                                      "costedCurrency": "EUR"}}, token=admin)["saveNapLine"]
    # at the plan's first day, 2018-01-01: no ECB rate that day, the last before it is
    # 29 December 2017, 1 EUR = 1.1993 USD (ECB reference rates)
    assert (eur["status"], eur["record"]["costed_usd"]) == ("updated", "119930.00")

    budget = {"napCode": "GE-2018", "code": "MOD", "year": 2019, "amount": "80000",
              "currency": "USD", "institution": "Ministry of Defence", "lineCode": "3"}
    bad = api.query(SAVE_BUDGET, {"i": {**budget, "year": 2024, "lineCode": "9",
                                        "amount": "-5"}}, token=admin)["saveNapBudgetLine"]
    assert _errors(bad) == [("year", "2024 is outside the plan's period 2018-2020"),
                            ("line_code", "plan GE-2018 has no line '9'"),
                            ("amount", "-5 is negative")]
    ok = api.query(SAVE_BUDGET, {"i": budget}, token=admin)["saveNapBudgetLine"]
    assert (ok["status"], ok["record"]["amount_usd"]) == ("created", "80000")
    plan = api.query(PLAN, {"c": "GE-2018"})["nationalActionPlan"]
    assert (plan["domesticBudgetUsd"], plan["budgetLines"][0]["lineCode"]) == ("80000", "3")

    # stipulations and fund targets
    stip = {"donorRef": "GB-GOV-1", "recipientRef": "FT-FUND-PBF", "year": 2020,
            "kind": "pillar", "target": "protection", "minShare": "0.2"}
    bad = api.query(SAVE_STIP, {"i": {**stip, "kind": "pillar", "target": "peace",
                                      "minShare": "1.5", "year": 1900}},
                    token=admin)["saveStipulation"]
    assert _errors(bad) == [
        ("target", "'peace' is not one of participation, protection, prevention, "
                   "relief-and-recovery"),
        ("year", "year 1900 is out of range (1950-2100)"),
        ("min_share", "1.5 is not a share between 0 and 1 (15% is 0.15)")]
    ok = api.query(SAVE_STIP, {"i": stip}, token=admin)["saveStipulation"]
    sid = ok["record"]["id"]
    again = api.query(SAVE_STIP, {"i": {**stip, "minShare": "0.25"}}, token=admin)
    assert again["saveStipulation"]["status"] == "updated"
    assert again["saveStipulation"]["record"]["id"] == sid  # same natural key: edited
    assert api.query("{ stipulations }")["stipulations"][0]["min_share"] == "0.25"
    bad = api.query(SAVE_TARGET, {"i": {"fundRef": "XM-NOT-A-FUND",
                                        "genderPrincipalShare": "0.3"}}, token=admin)
    assert _errors(bad["saveFundTarget"]) == [
        ("fund_ref", "'XM-NOT-A-FUND' is not a pooled fund in the registry (add it with "
                     "`fundtrack funds add` or upsertFund)")]
    ok = api.query(SAVE_TARGET, {"i": {"fundRef": "FT-FUND-WPHF", "genderPrincipalShare":
                                       "0.3", "source": "test"}}, token=admin)
    assert ok["saveFundTarget"]["status"] == "created"
    gone = api.query(f"mutation {{ deleteStipulation(id: {sid}) {{ status }} }}", token=admin)
    assert gone["deleteStipulation"]["status"] == "deleted"

    # the history: who, what, before and after; a deleted plan's history stays
    api.query("mutation { deleteNationalActionPlan(code: \"GE-2018\") { status } }",
              token=admin)
    changes = api.query(CHANGES, {"n": "GE-2018"})["wpsChanges"]
    assert [(c["action"], c["entity"], c["entityKey"]) for c in changes] == [
        ("delete", "nap", "GE-2018"), ("create", "nap_budget_line", "GE-2018/budget/MOD/2019"),
        ("update", "nap_line", "GE-2018/3"), ("create", "nap_line", "GE-2018/3"),
        ("create", "nap", "GE-2018")]
    token_id = changes[0]["actor"].split()[0]
    assert {c["actor"] for c in changes} == {f"{token_id} analyst"}
    upd = changes[2]
    assert (upd["before"]["costed_usd"], upd["after"]["costed_usd"]) == ("250000.50",
                                                                          "119930.00")
    assert [ln["code"] for ln in changes[0]["before"]["lines"]] == ["3"]
    stips = api.query(CHANGES, {"e": "stipulation"})["wpsChanges"]
    assert [c["action"] for c in stips] == ["delete", "update", "create"]
    assert (stips[1]["before"]["min_share"], stips[1]["after"]["min_share"]) == ("0.2", "0.25")
    assert api.query(PLAN, {"c": "GE-2018"})["nationalActionPlan"] is None


LINES_BAD = """nap_code,code,pillar,costed_amount,costed_currency,costed_usd,sectors,keywords
XX-2019,1,prevention,100000,USD,,15220,
XX-2019,2,peace,12.345,USD,,15180,
XX-2019,3,protection,5000,GEL,,15180,
XX-2019,1,prevention,1,USD,,,women
NOPE,1,protection,,,,,
"""


def test_csv_import_is_all_or_nothing_and_names_every_row_and_field(engine, db_url,
                                                                    monkeypatch):
    naps = b"code,country,title,period_start,period_end\nXX-2019,LR,Test plan,2019,2023\n"
    files = [("naps.csv", naps), ("lines.csv", LINES_BAD.encode())]
    with engine.connect() as c, c.begin() as tx:
        with pytest.raises(wps_csv.Rejected) as exc:
            wps_csv.import_csv(c, files, wps.Actor("t"))
        tx.rollback()
    assert [str(e) for e in exc.value.errors] == [
        "lines.csv: row 3, field pillar: 'peace' is not one of participation, protection, "
        "prevention, relief-and-recovery, cross-cutting",
        "lines.csv: row 3, field costed_amount: 12.345 has more than 2 decimals",
        "lines.csv: row 4, field costed_usd: no ECB reference rate for GEL on 2019-01-01: "
        "give the USD figure the source states",
        "lines.csv: row 5, field code: same nap_code/code as row 2",
        "lines.csv: row 6, field nap_code: no National Action Plan with code 'NOPE'"]
    with engine.connect() as c:  # nothing was written: not the plan, not its good line
        assert c.execute(select(func.count()).select_from(NationalActionPlan)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(WpsChange)).scalar_one() == 0


def test_cli_reports_errors_and_manages_funds(engine, db_url, monkeypatch, tmp_path):
    (tmp_path / "naps.csv").write_bytes(b"code,country,title,period_start,period_end\n"
                                        b"XX-2019,LR,Test plan,2019,2023\n")
    (tmp_path / "lines.csv").write_text(LINES_BAD, encoding="utf-8")
    (tmp_path / "odd.csv").write_text("nap_code,code,colour\nXX-2019,1,red\n", encoding="utf-8")
    code, out = _cli(monkeypatch, db_url, "naps", "import", str(tmp_path / "naps.csv"),
                     str(tmp_path / "lines.csv"), str(tmp_path / "odd.csv"))
    assert code == 1
    assert "lines.csv: row 3, field costed_amount: 12.345 has more than 2 decimals" in out
    assert ("odd.csv: row 1, field header: not a WPS table; closest is nap_lines (missing "
            "column(s) pillar; unknown column(s) colour); see docs/wps-data.md") in out
    assert "Error: 6 error(s); nothing was imported" in out
    code, out = _cli(monkeypatch, db_url, "naps", "list")
    assert (code, out) == (0, "")
    code, out = _cli(monkeypatch, db_url, "naps", "import", "--dry-run",
                     str(tmp_path / "naps.csv"))
    assert out.splitlines()[-1] == "dry run (nothing written): 1 naps created"
    assert _cli(monkeypatch, db_url, "naps", "list")[1] == ""

    # `fundtrack funds add` (docs/api.md, trail/funds.py) and the fund's own target
    code, out = _cli(monkeypatch, db_url, "funds", "add", "FT-FUND-SPOTLIGHT",
                     "Spotlight Initiative Fund", "--acronym", "SPOTLIGHT")
    assert (code, out.strip()) == (0, "fund FT-FUND-SPOTLIGHT: Spotlight Initiative Fund")
    code, out = _cli(monkeypatch, db_url, "funds", "target", "FT-FUND-SPOTLIGHT", "0.5",
                     "--source", "test", "--by", "alice")
    assert code == 0 and out.startswith("target of FT-FUND-SPOTLIGHT: created")
    code, out = _cli(monkeypatch, db_url, "funds", "list")
    assert "FT-FUND-SPOTLIGHT      SPOTLIGHT      Spotlight Initiative Fund  target 0.5" in out
    code, out = _cli(monkeypatch, db_url, "funds", "stipulate", "--donor", "GB-GOV-1",
                     "--recipient", "FT-FUND-SPOTLIGHT", "--kind", "country", "--target",
                     "lr", "--min-share", "0.4", "--year", "2021")
    assert code == 0, out
    code, out = _cli(monkeypatch, db_url, "funds", "stipulations")
    assert out.split(None, 1)[1].strip() == "GB-GOV-1 -> FT-FUND-SPOTLIGHT 2021 country:LR >= 0.4"
    code, out = _cli(monkeypatch, db_url, "funds", "target", "FT-FUND-SPOTLIGHT", "2")
    assert code == 1 and "field gender_principal_share: 2 is not a share between 0 and 1" in out
    code, out = _cli(monkeypatch, db_url, "naps", "history")
    lines = out.splitlines()
    assert "cli:alice create fund_target FT-FUND-SPOTLIGHT (cli)" in lines[1]


IMPORT = """mutation($f: [Upload!]!, $d: Boolean!) { importWpsCsv(files: $f, dryRun: $d) {
  status summary counts errors { field message } } }"""


def _upload(api: Api, token: str, files: dict[str, bytes], dry_run: bool) -> dict:
    ops = {"query": IMPORT, "variables": {"f": [None] * len(files), "d": dry_run}}
    fmap = {str(i): [f"variables.f.{i}"] for i in range(len(files))}
    r = api.post(data={"operations": json.dumps(ops), "map": json.dumps(fmap)},
                 files={str(i): (name, data, "text/csv")
                        for i, (name, data) in enumerate(files.items())},
                 headers={"Authorization": f"Bearer {token}", "GraphQL-Preflight": "1"})
    body = r.json()
    assert not body.get("errors"), body
    return body["data"]["importWpsCsv"]


def test_import_wps_csv_over_the_api_dry_run_then_rejected_then_applied(engine, db_url):
    _, admin = create_token(engine, "admin", label="uploader")
    api = Api(db_url)
    good = {p.name: p.read_bytes() for p in sorted(EXAMPLE.glob("*.csv"))}
    dry = _upload(api, admin, good, True)
    assert (dry["status"], dry["counts"]["naps created"], dry["errors"]) == ("dry-run", 3, [])
    assert api.query("{ nationalActionPlans { code } }")["nationalActionPlans"] == []
    broken = {**good, "nap-lines.csv": good["nap-lines.csv"].replace(
        b"GE-2018,3,protection", b"GE-2018,3,protectoin")}
    out = _upload(api, admin, broken, False)
    assert out["status"] == "rejected"
    assert [(e["field"], e["message"]) for e in out["errors"]] == [
        ("pillar", "nap-lines.csv: row 4, field pillar: 'protectoin' is not one of "
                   "participation, protection, prevention, relief-and-recovery, cross-cutting")]
    assert api.query("{ nationalActionPlans { code } }")["nationalActionPlans"] == []
    assert api.query(CHANGES, {"n": None, "e": None})["wpsChanges"] == []
    out = _upload(api, admin, good, False)
    assert (out["status"], out["summary"]) == (
        "applied", "1 fund_targets created, 13 nap_lines created, 3 naps created")
    assert [p["code"] for p in api.query("{ nationalActionPlans { code } }")[
        "nationalActionPlans"]] == ["GE-2018", "GE-2022", "LR-2019"]
