"""Many files in one import (issue 17): a parse process feeding the writer, each file its
own batch, derived tables rebuilt once at the end; answers equal those of the same files
imported one by one; a broken file in the middle is reported and skipped; a set killed
(``kill -9``) before its rebuild leaves whole batches and is made consistent on the next
start. SQLite and PostgreSQL, on real shared files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine, func, select

from fundtrack.accounting import stored
from fundtrack.accounting.tables import FlowClassification
from fundtrack.api.testing import Api
from fundtrack.db import make_engine
from fundtrack.derived import steps as derived
from fundtrack.derived.rollup.tables import FlowRollup
from fundtrack.ingest.many import derive_once_is_cheaper, import_files
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from tests.conftest import SHARED

DPORTAL = SHARED / "iati-activity" / "dportal-covid19-2021"
GOOD = [DPORTAL / "dportal_36.xml", DPORTAL / "dportal_37.xml", DPORTAL / "dportal_8.xml",
        SHARED / "iati-activity" / "usaid-bo.xml", SHARED / "iati-activity" / "worldbank-679.xml"]

AGGREGATES = [
    "{ flowsAggregate { count groups { count sum sumUsd currencies } } }",
    "{ flowsAggregate(groupBy: [YEAR, RECIPIENT_COUNTRY]) { count groups { year "
    "recipientCountry count sum sumUsd countWithoutUsd currency } } }",
    "{ flowsAggregate(groupBy: [REPORTING_ORG, PROVIDER, RECEIVER, KIND]) { count groups { "
    "reportingOrg provider receiver kind count sum sumUsd currency } } }",
]
TOTAL = "{ amount currency amountUsd }"
TRACE = ("query($a: String!, $d: TraceDirection!) { trace(from: {activity: $a}, direction: $d)"
         " { accountsCount movementsCount originatorsCount terminalsCount untracedCount "
         f"originatorsTotal {TOTAL} terminalsTotal {TOTAL} untracedTotal {TOTAL} "
         "movements(first: 500) { kind amount source { organization { ref } } "
         "target { organization { ref } } } } }")
CARD = """query($d: String!, $y: Int!) { reportCard(donor: $d, year: $y, method: "weighted") {
    subject year figures items { key value numerator denominator grade status baseCount
    baseUsd coverage } } }"""


def files_with_broken(tmp_path: Path) -> list[Path]:
    """The good files with a broken one in the middle: an IATI page cut off mid-activity
    (sniffed as IATI, fails half-way through, after records were already written)."""
    data = (DPORTAL / "dportal_26.xml").read_bytes()
    broken = tmp_path / "broken-dportal_26.xml"
    broken.write_bytes(data[: len(data) * 3 // 5])
    return [*GOOD[:2], broken, *GOOD[2:]]


def transactions(path: Path) -> int:
    """Independent count: the file's transaction elements (lxml, not the importer)."""
    return len(etree.parse(str(path)).findall(".//iati-activity/transaction"))


def answers(url: str, activity: str) -> dict[str, Any]:
    """Query answers: flowsAggregate groups, both traces of one activity, a report card."""
    api = Api(url)
    out: dict[str, Any] = {q: sorted(map(json.dumps, api.query(q)["flowsAggregate"]["groups"]))
                           for q in AGGREGATES}
    for d in ("UPSTREAM", "DOWNSTREAM"):
        out[d] = api.query(TRACE, {"a": activity, "d": d})["trace"]
        out[d]["movements"] = sorted(map(json.dumps, out[d]["movements"]))
    out["card"] = api.query(CARD, {"d": "SE-0", "y": 2021})["reportCard"]
    return out


def derived_rows(engine: Engine) -> list[tuple[Any, ...]]:
    r = FlowRollup.__table__
    with engine.connect() as c:
        return sorted((tuple(row) for row in c.execute(
            select(*[col for col in r.c if col.name != "id"]))), key=repr)


