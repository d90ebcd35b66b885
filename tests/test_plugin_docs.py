"""The plugin author's path, as docs/plugins.md tells it, run for real.

- the **minimal importer printed in docs/plugins.md** (the code block itself, executed)
  passes the contract kit on the example's real sample, and the kit fails the same
  importer when its stand-alone flows lose their date, ``external_id`` or reporting
  organisation (the old example had none and still passed);
- acceptance: imported, then **corrected and re-uploaded, it replaces its 97 flows**
  (97 current flows after, not 194) and no flow is left without a USD rate;
- a stand-alone flow's gender marker is stored and reaches the 1325 classification;
- ``fundtrack.hookimpl`` is exported; ``fundtrack.testing.migrated_database`` and
  ``fundtrack.db.migrate.upgrade(engine)`` migrate a test database.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import types
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

import fundtrack
from fundtrack import hookspecs
from fundtrack.accounting.items import load_items
from fundtrack.db.migrate import upgrade
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.plugins import importers, make_plugin_manager
from fundtrack.records import FlowKind, FlowRecord, OrgRef, PolicyMarker
from fundtrack.testing import ContractError, check_importer, migrated_database

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
BARING = ROOT / "examples" / "fundtrack-example-plugin" / "samples" / "baring-foundation-grants.csv"


def doc_module() -> types.ModuleType:
    """The minimal importer exactly as printed in docs/plugins.md."""
    text = DOC.read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = next(b for b in blocks if "class SimpleGrantsImporter" in b)
    mod = types.ModuleType("docs_minimal_importer")
    exec(compile(code, str(DOC), "exec"), mod.__dict__)  # noqa: S102 - our own docs
    return mod


@pytest.fixture(scope="module")
def doc_importer() -> Any:
    return doc_module().SimpleGrantsImporter()


def test_docs_minimal_importer_passes_the_contract_kit(doc_importer: Any) -> None:
    report = check_importer(doc_importer, [BARING])
    assert report.samples[0].records == 97
    assert report.samples[0].errors == 0


class Stripped:
    """The docs' importer with one stand-alone-flow field taken away."""

    def __init__(self, inner: Any, **blank: Any) -> None:
        self.inner, self.blank = inner, blank
        self.name, self.version, self.title = inner.name, inner.version, inner.title

    def sniff(self, head: bytes, filename: str) -> float | None:
        return self.inner.sniff(head, filename)

    def parse(self, stream: Any, context: Any) -> Iterator[Any]:
        for item in self.inner.parse(stream, context):
            yield dataclasses.replace(item, **self.blank) if isinstance(item, FlowRecord) else item


@pytest.mark.parametrize(("blank", "says"), [
    ({"external_id": None}, "no external_id"),
    ({"reporting_org": None}, "no reporting_org with a ref"),
    ({"reporting_org": OrgRef(name="The Baring Foundation")}, "no reporting_org with a ref"),
    ({"value_date": None, "transaction_date": None}, "no value_date or transaction_date"),
], ids=["external_id", "reporting_org", "reporting_org_without_ref", "dates"])
def test_contract_kit_fails_a_stand_alone_flow_without(doc_importer: Any, blank: dict, says: str):
    with pytest.raises(ContractError) as err:
        check_importer(Stripped(doc_importer, **blank), [BARING])
    assert says in str(err.value)
    assert "row 2" in str(err.value)  # the first data row, by its location


def corrected(tmp_path: Path) -> tuple[Path, dict[str, Decimal]]:
    """Baring's grants with every commitment raised by 1.00 GBP (a corrected report)."""
    out = io.StringIO()
    with BARING.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    sums: dict[str, Decimal] = {}
    for row in rows:
        if row["kind"] == "commitment":
            row["amount"] = str(Decimal(row["amount"]) + 1)
        sums[row["kind"]] = sums.get(row["kind"], Decimal(0)) + Decimal(row["amount"])
        writer.writerow(row)
    path = tmp_path / "baring-foundation-grants-corrected.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path, sums


def current_flows(engine) -> tuple[int, dict[str, Decimal], int]:
    with engine.connect() as c:
        live = m.Flow.superseded_by.is_(None)
        n = c.execute(select(func.count()).select_from(m.Flow).where(live)).scalar_one()
        sums = {k.name: s for k, s in c.execute(
            select(m.Flow.kind, money_sum(m.Flow.amount)).where(live).group_by(m.Flow.kind))}
        no_usd = c.execute(select(func.count()).select_from(m.Flow)
                           .where(live, m.Flow.amount_usd.is_(None))).scalar_one()
    return n, sums, no_usd


