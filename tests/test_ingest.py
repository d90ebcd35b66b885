"""The ingest pipeline: atomic batches, idempotence, replacement, revert, hostile files."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack.ingest.pipeline import import_file, revert_batch
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from tests.conftest import SHARED

DPORTAL = SHARED / "iati-activity" / "dportal-covid19-2021"


def snapshot(engine) -> tuple:
    """Counts and sums of what is current in the ledger, plus raw row counts."""
    with engine.connect() as c:
        current = c.execute(
            select(m.Flow.kind, m.Flow.currency, func.count(), money_sum(m.Flow.amount))
            .where(m.Flow.superseded_by.is_(None))
            .group_by(m.Flow.kind, m.Flow.currency).order_by(m.Flow.kind, m.Flow.currency)
        ).all()
        acts = c.execute(select(func.count()).select_from(m.Activity)
                         .where(m.Activity.superseded_by.is_(None))).scalar_one()
        rows = tuple(c.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (m.Activity, m.Flow, m.Budget, m.PolicyMarker, m.Organisation))
    return acts, [tuple(r) for r in current], rows


def test_same_file_again_changes_nothing(engine, tmp_path: Path):
    src = DPORTAL / "dportal_8.xml"
    first = import_file(engine, src)
    assert first.status == "applied"
    before = snapshot(engine)
    again = import_file(engine, src)
    assert again.status == "unchanged"
    assert f"batch {first.batch_id}" in again.message
    renamed = tmp_path / "renamed-copy.xml"
    shutil.copyfile(src, renamed)
    assert import_file(engine, renamed).status == "unchanged"
    assert snapshot(engine) == before


def test_whole_folder_twice_changes_nothing(engine):
    files = sorted((SHARED / "iati-activity").rglob("*.xml"))
    for f in files:
        assert import_file(engine, f).ok
    once = snapshot(engine)
    for f in files:
        assert import_file(engine, f).status == "unchanged"
    assert snapshot(engine) == once


def test_newer_file_replaces_activities_without_duplicating(engine):
    """The assembled Sida file holds the activities of dportal_36-39: they replace, not add."""
    assembled = SHARED / "iati-activity/assembled/sida-SE-0-dportal_36-39.assembled.xml"
    pages = [DPORTAL / f"dportal_{n}.xml" for n in (36, 37, 38, 39)]
    for p in pages:
        import_file(engine, p)
    by_pages = snapshot(engine)
    result = import_file(engine, assembled)
    assert result.counts["replaced_activities"] == 400
    after = snapshot(engine)
    assert after[0] == by_pages[0] == 400
    assert after[1] == by_pages[1]  # same current flows, counted once


def test_revert_restores_what_was_replaced(engine):
    page = DPORTAL / "dportal_36.xml"
    assembled = SHARED / "iati-activity/assembled/sida-SE-0-dportal_36-39.assembled.xml"
    import_file(engine, page)
    only_page = snapshot(engine)
    result = import_file(engine, assembled)
    assert snapshot(engine)[0] == 400
    out = revert_batch(engine, result.batch_id)
    assert out["restored_activities"] == 100
    restored = snapshot(engine)
    assert restored[:2] == only_page[:2]
    with pytest.raises(ValueError):
        revert_batch(engine, result.batch_id)
    # once reverted, the same file may be imported again
    assert import_file(engine, assembled).status == "applied"


def test_truncated_file_is_rejected_with_position(engine, tmp_path: Path):
    import_file(engine, DPORTAL / "dportal_8.xml")
    before = snapshot(engine)
    data = (DPORTAL / "dportal_15.xml").read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(data[: len(data) // 2])
    result = import_file(engine, cut)
    assert result.status == "rejected"
    assert "malformed XML" in result.message
    assert "line " in result.issues[-1].location and "column" in result.issues[-1].location
    assert snapshot(engine) == before
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 1


def test_dry_run_writes_nothing_but_reports(engine):
    empty = snapshot(engine)  # the fund registry is seeded by the migrations
    result = import_file(engine, DPORTAL / "dportal_15.xml", dry_run=True)
    assert result.status == "dry-run"
    assert result.counts["flows"] == 602
    assert snapshot(engine) == empty


BAD_RECORDS = b"""<?xml version="1.0"?>
<iati-activities version="2.03">
 <iati-activity default-currency="EUR">
  <iati-identifier>XX-1-A</iati-identifier>
  <reporting-org ref="XX-1" type="10"><narrative>X</narrative></reporting-org>
  <transaction><transaction-type code="3"/><value value-date="2020-01-02">12.50</value></transaction>
  <transaction><transaction-type code="99"/><value value-date="2020-01-02">1</value></transaction>
  <transaction><transaction-type code="D"/><value value-date="2020-01-02">one hundred</value></transaction>
  <transaction><transaction-type code="D"/><value currency="XYZ" value-date="2020-01-02">7</value></transaction>
 </iati-activity>
 <iati-activity><iati-identifier></iati-identifier></iati-activity>