def ledger_state(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as c:
        return (c.execute(select(func.count()).select_from(m.ImportBatch)).scalar(),
                c.execute(select(func.count()).select_from(m.Flow)).scalar(),
                c.execute(select(func.count()).select_from(m.Activity)).scalar())


def first_activity(path: Path) -> str:
    return etree.parse(str(path)).findtext(".//iati-activity/iati-identifier").strip()


def test_many_files_answer_like_one_by_one(db_factory: Any, tmp_path: Path) -> None:
    files = files_with_broken(tmp_path)
    many_url, one_url = db_factory.new_url(), db_factory.new_url()
    many, one = make_engine(many_url), make_engine(one_url)
    try:
        results = import_files(many, files, derive="once")
        assert [r.status for r in results] == ["applied"] * 2 + ["rejected"] + ["applied"] * 3
        assert "the file ends early (truncated?)" in results[2].message
        for path, r in zip(files, results, strict=True):
            if r.status == "applied":  # every transaction found, imported or skipped
                assert r.found["flows"] == transactions(path), path.name
        singles = [import_file(one, p) for p in files]
        assert [r.status for r in singles] == [r.status for r in results]
        ledger_keys = ("activities", "flows", "budgets", "organisations", "new_organisations",
                       "replaced_activities", "replaced_flows", "skipped", "warnings",
                       "flows_without_usd")  # the derived tables' per-batch counts differ
        assert [[r.counts.get(k) for k in ledger_keys] for r in singles] == [
            [r.counts.get(k) for k in ledger_keys] for r in results]
        with many.connect() as c:
            names = set(c.execute(select(m.ImportBatch.file_name)).scalars())
            assert "broken-dportal_26.xml" not in names  # the broken file wrote nothing
            assert derived.stale_batches(c) == []
            current = c.execute(select(func.count()).select_from(m.Flow)
                                .where(m.Flow.superseded_by.is_(None))).scalar()
        assert current == sum(r.counts["flows"] for r in results if r.ok) == sum(
            transactions(p) for p in GOOD) - sum(r.skipped["flows"] for r in results if r.ok)
        assert derived_rows(many) == derived_rows(one)
        assert len(derived_rows(many)) > 0
        got, want = answers(many_url, first_activity(GOOD[0])), answers(one_url,
                                                                        first_activity(GOOD[0]))
        assert got == want
        assert got["UPSTREAM"]["accountsCount"] > 0 and got["card"]["items"]
        # the same files again change nothing
        before = ledger_state(many), derived_rows(many)
        again = import_files(many, files)
        assert [r.status for r in again] == ["unchanged"] * 2 + ["rejected"] + ["unchanged"] * 3
        assert (ledger_state(many), derived_rows(many)) == before
    finally:
        many.dispose()
        one.dispose()
        db_factory.drop(many_url)
        db_factory.drop(one_url)


#: Every kind of row the writer makes: transaction policy markers (gdihub, canada), FTS
#: flows outside activities with parents (flow_parent) and USD rates of their own, an
#: organisation file (organisation-level budgets), activities replaced by later files (the
#: annotated example in three versions), a file with warnings, and a broken file.
ROW_FILES = [SHARED / "iati-activity/iati-flattener-fixtures/gdihub-activity.xml",
             SHARED / "iati-activity/iati-flattener-fixtures/canada-activity.xml",
             SHARED / "fts-json/custom-search-locationid-1-year-2020-page-3.json",
             SHARED / "fts-json/custom-search-locationid-1-year-2020-page-2.json",
             SHARED / "iati-example/2.03/organisation-standard-example-annotated.xml",
             SHARED / "iati-example/2.01/activity-standard-example-annotated.xml",
             SHARED / "iati-example/2.02/activity-standard-example-annotated.xml",
             SHARED / "iati-example/2.03/activity-standard-example-annotated.xml",
             SHARED / "iati-legacy-1.0x" / "complex_example_dfid.xml",
             SHARED / "iati-activity" / "usaid-798.xml",
             DPORTAL / "dportal_36.xml"]
LEDGER_TABLES = ["import_batch", "activity", "activity_country", "activity_region",
                 "activity_sector", "policy_marker", "participating_org", "related_activity",
                 "activity_tag", "flow", "flow_policy_marker", "flow_parent", "budget",
                 "organisation", "batch_org_change", "batch_issue", "batch_publisher"]


def ledger_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table, primary keys included, in key order (the
    batches' creation time left out)."""
    from fundtrack.db.metadata import metadata

    out = {}
    with engine.connect() as c:
        for name in LEDGER_TABLES:
            t = metadata.tables[name]
            cols = [col for col in t.c if col.name != "created_at"]
            out[name] = [tuple(r) for r in c.execute(select(*cols).order_by(*t.primary_key))]
    return out


def crs_with_gender_markers(tmp_path: Path) -> Path:
    """Three CRS rows with the gender marker set: flows with policy markers of their own."""
    import csv
    import io

    lines = (Path(__file__).parent / "fixtures/crs/crs_1973.csv").read_text(
        encoding="utf-8").splitlines()
    header = lines[0].split(",")
    rows = [next(csv.reader([line])) for line in lines[1:4]]
    for row, score in zip(rows, ("2", "1", "0"), strict=True):
        row[header.index("gender")] = score
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    path = tmp_path / "crs-gender.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@pytest.mark.parametrize("parsers", [1, 3])
def test_rows_built_in_the_parse_process_equal_those_of_one_by_one(
        db_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parsers: int) -> None:
    """The many-file path (rows built in parse processes, ids mapped by the writer)
    writes exactly the rows, ids included, of single imports (rows built beside the
    writer), file by file; the issues and reconciliation too. With three parse processes
    (each parsing every third file, finishing in any order) the files are still written
    in the order given."""
    from fundtrack.ingest import many as many_mod

    monkeypatch.setattr(many_mod, "parse_processes", lambda files: min(files, parsers))
    files = [*ROW_FILES[:5], *files_with_broken(tmp_path)[2:3], *ROW_FILES[5:],
             crs_with_gender_markers(tmp_path)]
    assert all(p.exists() for p in files)
    many_url, one_url = db_factory.new_url(), db_factory.new_url()
    many, one = make_engine(many_url), make_engine(one_url)
    try:
        results = import_files(many, files, derive="each")
        singles = [import_file(one, p) for p in files]
        assert [r.status for r in results] == ["applied"] * 5 + ["rejected"] + ["applied"] * 7
        for got, want in zip(results, singles, strict=True):
            assert (got.status, got.batch_id, got.message, got.found, got.imported,
                    got.skipped) == (want.status, want.batch_id, want.message, want.found,
                                     want.imported, want.skipped)
            assert [str(i) for i in got.issues] == [str(i) for i in want.issues]
            assert got.issues.total == want.issues.total
        rows, want_rows = ledger_rows(many), ledger_rows(one)
        for name in LEDGER_TABLES:
            assert rows[name] == want_rows[name], name
        # the set exercises every table, warnings and replacements included
        assert all(rows[name] for name in LEDGER_TABLES), [n for n in LEDGER_TABLES
                                                            if not rows[n]]
        assert sum(r.counts.get("replaced_activities", 0) for r in results) >= 2
        assert any(r.counts.get("warnings") for r in results)
        assert len(results[5].issues) >= 1  # the broken file's rejection comes first
    finally:
        many.dispose()
        one.dispose()
        db_factory.drop(many_url)
        db_factory.drop(one_url)


def test_strict_many_files_rejects_a_file_with_an_error(engine: Engine, tmp_path: Path) -> None:
    """Strict mode is applied in the parse process: the file with an error is rejected
    with the error's message and the issues before it; the others stand."""
    bad = tmp_path / "bad-amount.xml"
    data = (SHARED / "iati-example/2.03/activity-standard-example-annotated.xml").read_text()
    bad.write_text(data.replace("<value currency=\"EUR\" value-date=\"2012-01-01\">1000</value>",
                                "<value currency=\"EUR\" value-date=\"2012-01-01\">lots</value>", 1))
    assert bad.read_text() != data
    results = import_files(engine, [GOOD[0], bad, GOOD[1]], strict=True)
    assert [r.status for r in results] == ["applied", "rejected", "applied"]
    want = ("strict mode: value: not a decimal number: 'lots'; skipped at "
            "/iati-activities/iati-activity[1] (line 8)/transaction[1] (line 265)")
    assert results[1].message == want
    assert [str(i) for i in results[1].issues] == [
        "error: /iati-activities/iati-activity[1] (line 8)/transaction[1] (line 265): "
        "strict mode: value: not a decimal number: 'lots'; skipped"]
    with engine.connect() as c:
        names = set(c.execute(select(m.ImportBatch.file_name)).scalars())
    assert names == {GOOD[0].name, GOOD[1].name}


KILLER = """
import os, signal, sys
from fundtrack.db import make_engine
from fundtrack.ingest.many import import_files
done = []
def on_result(r):
    done.append(r.status)
    print(r.file_name, r.status, flush=True)
    if len(done) == 2:  # two batches committed, the set's rebuild not yet run
        os.kill(os.getpid(), signal.SIGKILL)
import_files(make_engine(sys.argv[1]), sys.argv[2:], derive="once", on_result=on_result)
"""


def test_killed_set_leaves_whole_batches_and_next_start_rebuilds(
        db_factory: Any, tmp_path: Path) -> None:
    url, ref_url = db_factory.new_url(), db_factory.new_url()
    engine, ref = make_engine(url), make_engine(ref_url)
    try:
        # (the parse process outlives the writer until it sees it gone; it holds the
        # pipe, so communicate() waiting for it also checks that it does go)
        proc = subprocess.run([sys.executable, "-c", KILLER, url, *map(str, GOOD)],
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])))
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert proc.stdout.split() == [GOOD[0].name, "applied", GOOD[1].name, "applied"]
        with engine.connect() as c:  # whole batches only, both marked stale
            stale = derived.stale_batches(c)
            assert len(stale) == 2
        for p in GOOD[:2]:
            import_file(ref, p)
        assert ledger_state(engine)[1:] == ledger_state(ref)[1:]
        assert derived_rows(engine) != derived_rows(ref)  # the rebuild never ran
        # the next start (any import; here the rest of the set) rebuilds first
        results = import_files(engine, GOOD)
        assert [r.status for r in results] == ["unchanged"] * 2 + ["applied"] * 3
        for p in GOOD[2:]:
            import_file(ref, p)
        with engine.connect() as c:
            assert derived.stale_batches(c) == []
        assert derived_rows(engine) == derived_rows(ref)
        act = first_activity(GOOD[0])
        assert answers(url, act) == answers(ref_url, act)
    finally:
        engine.dispose()
        ref.dispose()
        db_factory.drop(url)
        db_factory.drop(ref_url)


