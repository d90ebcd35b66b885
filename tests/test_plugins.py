"""The plugin kit: hooks and records documented, third-party discovery, and the kit itself.

- every hook in ``fundtrack/hookspecs.py`` is documented in ``docs/plugins.md`` with its
  exact signature, and every canonical-record field in ``schema/canonical-record.md``
  (both ways: nothing documented that does not exist);
- the example plugin (its own package under ``examples/``; located by ``tests/conftest.py``
  when it is not installed) is
  found through its entry point, listed by ``fundtrack plugins``, and imports a real file
  end to end into the ledger; its own test suite passes;
- ``fundtrack.testing`` catches each broken promise it claims to check.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import inspect
import io
import re
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from fundtrack import hookspecs, records
from fundtrack.cli import main
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.plugins import ENTRY_POINT_GROUP, ImportContext, importers, plugin_of
from fundtrack.records import FlowKind, FlowRecord, Issue, Severity
from fundtrack.testing import READ_CAP, ContractError, check_importer, no_database

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
RECORD_DOC = ROOT / "schema" / "canonical-record.md"
EXAMPLE = ROOT / "examples" / "fundtrack-example-plugin"
BARING = EXAMPLE / "samples" / "baring-foundation-grants.csv"
WOLFSON = EXAMPLE / "samples" / "wolfson-foundation-grants.csv"
BAD_ROWS = EXAMPLE / "samples" / "malformed" / "bad-rows.csv"
NO_AMOUNT = EXAMPLE / "samples" / "malformed" / "no-amount-column.csv"
INSTALL_HINT = "install it: .venv/bin/pip install -e examples/fundtrack-example-plugin"

# -- documentation -------------------------------------------------------------------


def hook_specs() -> dict[str, Any]:
    return {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "fundtrack_spec")}


def documented_headings(path: Path) -> set[str]:
    """Markdown headings' code spans: ``### `fundtrack_importers() -> list[Any]` ``."""
    return set(re.findall(r"^#{2,4} `([^`]+)`", path.read_text("utf-8"), flags=re.M))


def test_there_are_hooks():
    assert "fundtrack_importers" in hook_specs()


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_hook_is_documented_with_its_signature(name: str):
    """Like datasette's test: a hook added to hookspecs.py without docs fails here."""
    fn = hook_specs()[name]
    signature = f"{name}{inspect.signature(fn)}".replace("'", "")
    assert signature in documented_headings(PLUGINS_DOC), (
        f"hook {name} is not documented in docs/plugins.md: add a heading `{signature}`")


def test_no_documented_hook_that_does_not_exist():
    hooks = {h.split("(")[0] for h in documented_headings(PLUGINS_DOC) if h.startswith("fundtrack_")}
    assert hooks == set(hook_specs())


def test_importer_protocol_is_documented():
    text = PLUGINS_DOC.read_text("utf-8")
    for member in ("name", "version", "title", "sniff(head, filename)", "parse(stream, context)",
                   "FileRejected", "--strict", "fundtrack.testing", "check_importer",
                   "ImporterContract", ENTRY_POINT_GROUP):
        assert member in text, f"docs/plugins.md does not mention {member}"


RECORD_CLASSES = [records.ActivityRecord, records.FlowRecord, records.BudgetRecord,
                  records.OrganisationRecord, records.OrgRef, records.Coded,
                  records.PolicyMarker, records.Issue]


def record_doc_sections() -> dict[str, set[str]]:
    """{class name: field names in the table under its heading} from the Markdown."""
    sections: dict[str, set[str]] = defaultdict(set)
    current = None
    for line in RECORD_DOC.read_text("utf-8").splitlines():
        heading = re.match(r"^#{2,3} `?(\w+)`?", line)
        if heading:
            current = heading.group(1)
            continue
        cell = re.match(r"^\| `(\w+)` \|", line)
        if cell and current:
            sections[current].add(cell.group(1))
    return sections


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
def test_canonical_record_fields_are_documented(cls: type):
    fields = {f.name for f in dataclasses.fields(cls)}
    documented = record_doc_sections().get(cls.__name__, set())
    assert fields - documented == set(), (
        f"schema/canonical-record.md: {cls.__name__} fields not documented")
    assert documented - fields == set(), (
        f"schema/canonical-record.md documents {cls.__name__} fields that do not exist")