</iati-activities>
"""


def test_bad_records_are_skipped_with_locations(engine, tmp_path: Path):
    f = tmp_path / "bad.xml"
    f.write_bytes(BAD_RECORDS)
    result = import_file(engine, f)
    assert result.status == "applied"
    assert result.counts["activities"] == 1
    assert result.counts["flows"] == 2  # the EUR one and the XYZ one (kept, flagged)
    messages = {(i.severity.value, i.code): i for i in result.issues}
    assert "transaction[2]" in messages[("error", "bad-transaction-type")].location
    assert "transaction[3]" in messages[("error", "bad-amount")].location
    assert "iati-activity[2]" in messages[("error", "no-identifier")].location
    assert ("warning", "unknown-currency") in messages
    with engine.connect() as c:
        stored = c.execute(select(func.count()).select_from(m.BatchIssue)).scalar_one()
    assert stored == len(result.issues)


def test_strict_rejects_on_any_error(engine, tmp_path: Path):
    empty = snapshot(engine)
    f = tmp_path / "bad.xml"
    f.write_bytes(BAD_RECORDS)
    result = import_file(engine, f, strict=True)
    assert result.status == "rejected"
    assert "strict" in result.message and "transaction[2]" in result.message
    assert snapshot(engine) == empty


def test_reporter_of_another_org_is_refused_and_nothing_written(engine):
    from fundtrack.ingest.pipeline import NotPermitted

    empty = snapshot(engine)
    with pytest.raises(NotPermitted, match="not one of yours"):
        import_file(engine, DPORTAL / "dportal_8.xml", allowed_publishers={"XM-DAC-7"})
    assert snapshot(engine) == empty
    ok = import_file(engine, SHARED / "iati-activity/usaid-bo.xml",
                     allowed_publishers={"US-GOV-1"})
    assert ok.status == "applied"


def test_value_without_currency_uses_default_and_usd_is_converted(engine):
    result = import_file(engine, SHARED / "iati-activity/usaid-798.xml")
    with engine.connect() as c:
        rows = c.execute(select(m.Flow.currency, m.Flow.amount, m.Flow.amount_usd,
                                m.Flow.usd_rate_source)
                         .where(m.Flow.batch_id == result.batch_id)).all()
    assert {r.currency for r in rows} == {"USD"}
    assert all(r.amount == r.amount_usd and r.usd_rate_source == "identity" for r in rows)


def test_legacy_1_0x_files_import(engine):
    path = SHARED / "iati-legacy-1.0x/complex_example_dfid.xml"
    result = import_file(engine, path)
    assert result.status == "applied", result.summary()
    assert result.counts["flows"] == 358  # 150 IF + 208 D
    with engine.connect() as c:
        kinds = dict(c.execute(select(m.Flow.kind, func.count()).where(
            m.Flow.batch_id == result.batch_id).group_by(m.Flow.kind)).all())
        roles = set(c.execute(select(m.ParticipatingOrg.role)).scalars())
    assert {k.name: v for k, v in kinds.items()} == {"INCOMING_FUNDS": 150, "DISBURSEMENT": 208}
    assert roles <= {"1", "2", "3", "4", None}


def test_empty_significance_is_kept_as_not_given(engine):
    result = import_file(engine, SHARED / "iati-activity/MAEC_IATI_INDONESIA.xml")
    with engine.connect() as c:
        sig = c.execute(select(m.PolicyMarker.significance, func.count())
                        .where(m.PolicyMarker.code == "1")
                        .group_by(m.PolicyMarker.significance)).all()
    assert dict(sig) == {None: 50, "0": 14, "1": 17, "2": 2}
    assert result.status == "applied"


def test_sum_is_exact_where_float_is_not(engine, tmp_path: Path):
    """0.1 + 0.2 and 12-decimal values: a float sum would be off; ours is not."""
    values = ["0.1", "0.2", "1234567890123.123456789012", "0.000000000001"]
    txs = "".join(
        f'<transaction><transaction-type code="3"/><value currency="USD" '
        f'value-date="2020-01-01">{v}</value></transaction>' for v in values)
    xml = (f'<iati-activities version="2.03"><iati-activity><iati-identifier>XX-1-B'
           f'</iati-identifier><reporting-org ref="XX-1"/>{txs}</iati-activity>'
           f'</iati-activities>')
    f = tmp_path / "exact.xml"
    f.write_text(xml)
    import_file(engine, f)
    with engine.connect() as c:
        total = c.execute(select(money_sum(m.Flow.amount))).scalar_one()
    assert total == Decimal("1234567890123.423456789013")
    assert sum(float(v) for v in values) != total


def test_concurrent_uploads_of_the_same_file_apply_once(engine):
    """Two imports racing on one file: one applies, the other finds it already there."""
    from concurrent.futures import ThreadPoolExecutor

    src = DPORTAL / "dportal_8.xml"
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: import_file(engine, src), range(2)))
    assert sorted(r.status for r in results) == ["applied", "unchanged"]
    acts, _, rows = snapshot(engine)
    assert acts == 100 and rows[0] == 100


def test_concurrent_versions_of_one_activity_leave_one_current(engine, tmp_path: Path):
    """Two different files with the same activities, imported at once: no duplicates."""
    from concurrent.futures import ThreadPoolExecutor

    src = (DPORTAL / "dportal_8.xml").read_bytes()
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    a.write_bytes(src)
    b.write_bytes(src + b"\n<!-- a second version of the same activities -->\n")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda p: import_file(engine, p), (a, b)))
    assert [r.status for r in results] == ["applied", "applied"]
    assert snapshot(engine)[0] == 100


def test_dirty_activities_are_kept_and_flagged(engine, tmp_path: Path):
    """No reporting-org/@ref, or the same identifier twice: kept (money is real), flagged."""
    xml = b"""<iati-activities version="2.03">
 <iati-activity default-currency="USD"><iati-identifier>XX-2-A</iati-identifier>
  <reporting-org type="22"><narrative>Small NGO</narrative></reporting-org>
  <transaction><transaction-type code="1"/><value value-date="2021-01-01">100</value></transaction>
 </iati-activity>
 <iati-activity default-currency="USD"><iati-identifier>XX-2-B</iati-identifier>
  <reporting-org ref="XX-2"/>
  <transaction><transaction-type code="3"/><value value-date="2021-01-01">5</value></transaction>
 </iati-activity>
 <iati-activity default-currency="USD"><iati-identifier>XX-2-B</iati-identifier>
  <reporting-org ref="XX-2"/>
  <transaction><transaction-type code="3"/><value value-date="2021-02-01">7</value></transaction>
 </iati-activity>
