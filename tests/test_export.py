"""Exports: IATI 2.03 round trip on the shared files, CSV formula neutralising, JSON, CLI."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from fundtrack.api.testing import Api
from fundtrack.cli import main
from fundtrack.export import neutralise, stream
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.web.filters import FlowFilter

HOSTILE = """<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="2.03">
 <iati-activity default-currency="EUR">
  <iati-identifier>XX-TEST-1</iati-identifier>
  <reporting-org ref="XX-TEST" type="10"><narrative>=HYPERLINK("http://evil/","click")</narrative></reporting-org>
  <title><narrative>+cmd|' /C calc'!A0</narrative></title>
  <transaction>
   <transaction-type code="3"/><transaction-date iso-date="2021-03-01"/>
   <value currency="EUR" value-date="2021-03-01">-100.50</value>
   <description><narrative>@SUM(1+1)*cmd</narrative></description>
   <receiver-org ref="-XX-RECV"><narrative>-2+3</narrative></receiver-org>
  </transaction>
  <transaction>
   <transaction-type code="3"/><transaction-date iso-date="2021-04-01"/>
   <value currency="EUR" value-date="2021-04-01">1234567.891234</value>
   <description><narrative>plain text</narrative></description>
  </transaction>
 </iati-activity>
</iati-activities>
"""


def _totals(engine: Engine) -> dict[str, object]:
    f, a, b = m.Flow, m.Activity, m.Budget
    with engine.connect() as c:
        sums = {cur: Decimal(str(s)) for cur, s in c.execute(
            select(f.currency, money_sum(f.amount)).where(f.superseded_by.is_(None))
            .group_by(f.currency))}
        budget_sums = {cur: Decimal(str(s)) for cur, s in c.execute(
            select(b.currency, money_sum(b.amount)).where(b.superseded_by.is_(None),
                                                           b.activity_id.is_not(None))
            .group_by(b.currency))}
        kinds = dict(c.execute(select(f.kind, func.count()).where(f.superseded_by.is_(None))
                               .group_by(f.kind)).all())
        return {
            "activities": c.execute(select(func.count()).select_from(a).where(
                a.superseded_by.is_(None))).scalar_one(),
            "flows": sum(kinds.values()), "kinds": kinds, "sums": sums,
            "budgets": c.execute(select(func.count()).select_from(b).where(
                b.superseded_by.is_(None), b.activity_id.is_not(None))).scalar_one(),
            "budget_sums": budget_sums,
            "markers": c.execute(select(func.count()).select_from(m.PolicyMarker)).scalar_one(),
            # publishers' own vocabularies (IOM, ADB ...) keep their URI and whole code
            "marker_uris": sorted(c.execute(select(m.PolicyMarker.vocabulary_uri,
                                                   m.PolicyMarker.code, func.count())
                                            .where(m.PolicyMarker.vocabulary_uri.is_not(None))
                                            .group_by(m.PolicyMarker.vocabulary_uri,
                                                      m.PolicyMarker.code)).all()),
            "sectors": c.execute(select(func.count()).select_from(m.ActivitySector)).scalar_one(),
            "orgs": c.execute(select(func.count()).select_from(m.ParticipatingOrg)).scalar_one(),
        }


def test_iati_round_trip_into_an_empty_database(loaded_engine: Engine, engine: Engine,
                                                tmp_path: Path) -> None:
    out = tmp_path / "export.xml"
    with out.open("w", encoding="utf-8") as fh:
        for chunk in stream(loaded_engine, "iati", FlowFilter()):
            fh.write(chunk)
    result = import_file(engine, out)
    assert result.status == "applied", result.summary()
    before, after = _totals(loaded_engine), _totals(engine)
    assert before["activities"] == 2843 and before["flows"] == 18050  # the shared files
    assert after == before
    assert ("https://data.iom.int/codelist/genderpolicy.pdf", "2A", 33) in before["marker_uris"]
    assert not [i for i in result.issues if i.severity.value == "error"]


def test_iati_export_with_a_filter_keeps_only_matching_flows(loaded_url: str, loaded_engine: Engine,
                                                             engine: Engine, tmp_path: Path) -> None:
    flt = FlowFilter(year=2020, kinds=(m.FlowKind.DISBURSEMENT,))
    out = tmp_path / "export.xml"
    out.write_text("".join(stream(loaded_engine, "iati", flt)), encoding="utf-8")
    assert import_file(engine, out).status == "applied"
    api = Api(loaded_url)
    want = api.query("query($w: FlowWhere) { flowsAggregate(where: $w, groupBy: [CURRENCY]) "
                     "{ count groups { currency sum } } }", {"w": flt.graphql()})["flowsAggregate"]
    got = _totals(engine)
    assert got["flows"] == want["count"] > 0
    assert got["sums"] == {g["currency"]: Decimal(g["sum"]) for g in want["groups"]}


def test_csv_neutralises_formulas_and_keeps_amounts_numeric(engine: Engine, tmp_path: Path) -> None:
    src = tmp_path / "hostile.xml"
    src.write_text(HOSTILE, encoding="utf-8")
    assert import_file(engine, src).status == "applied"
    rows = list(csv.DictReader(io.StringIO("".join(stream(engine, "csv", FlowFilter())))))
    assert len(rows) == 2
    first, second = rows
    assert first["description"] == "'@SUM(1+1)*cmd"
    assert first["receiver_ref"] == "'-XX-RECV" and first["receiver_name"] == "'-2+3"
    assert second["description"] == "plain text"
    # amounts: plain decimal numbers, exact, never prefixed
    assert first["amount"] == "-100.50" and Decimal(first["amount"]) == Decimal("-100.50")
    assert second["amount"] == "1234567.891234"
    assert float(first["amount_usd"]) < 0 and first["currency"] == "EUR"
    for row in rows:
        for name, value in row.items():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), (name, value)
            if value.startswith("-"):
                assert name in ("amount", "amount_usd"), (name, value)
    assert neutralise("=1") == "'=1" and neutralise("a=1") == "a=1"


def test_json_export_matches_the_api(loaded_url: str, loaded_engine: Engine) -> None:
    flt = FlowFilter(year=2021, gender="1+")
    body = json.loads("".join(stream(loaded_engine, "json", flt)))
    api = Api(loaded_url)
    want = api.query("query($w: FlowWhere) { flowsAggregate(where: $w) { count groups { sumUsd } } }",
                     {"w": flt.graphql()})["flowsAggregate"]
    assert len(body["flows"]) == want["count"] > 0
    total = sum(Decimal(r["amount_usd"]) for r in body["flows"] if r["amount_usd"])
    assert total == Decimal(want["groups"][0]["sumUsd"])
    assert body["filter"] == {"year": "2021", "gender": "1+"}
    assert all(r["gender_significance"] in ("1", "2") for r in body["flows"])


def test_cli_export(loaded_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FUNDTRACK_DATABASE_URL", loaded_url)
    out = tmp_path / "x.csv"
    r = CliRunner().invoke(main, ["export", "--format", "csv", "--where", "year=2019",
                                  "--where", "kind=disbursement", "-o", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    api = Api(loaded_url)
    want = api.query('{ flowsAggregate(where: {kind: {_eq: DISBURSEMENT}, valueDate: '
                     '{_gte: "2019-01-01", _lte: "2019-12-31"}}) { count } }')
    assert len(rows) == want["flowsAggregate"]["count"] > 0
    bad = CliRunner().invoke(main, ["export", "--where", "colour=red"])
    assert bad.exit_code != 0 and "key=value" in bad.output