def test_every_record_class_is_in_the_doc():
    public = {name for name, obj in vars(records).items()
              if dataclasses.is_dataclass(obj) and obj.__module__ == records.__name__}
    assert public == {c.__name__ for c in RECORD_CLASSES}


@pytest.mark.parametrize("enum_cls", [records.FlowKind, records.Severity], ids=lambda c: c.__name__)
def test_enum_members_are_documented(enum_cls: type[enum.Enum]):
    documented = record_doc_sections().get(enum_cls.__name__, set())
    assert {e.name for e in enum_cls} == documented


# -- the example plugin, found as a third party ----------------------------------------


def example_importer():
    found = importers().get("simple_grants")
    if found is None:
        pytest.fail(f"the example plugin is not installed; {INSTALL_HINT}")
    return found


def test_example_plugin_has_an_entry_point_of_its_own_distribution():
    eps = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "simple_grants"]
    assert eps, INSTALL_HINT
    assert eps[0].value == "fundtrack_example_plugin"
    assert eps[0].dist.metadata["Name"] == "fundtrack-example-plugin"
    assert plugin_of(example_importer()) == "fundtrack-example-plugin 0.1.0"


def test_fundtrack_plugins_lists_it():
    example_importer()
    out = CliRunner().invoke(main, ["plugins"])
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line for line in out.output.splitlines()}
    assert "iati" in lines
    assert lines["simple_grants"].split()[1] == "0.1.0"
    assert "Simple grants CSV" in lines["simple_grants"]
    assert "fundtrack-example-plugin 0.1.0" in lines["simple_grants"]


def independent_sums(path: Path) -> dict[tuple[str, str], tuple[int, Decimal]]:
    names = {"commitment": "OUTGOING_COMMITMENT", "disbursement": "DISBURSEMENT"}
    groups: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            g = groups[(names[row["kind"]], row["currency"])]
            g[0] += 1
            g[1] += Decimal(row["amount"])
    return {k: (n, s) for k, (n, s) in groups.items()}


def flow_groups(engine, batch_id: int) -> dict[tuple[str, str], tuple[int, Decimal]]:
    with engine.connect() as c:
        rows = c.execute(select(m.Flow.kind, m.Flow.currency, func.count(),
                                money_sum(m.Flow.amount))
                         .where(m.Flow.batch_id == batch_id, m.Flow.superseded_by.is_(None))
                         .group_by(m.Flow.kind, m.Flow.currency)).all()
    return {(k.name, cur): (n, s) for k, cur, n, s in rows}


@pytest.mark.parametrize("path", [BARING, WOLFSON], ids=lambda p: p.name)
def test_example_plugin_imports_end_to_end(engine, path: Path):
    example_importer()
    result = import_file(engine, path)  # no --format: the plugin's sniff is chosen
    assert result.status == "applied", result.summary()
    assert result.importer == "simple_grants"
    expected = independent_sums(path)
    assert result.counts["flows"] == sum(n for n, _ in expected.values())
    assert flow_groups(engine, result.batch_id) == expected
    with engine.connect() as c:
        batch = c.execute(select(m.ImportBatch.importer, m.ImportBatch.importer_version,
                                 m.ImportBatch.publisher_ref)
                          .where(m.ImportBatch.id == result.batch_id)).one()
    assert tuple(batch)[:2] == ("simple_grants", "0.1.0")
    assert import_file(engine, path).status == "unchanged"