def test_recompute_clears_the_stale_mark(engine: Engine) -> None:
    results = import_files(engine, GOOD[:2], derive="once")
    assert [r.status for r in results] == ["applied", "applied"]
    with engine.begin() as c:  # as an interrupted set leaves it
        for r in results:
            counts = dict(r.counts, **{derived.STALE: 1})
            c.execute(m.ImportBatch.__table__.update()
                      .where(m.ImportBatch.id == r.batch_id).values(counts=counts))
        assert len(derived.stale_batches(c)) == 2
        derived.rebuild(c)  # what `fundtrack recompute` runs
        assert derived.stale_batches(c) == []


def test_an_upload_after_an_interrupted_set_rebuilds_first(db_factory: Any) -> None:
    """An API upload, ``fundtrack sync`` or a single import writes through the same
    pipeline: when an interrupted set left batches without their derived update, the next
    batch's update is a rebuild of every step, never an update on top of stale tables."""
    url, ref_url = db_factory.new_url(), db_factory.new_url()
    engine, ref = make_engine(url), make_engine(ref_url)
    try:
        first = import_file(engine, GOOD[0])
        with engine.begin() as c:  # as a killed set leaves it: merged, marked, not derived
            c.execute(FlowRollup.__table__.delete())
            c.execute(m.ImportBatch.__table__.update()
                      .where(m.ImportBatch.id == first.batch_id)
                      .values(counts=dict(first.counts, **{derived.STALE: 1})))
        assert derived_rows(engine) == []
        second = import_file(engine, GOOD[1])  # what importReport and sync call
        assert second.status == "applied"
        with engine.connect() as c:
            assert derived.stale_batches(c) == []
        for p in GOOD[:2]:
            import_file(ref, p)
        assert derived_rows(engine) == derived_rows(ref)
    finally:
        engine.dispose()
        ref.dispose()
        db_factory.drop(url)
        db_factory.drop(ref_url)