</iati-activities>"""
    f = tmp_path / "dirty.xml"
    f.write_bytes(xml)
    result = import_file(engine, f)
    assert result.status == "applied"
    assert (result.counts["activities"], result.counts["flows"]) == (3, 3)
    codes = sorted(i.code for i in result.issues)
    assert codes == ["duplicate-activity", "no-reporting-org"]
    # a reporter can never upload an activity without a publisher
    from fundtrack.ingest.pipeline import NotPermitted

    f2 = tmp_path / "dirty2.xml"
    f2.write_bytes(xml.replace(b"XX-2-", b"XX-3-"))
    with pytest.raises(NotPermitted):
        import_file(engine, f2, allowed_publishers={"XX-3"})
    # a corrected file replaces both copies of the duplicated activity
    fixed = tmp_path / "fixed.xml"
    fixed.write_bytes(xml.replace(b"7</value>", b"8</value>").replace(
        b"<iati-identifier>XX-2-A</iati-identifier>", b"<iati-identifier>XX-2-C</iati-identifier>"))
    assert import_file(engine, fixed).counts["replaced_activities"] == 2


def test_writers_are_not_bound_by_the_query_timeout(db_url: str, db_kind: str) -> None:
    """The API's engine carries a per-connection statement timeout for queries; an upload
    through it must not be cancelled half-way through its derived-table refresh."""
    if db_kind != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no statement timeout")
    from sqlalchemy import text

    from fundtrack.db import make_engine

    strict_queries = make_engine(db_url, statement_timeout_ms=1)
    try:
        result = import_file(strict_queries, SHARED / "iati-activity" / "MAEC_IATI_INDONESIA.xml")
        assert result.status == "applied", result.summary()
        with strict_queries.connect() as c:  # the query timeout is back after the batch
            assert c.execute(text("SHOW statement_timeout")).scalar() == "1ms"
    finally:
        strict_queries.dispose()


def test_sqlite_planner_statistics_follow_imports(engine, db_kind: str) -> None:
    """SQLite gathers no statistics by itself; each import refreshes them (bounded)."""
    if db_kind != "sqlite":
        pytest.skip("SQLite only: PostgreSQL's autovacuum analyses tables itself")
    from sqlalchemy import text

    import_file(engine, SHARED / "iati-activity" / "MAEC_IATI_INDONESIA.xml")
    with engine.connect() as c:
        rows = dict(c.execute(text("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'flow'")).all())
        flows = c.execute(select(func.count()).select_from(m.Flow)).scalar()
    assert rows, "no statistics for the flow table after an import"
    assert any(int(stat.split()[0]) == flows for stat in rows.values())