def test_example_baring_numbers(engine):
    """53 grants awarded (GBP 2,086,937) and 44 disbursed (GBP 1,456,671), from 360Giving."""
    result = import_file(engine, BARING)
    assert flow_groups(engine, result.batch_id) == {
        ("OUTGOING_COMMITMENT", "GBP"): (53, Decimal("2086937.00")),
        ("DISBURSEMENT", "GBP"): (44, Decimal("1456671.00")),
    }
    with engine.connect() as c:
        gbp = c.execute(select(func.count()).select_from(m.Flow)
                        .where(m.Flow.amount_usd.is_not(None))).scalar_one()
    assert gbp == 97  # every GBP flow got a USD amount from ECB reference rates


def test_example_corrected_file_replaces_rather_than_duplicates(engine, tmp_path: Path):
    import_file(engine, BARING)
    text = BARING.read_text("utf-8").replace(",commitment,50000.00,", ",commitment,55000.00,", 1)
    corrected = tmp_path / "baring-corrected.csv"
    corrected.write_text(text, "utf-8")
    second = import_file(engine, corrected)
    assert second.status == "applied"
    with engine.connect() as c:
        current = c.execute(select(func.count(), money_sum(m.Flow.amount))
                            .where(m.Flow.superseded_by.is_(None),
                                   m.Flow.kind == FlowKind.OUTGOING_COMMITMENT)).one()
    assert tuple(current) == (53, Decimal("2091937.00"))


def test_example_bad_rows_are_skipped_and_reported_with_rows(engine):
    result = import_file(engine, BAD_ROWS)
    assert result.status == "applied"
    assert result.counts["flows"] == 4
    errors = {(i.location, i.code) for i in result.issues if i.severity is Severity.ERROR}
    assert errors == {("row 3", "bad-amount"), ("row 4", "bad-currency"), ("row 5", "bad-date"),
                      ("row 6", "bad-kind"), ("row 10", "duplicate-row")}
    with engine.connect() as c:
        stored = c.execute(select(m.BatchIssue.location).where(
            m.BatchIssue.batch_id == result.batch_id, m.BatchIssue.severity == "error")).scalars()
        assert sorted(stored) == ["row 10", "row 3", "row 4", "row 5", "row 6"]


@pytest.mark.parametrize("path,strict,where", [
    (BAD_ROWS, True, "row 3"),
    (NO_AMOUNT, False, "row 1"),  # without `amount` it is not sniffed as ours: name the format
], ids=["strict-bad-rows", "no-amount-column"])
def test_example_rejected_files_write_nothing(engine, path: Path, strict: bool, where: str):
    result = import_file(engine, path, strict=strict, fmt="simple_grants")
    assert result.status == "rejected"
    assert result.issues[-1].location == where
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Flow)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 0


@pytest.mark.slow
def test_example_plugins_own_test_suite_passes():
    """The example is a template people copy; its own tests must pass as shipped."""
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=EXAMPLE, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


# -- the kit catches what it claims to catch --------------------------------------------


class Wrapped:
    """The example importer with one promise broken, to prove the kit notices."""

    name = "broken"
    version = "1.0.0"
    title = "A deliberately broken importer"

    def __init__(self) -> None:
        self.inner = example_importer()

    def sniff(self, head: bytes, filename: str) -> float | None:
        return self.inner.sniff(head, filename)

    def parse(self, stream: BinaryIO, context: ImportContext) -> Iterator[Any]:
        yield from self.inner.parse(stream, context)


class ReadsEverything(Wrapped):
    def parse(self, stream, context):
        data = stream.read()
        yield from self.inner.parse(io.BytesIO(data), context)


class FloatAmounts(Wrapped):
    def parse(self, stream, context):
        for item in self.inner.parse(stream, context):
            if isinstance(item, FlowRecord):
                item.amount = float(item.amount)
            yield item