def test_corrected_reupload_replaces_instead_of_duplicating(engine, doc_importer: Any,
                                                            tmp_path: Path) -> None:
    registry = {"simple_grants": doc_importer}
    first = import_file(engine, BARING, registry=registry)
    assert first.status == "applied", first.summary()
    assert first.counts["flows"] == 97
    assert not [i for i in first.issues if i.code == "no-usd-rate"]
    path, expected = corrected(tmp_path)
    again = import_file(engine, path, registry=registry)
    assert again.status == "applied", again.summary()
    assert again.counts["flows"] == 97
    assert again.counts["replaced_flows"] == 97
    n, sums, no_usd = current_flows(engine)
    assert n == 97  # not 194
    assert sums == {"OUTGOING_COMMITMENT": expected["commitment"],
                    "DISBURSEMENT": expected["disbursement"]}
    assert no_usd == 0


def test_stand_alone_flow_gender_marker_is_stored_and_classified(engine, tmp_path: Path) -> None:
    class OneGrant:
        name, version, title = "one_grant", "1.0.0", "one marked grant"

        def sniff(self, head: bytes, filename: str) -> float | None:
            return 1.0 if head.startswith(b"one-grant") else None

        def parse(self, stream: Any, context: Any) -> Iterator[Any]:
            stream.read()
            org = OrgRef(ref="XM-TEST-1", name="Test donor")
            yield FlowRecord(kind=FlowKind.DISBURSEMENT, amount=Decimal("1000.00"), currency="EUR",
                             value_date=date(2021, 3, 1), provider=org, reporting_org=org,
                             receiver=OrgRef(name="Women's peace network"), external_id="g1",
                             policy_markers=[PolicyMarker(code="1", vocabulary="1",
                                                          significance="2")],
                             location="line 1")

    path = tmp_path / "grant.txt"
    path.write_bytes(b"one-grant\n")
    result = import_file(engine, path, registry={"one_grant": OneGrant()})
    assert result.status == "applied", result.summary()
    with engine.connect() as c:
        rows = c.execute(select(m.FlowPolicyMarker.vocabulary, m.FlowPolicyMarker.code,
                                m.FlowPolicyMarker.significance)).all()
        items = load_items(c)
    assert [tuple(r) for r in rows] == [("1", "1", "2")]
    assert len(items) == 1 and items[0].activity_id is None
    marker = items[0].marker
    assert (marker.common, marker.scale, marker.score, marker.level) == \
        ("principal", "dac", "2", "flow")


def test_hookimpl_is_exported_and_registers_a_plugin(doc_importer: Any) -> None:
    assert fundtrack.hookimpl is hookspecs.hookimpl

    class Plugin:
        @fundtrack.hookimpl
        def fundtrack_importers(self) -> list[Any]:
            return [doc_importer]

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Plugin(), name="docs-plugin")
    assert importers(pm) == {"simple_grants": doc_importer}


def test_migrated_database_helper_and_upgrade_of_an_engine(tmp_path: Path) -> None:
    with migrated_database() as engine:
        result = import_file(engine, BARING, registry={"simple_grants": doc_module()
                                                       .SimpleGrantsImporter()})
        assert result.status == "applied" and result.counts["flows"] == 97
        db_file = Path(engine.url.database)
        assert db_file.exists()
    assert not db_file.exists()  # the temp database is gone afterwards

    eng = create_engine(f"sqlite:///{tmp_path / 'plugin-test.db'}")
    upgrade(eng)  # an Engine, not only a URL
    with eng.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Flow)).scalar_one() == 0
    memory = create_engine("sqlite://")
    with pytest.raises(ValueError, match="in-memory"):
        upgrade(memory)


def test_undated_flows_are_not_blamed_on_the_ecb(engine, doc_importer: Any) -> None:
    undated = Stripped(doc_importer, value_date=None, transaction_date=None)
    result = import_file(engine, BARING, registry={"simple_grants": undated})
    assert result.status == "applied", result.summary()
    warnings = [i.message for i in result.issues if i.code == "no-usd-rate"]
    assert warnings == ["97 flow(s) in GBP have no value date, so no exchange rate could be "
                        "looked up (and the report gives none); their USD amount is left empty"]


def test_the_docs_fundtrack_plugins_sample_is_the_real_output() -> None:
    from click.testing import CliRunner

    from fundtrack.cli import main

    text = DOC.read_text("utf-8")
    sample = text.split("$ fundtrack plugins\n", 1)[1].split("```", 1)[0]
    out = CliRunner().invoke(main, ["plugins"])
    assert out.exit_code == 0, out.output
    assert out.stdout == sample


def test_docs_say_a_failing_plugin_is_reported_and_fundtrack_carries_on() -> None:
    text = " ".join(DOC.read_text("utf-8").split())
    assert "A module that fails to import does not stop fundtrack" in text
    assert "stops fundtrack from starting" not in text