MAX = 1_000_000  # the default FUNDTRACK_REBUILD_MAX_FLOWS


@pytest.mark.parametrize(("ledger", "mb", "files", "max_flows", "once"), [
    (0, 93, 100, MAX, True),             # the benchmark: 100 real files into an empty database
    (0, 2, 1, MAX, False),               # one file: always its own update
    (800_000, 1, 2, MAX, False),         # two small files into 800k flows: two updates
    (1_000_000, 400, 1000, MAX, False),  # the ledger alone is at the limit: updates
    (0, 8_000, 1000, MAX, True),         # 2M flows' worth: a rebuild at the limit, then updates
    (800_000, 8_000, 10, MAX, False),    # ten big files into 800k: the rebuild weighs more
    (1_500_000, 400, 1000, 2_000_000, True),  # the limit raised: one rebuild at 1.6M
    (10_000_000, 200, 1000, 2_000_000, False),  # at 10M a rebuild does not fit: updates
    (10_000_000, 1, 5, 2_000_000, False),
])
def test_auto_picks_the_cheaper(ledger: int, mb: int, files: int, max_flows: int,
                                once: bool) -> None:
    assert derive_once_is_cheaper(ledger, mb * 1_000_000, files, max_flows) is once


def test_a_set_past_the_rebuild_limit_goes_on_file_by_file(
        db_factory: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A rebuild never holds more than FUNDTRACK_REBUILD_MAX_FLOWS flows: the set is counted
    as it is written, and once past the limit the derived tables are rebuilt there and the
    other files are updated one by one; the answers are those of one-by-one imports."""
    first, second = transactions(GOOD[0]), transactions(GOOD[1])
    assert (first, second) == (590, 1043)
    monkeypatch.setenv("FUNDTRACK_REBUILD_MAX_FLOWS", str(first + 1))  # passed by file 2
    many_url, one_url = db_factory.new_url(), db_factory.new_url()
    many, one = make_engine(many_url), make_engine(one_url)
    try:
        with caplog.at_level("INFO", logger="fundtrack.ingest.many"):
            results = import_files(many, GOOD)
        assert [r.status for r in results] == ["applied"] * 5
        said = [r.getMessage() for r in caplog.records if r.name == "fundtrack.ingest.many"]
        assert said[0].endswith("derived tables rebuilt once at the end")
        assert said[1] == ("1633 flows with the set's files so far, over "
                           "FUNDTRACK_REBUILD_MAX_FLOWS (591), at file 2 of 5: the derived "
                           "tables are rebuilt now and the rest of the set updated file by file")
        assert said[2].startswith("derived tables rebuilt once for 2 batch(es) in ")
        assert len(said) == 3  # no rebuild at the end: files 3-5 were updated one by one
        with many.connect() as c:
            assert derived.stale_batches(c) == []
            counts = [c.execute(select(m.ImportBatch.counts).where(
                m.ImportBatch.id == r.batch_id)).scalar_one() for r in results]
        # the trail's counts are those of a file's own update: only files 3-5 have them
        assert ["movements_replaced" in k for k in counts] == [False, False, True, True, True]
        for p in GOOD:
            import_file(one, p)
        assert derived_rows(many) == derived_rows(one)
        assert answers(many_url, first_activity(GOOD[0])) == answers(
            one_url, first_activity(GOOD[0]))
    finally:
        many.dispose()
        one.dispose()
        db_factory.drop(many_url)
        db_factory.drop(one_url)


def test_cli_imports_a_folder_and_reports_the_broken_file(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from fundtrack.cli import main

    folder = tmp_path / "set"
    folder.mkdir()
    for n, path in enumerate([DPORTAL / "dportal_8.xml", DPORTAL / "dportal_15.xml"]):
        (folder / f"{n}-{path.name}").write_bytes(path.read_bytes())
    (folder / "0b-broken.xml").write_bytes((DPORTAL / "dportal_26.xml").read_bytes()[:50_000])
    monkeypatch.setenv("FUNDTRACK_DATABASE_URL", db_url)
    out = CliRunner().invoke(main, ["import", "--quiet", str(folder)])
    assert out.exit_code == 1, out.output
    lines = [line for line in out.output.splitlines() if not line.startswith("  ")]
    assert lines[0].startswith("0-dportal_8.xml: applied (batch 1) 100 activities, "
                               f"{transactions(DPORTAL / 'dportal_8.xml')} flows")
    assert lines[1].startswith("0b-broken.xml: rejected - malformed XML: the file ends early")
    # (the batch number: PostgreSQL's sequence keeps the one the rejected file took)
    assert lines[2].startswith("1-dportal_15.xml: applied (batch ")
    assert f") 100 activities, {transactions(DPORTAL / 'dportal_15.xml')} flows" in lines[2]
    assert "1 of 3 file(s) rejected" in out.output
    again = CliRunner().invoke(main, ["import", "--quiet", str(folder)])
    assert again.output.count(": unchanged - same file already imported") == 2


def test_the_stale_check_is_one_index_probe(engine: Engine) -> None:
    """Every import checks for stale marks first: in a database of many batches the check
    reads the partial index of marked batches (``ix_import_batch_derived_stale``), not
    every batch's counts, and finds exactly the marked ones."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from fundtrack.db import dialect

    results = import_files(engine, GOOD[:2], derive="once")
    b = m.ImportBatch.__table__
    with engine.begin() as c:
        c.execute(b.insert(), [
            {"importer": "test", "importer_version": "1", "file_name": f"f{i}.xml",
             "sha256": f"{i:064x}", "size_bytes": 1, "created_at": datetime.now(UTC),
             "status": "applied", "counts": {"flows": i}} for i in range(2000)])
        dialect.refresh_statistics(c)  # as after every import: no batch marked
        c.execute(b.update().where(b.c.id == results[1].batch_id)
                  .values(counts=dict(results[1].counts, **{derived.STALE: 1})))
        c.execute(b.update().where(b.c.id == results[0].batch_id)
                  .values(counts={"note": derived.STALE}))  # a value, not the mark
        assert derived.stale_batches(c) == [results[1].batch_id]
        sql = str(derived.stale_query(c.dialect.name).compile(
            dialect=c.dialect, compile_kwargs={"literal_binds": True}))
        if c.dialect.name == "postgresql":
            c.execute(text("ANALYZE import_batch"))
            plan = " ".join(r[0] for r in c.execute(text("EXPLAIN " + sql)))
        else:
            plan = " ".join(str(r[-1]) for r in c.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert "ix_import_batch_derived_stale" in plan, plan


def _classification(engine: Engine) -> list[tuple[Any, ...]]:
    t = FlowClassification.__table__
    with engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(
            select(t.c.flow_id, t.c.dimension, t.c.is_in, t.c.rules)))


def test_the_rebuild_classifies_in_a_second_process(engine: Engine, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The set's one rebuild: a second process computes the classification (read only)
    while this one rebuilds identity and the trail, and this one inserts its rows; they
    equal the rows of a rebuild in this process."""
    seen = tmp_path / "pids"
    chunks = stored.rebuild_chunks

    def spy(conn: Any) -> Any:
        with open(seen, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        yield from chunks(conn)

    monkeypatch.setattr(stored, "rebuild_chunks", spy)
    results = import_files(engine, GOOD[:3], derive="once")
    assert [r.status for r in results] == ["applied"] * 3
    pids = [int(p) for p in seen.read_text().split()]
    assert len(pids) == 1 and pids[0] != os.getpid()
    got = _classification(engine)
    with engine.begin() as c:
        assert stored.rebuild(c)["classified_flows"] == len({r[0] for r in got})
    assert int(seen.read_text().split()[-1]) == os.getpid()
    assert _classification(engine) == got
    assert len(got) > 1_000


def test_a_failed_classification_process_leaves_the_set_to_the_next_start(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second process fails: the rebuild's transaction rolls back, the batches stay
    whole and marked, and the next import rebuilds first."""
    chunks, writer = stored.rebuild_chunks, os.getpid()

    def broken(conn: Any) -> Any:
        if os.getpid() != writer:
            raise RuntimeError("no rows today")
        yield from chunks(conn)

    monkeypatch.setattr(stored, "rebuild_chunks", broken)
    with pytest.raises(RuntimeError, match="no rows today"):
        import_files(engine, GOOD[:2], derive="once")
    with engine.connect() as c:
        assert len(derived.stale_batches(c)) == 2
    assert _classification(engine) == []
    monkeypatch.undo()
    assert [r.status for r in import_files(engine, GOOD[2:3])] == ["applied"]
    with engine.connect() as c:
        assert derived.stale_batches(c) == []
    assert len(_classification(engine)) > 1_000


def test_sqlite_checkpoints_less_often_during_a_set(engine: Engine,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: the writer's connections checkpoint the WAL every
    ``SET_CHECKPOINT_PAGES`` pages while a set loads (not every 1,000: a checkpoint's
    fsyncs every few files), and have SQLite's own setting back afterwards."""
    if engine.dialect.name != "sqlite":
        pytest.skip("a SQLite setting")
    from fundtrack.ingest import many

    seen: list[int] = []
    write = many.write_batch

    def spy(*args: Any, **kwargs: Any) -> None:
        with engine.connect() as c:
            seen.append(c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())
        write(*args, **kwargs)

    monkeypatch.setattr(many, "write_batch", spy)
    assert [r.status for r in import_files(engine, GOOD[:2])] == ["applied"] * 2
    assert seen == [many.SET_CHECKPOINT_PAGES] * 2
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000


AHEAD = """
import sys
from fundtrack.accounting import stored
from fundtrack.db import make_engine
from fundtrack.ingest import many
stored.CHUNK = 50  # hundreds of chunks of classification rows
take = many._ClassifyBeside.rebuild
def rebuild(self, conn):  # the writer comes for the rows only once the process has ended
    self.proc.join(timeout=60)
    assert not self.proc.is_alive(), "the classification process waits for the writer"
    return take(self, conn)
many._ClassifyBeside.rebuild = rebuild
results = many.import_files(make_engine(sys.argv[1]), sys.argv[2:], derive="once")
print(" ".join(r.status for r in results))
"""


def test_the_classification_process_never_waits_for_the_writer(
        engine: Engine, tmp_path: Path) -> None:
    """The classification process beside a set's rebuild classifies every flow and ends
    without waiting for the writer to take a row (its rows wait in a file): with a bounded
    queue, the writer classified in its own time all but the first 80,000 flows of a set
    (and on PostgreSQL the two waited on each other for ever: see the next test). Chunks
    of 50 flows here, hundreds of them; the rows equal a rebuild in one process."""
    url = engine.url.render_as_string(hide_password=False)
    proc = subprocess.run([sys.executable, "-c", AHEAD, url, *map(str, GOOD[:3])],
                          capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["applied"] * 3
    got = _classification(engine)
    assert len({r[0] for r in got}) > 50 * 20  # many more chunks than a queue would hold
    with engine.begin() as c:
        stored.rebuild(c)
    assert _classification(engine) == got


def test_a_rebuild_never_waits_for_a_reader_of_the_ledger(engine: Engine) -> None:
    """Every derived table rebuilt while another connection reads ``flow`` in an open
    transaction (an API query; the classification process beside a many-file rebuild),
    with a 2 s lock timeout on PostgreSQL: the rebuild takes no lock that waits for it.
    Dropping the movements' foreign keys to ``flow`` for the bulk load did (ACCESS
    EXCLUSIVE on ``flow`` until commit): with the classification process waiting on a
    bounded queue, a set over 80,000 flows hung for ever."""
    assert [r.status for r in import_files(engine, GOOD[:2], derive="once")] == ["applied"] * 2
    with engine.connect() as reader:
        reader.execution_options(readonly=True)  # SQLite: a deferred BEGIN, a read lock
        flows = reader.execute(select(func.count()).select_from(m.Flow)).scalar_one()
        with engine.begin() as c:
            if c.dialect.name == "postgresql":
                c.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            out = derived.rebuild(c)
        reader.rollback()
    assert flows > 1_000 and out["classified_flows"] == flows


def test_a_new_postgresql_database_has_statistics_from_its_first_file(engine: Engine) -> None:
    """PostgreSQL: the first file into a new database leaves the planner statistics of
    the tables it filled (ANALYZE; autovacuum would take a minute or more), so the files
    after it are superseded by index, not by hashing every current activity. Exact
    counts: ANALYZE of tables this small reads every row."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner setting (SQLite's ANALYZE runs after every import)")
    results = import_files(engine, GOOD[:2], derive="once")
    assert [r.status for r in results] == ["applied"] * 2
    with engine.connect() as c:
        reltuples = dict(c.exec_driver_sql(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN ('activity', 'flow')"
        ).all())
    first = results[0].counts
    assert reltuples == {"activity": first["activities"], "flow": first["flows"]}
    assert first["activities"] > 50 and first["flows"] > 500


def test_a_file_draws_the_ids_it_uses(engine: Engine) -> None:
    """PostgreSQL: each file takes from the sequences the ids its rows need (a chunk at a
    time, with as many more as it used so far), not a block of 10,000 per kind: the
    sequences end where the rows do when every file fits one chunk."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL sequences (SQLite's ids follow max(id))")
    results = import_files(engine, GOOD[:3], derive="once")
    assert [r.status for r in results] == ["applied"] * 3
    with engine.connect() as c:
        for table in ("activity", "flow"):
            last = c.exec_driver_sql(
                f"SELECT last_value FROM {table}_id_seq").scalar_one()
            rows, top = c.exec_driver_sql(f"SELECT count(*), max(id) FROM {table}").one()
            assert (last, top) == (rows, rows), table
    assert sum(r.counts["flows"] for r in results) > 1_000