class TouchesSqlite(Wrapped):
    def parse(self, stream, context):
        with contextlib.suppress(Exception):  # swallowing must not hide it from the kit
            sqlite3.connect(":memory:")
        yield from self.inner.parse(stream, context)


class UsesAnEngine(Wrapped):
    def parse(self, stream, context):
        from fundtrack.db import make_engine

        with make_engine("sqlite://").connect():
            pass
        yield from self.inner.parse(stream, context)


class ClaimsEverything(Wrapped):
    def sniff(self, head, filename):
        return 0.1


class IssuesWithoutLocation(Wrapped):
    def parse(self, stream, context):
        yield Issue(Severity.WARNING, "something odd")
        yield from self.inner.parse(stream, context)


class NotDeterministic(Wrapped):
    calls = 0

    def parse(self, stream, context):
        NotDeterministic.calls += 1
        for item in self.inner.parse(stream, context):
            if isinstance(item, FlowRecord):
                item.description = f"parsed {NotDeterministic.calls} times"
            yield item


class BadMetadata(Wrapped):
    name = "Broken Importer"
    version = "1.0"


class CrashesOnTruncated(Wrapped):
    def parse(self, stream, context):
        data = stream.read()
        if not data.endswith(b"\n"):
            raise KeyError("last row")
        yield from self.inner.parse(io.BytesIO(data), context)


@pytest.mark.parametrize("cls,expected", [
    (ReadsEverything, "must stream"),
    (FloatAmounts, "field amount = "),
    (TouchesSqlite, "sqlite3.connect"),
    (UsesAnEngine, "Engine.connect"),
    (ClaimsEverything, "claims foreign file"),
    (IssuesWithoutLocation, "has no location"),
    (NotDeterministic, "not deterministic"),
    (BadMetadata, "is not SemVer"),
    (CrashesOnTruncated, "cut in half: parse raised KeyError"),
], ids=lambda x: x.__name__ if isinstance(x, type) else None)
def test_kit_catches_broken_promise(cls: type, expected: str, tmp_path: Path):
    foreign = tmp_path / "activity.xml"
    foreign.write_bytes(b'<?xml version="1.0"?><iati-activities version="2.03"/>')
    with pytest.raises(ContractError) as exc:
        check_importer(cls(), [WOLFSON], [foreign])
    assert expected in str(exc.value)


def test_kit_passes_the_example_and_reports_numbers():
    report = check_importer(example_importer(), [BARING, WOLFSON], malformed=[BAD_ROWS, NO_AMOUNT])
    assert [s.records for s in report.samples] == [97, 523]
    # the first record of a 110 KB file comes after the first read (READ_CAP bytes)
    assert report.samples[1].bytes_before_first_record == READ_CAP


def test_no_database_guard_is_inert_outside():
    with no_database() as touched, pytest.raises(Exception, match="must not"):
        sqlite3.connect(":memory:")
    assert touched == ["sqlite3.connect(':memory:',)"]
    sqlite3.connect(":memory:").close()  # outside the block nothing is guarded


def test_a_plugin_sniff_that_raises_is_logged_and_skipped(caplog):
    """A broken sniff must not stop the others, and must not vanish silently (issue 12)."""
    import logging

    from fundtrack.ingest.pipeline import choose_importer

    class Broken:
        name, version, title = "broken", "0", "Broken"

        def sniff(self, head, filename):
            raise RuntimeError("sniff bug")

    class Fine:
        name, version, title = "fine", "0", "Fine"

        def sniff(self, head, filename):
            return 0.5

    with caplog.at_level(logging.WARNING, logger="fundtrack.ingest.pipeline"):
        chosen = choose_importer(b"x,y\n", "f.csv", None, {"broken": Broken(), "fine": Fine()})
    assert chosen.name == "fine"
    [record] = [r for r in caplog.records if r.name == "fundtrack.ingest.pipeline"]
    assert "'broken'" in record.getMessage() and record.exc_info[1].args == ("sniff bug",)
