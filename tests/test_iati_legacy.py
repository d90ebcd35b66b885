"""IATI as published since 2011: every version, legacy text codes, and the file policies.

Real 1.0x files (shared data: CAFOD DRC and Sida, ``version="1.00"``) and synthetic files
in the shapes of the US Government, World Bank, Global Fund, EU, Sida and DFID files of
2012-2014 (``tests/fixtures/iati-legacy``, see its README) import whole and match the
independent count (``tests/iati_count.py``) to the cent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack.ingest.pipeline import NotPermitted, import_file
from fundtrack.ledger import tables as m
from tests.conftest import SHARED
from tests.iati_count import count_iati
from tests.test_iati_import import ledger_counts

LEGACY = Path(__file__).parent / "fixtures" / "iati-legacy"
FILES = sorted(LEGACY.glob("*.xml")) + sorted((SHARED / "iati-legacy-1.0x").glob("*.xml"))


def test_there_are_legacy_files_of_every_version() -> None:
    versions = set()
    for f in FILES:
        head = f.read_text()[:400]
        versions.add(head.split('version="', 2)[2].split('"')[0] if head.count('version="') > 1
                     else "")
    assert {"1.0", "1.00", "1.01", "1.02", "1.03", "1.04"} <= versions, versions


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_legacy_file_matches_independent_count(engine, path: Path) -> None:
    result = import_file(engine, path)
    assert result.status == "applied", result.summary()
    expected_acts, expected_flows, expected_groups = count_iati(path)
    acts, flows, groups = ledger_counts(engine, result.batch_id)
    assert (acts, flows) == (expected_acts, expected_flows)
    assert groups == expected_groups
    assert result.found["activities"] == expected_acts == result.imported["activities"]
    assert result.found["flows"] == expected_flows == result.imported["flows"]
    assert result.skipped_total == 0 and result.status_text == "applied"


def _one(engine, column, where) -> list:
    with engine.connect() as c:
        return c.execute(select(column).where(where)).scalars().all()


def test_legacy_text_codes_are_mapped_through_the_codelists(engine) -> None:
    result = import_file(engine, LEGACY / "worldbank-1.01.xml")
    assert result.status == "applied" and not result.issues, result.summary()
    a = m.Activity
    assert set(_one(engine, a.reporting_org_type, a.batch_id == result.batch_id)) == {"40"}
    statuses = dict(zip(_one(engine, a.iati_identifier, a.batch_id == result.batch_id),
                        _one(engine, a.status, a.batch_id == result.batch_id), strict=True))
    assert statuses == {"44000-P074216": "2", "44000-P112345": "3", "44000-P120099": None}
    with engine.connect() as c:
        roles = dict(c.execute(select(m.ParticipatingOrg.name, m.ParticipatingOrg.type)
                               .join(a, a.id == m.ParticipatingOrg.activity_id)
                               .where(a.iati_identifier == "44000-P074216")).all())
        vocab = set(c.execute(select(m.ActivitySector.vocabulary)).scalars())
        kinds = sorted(k.name for k in c.execute(select(m.Flow.kind)).scalars())
    assert roles == {"World Bank": "40", "International Development Association": "40",
                     "Ministry of Water": "10"}
    assert vocab == {"1"}
    assert kinds.count("INTEREST_PAYMENT") == 1 and kinds.count("LOAN_REPAYMENT") == 1
    assert kinds.count("REIMBURSEMENT") == 1


def test_sida_vocabularies_and_budget_type(engine) -> None:
    result = import_file(engine, LEGACY / "sida-1.03.xml")
    assert result.status == "applied" and not result.issues, result.summary()
    with engine.connect() as c:
        assert set(c.execute(select(m.PolicyMarker.vocabulary)).scalars()) == {"1"}
        assert set(c.execute(select(m.ActivityRegion.vocabulary)).scalars()) == {"1"}
        assert c.execute(select(m.Budget.budget_type)).scalars().all() == ["1"]
        assert set(c.execute(select(m.ParticipatingOrg.type)).scalars()) == {"10", "22", "40"}


def test_unmapped_long_org_type_keeps_the_activity_and_warns(engine) -> None:
    """Global Fund Angola: before, a long text type dropped 3 of 5 activities."""
    result = import_file(engine, LEGACY / "globalfund-angola-1.02.xml")
    assert result.status_text == "applied" and result.counts["activities"] == 5
    codes = sorted(i.code for i in result.issues)
    assert codes == ["unknown-code", "unknown-code", "value-shortened"], result.issues
    warn = next(i for i in result.issues if i.code == "value-shortened")
    assert warn.location == "/iati-activities/iati-activity[2] (line 24)"
    assert "'Faith Based Organization'" in warn.message and "'Faith Base'" in warn.message
    with engine.connect() as c:
        types = dict(c.execute(select(m.ParticipatingOrg.name, m.ParticipatingOrg.type)).all())
        rep = set(c.execute(select(m.Activity.reporting_org_type)).scalars())
    assert rep == {"40"}
    assert types == {"The Global Fund": "40", "Ministry of Health of Angola": "10",
                     "Caritas Angola": "Faith Base", "UNDP": "40", "PSI Angola": "70",
                     "Associacao Angolana": "22"}


def test_mixed_versions_per_activity(engine) -> None:
    result = import_file(engine, LEGACY / "dfid-1.04-1.05-mixed.xml")
    assert result.status == "applied", result.summary()
    with engine.connect() as c:
        versions = dict(c.execute(select(m.Activity.iati_identifier, m.Activity.iati_version)).all())
    assert versions == {"GB-1-202567": "1.04", "GB-1-203120": "1.05", "GB-1-204020": "2.01",
                        "GB-1-205001": "2.03"}


def test_unknown_version_is_read_with_a_warning(engine, tmp_path: Path) -> None:
    f = tmp_path / "v.xml"
    f.write_text((LEGACY / "worldbank-1.01.xml").read_text().replace('version="1.01"',
                                                                    'version="2.04"', 1))
    result = import_file(engine, f)
    assert result.status == "applied" and result.counts["activities"] == 3
    assert [i.code for i in result.issues] == ["unknown-version"]
    assert "'2.04' is not one published" in result.issues[0].message


def test_text_transaction_type_without_code(engine, tmp_path: Path) -> None:
    f = tmp_path / "t.xml"
    f.write_text((LEGACY / "eu-afghanistan-1.0.xml").read_text().replace(
        '<transaction-type code="D">Disbursement</transaction-type>\n   <value value-date="2012',
        '<transaction-type>Disbursement</transaction-type>\n   <value value-date="2012'))
    result = import_file(engine, f)
    assert result.counts["flows"] == 5 and result.skipped_total == 0, result.summary()


# -- policies ---------------------------------------------------------------------------


def test_duplicate_identifiers_every_copy_is_kept_and_reported(engine, tmp_path: Path) -> None:
    """Policy: every copy is kept (the sums equal the file's), each later copy is warned
    about with the location of the first."""
    text = (LEGACY / "worldbank-1.01.xml").read_text()
    f = tmp_path / "dup.xml"
    f.write_text(text.replace("44000-P112345", "44000-P074216"))
    result = import_file(engine, f)
    dup = [i for i in result.issues if i.code == "duplicate-activity"]
    assert len(dup) == 1 and dup[0].location == "/iati-activities/iati-activity[2] (line 46)"
    assert "first at /iati-activities/iati-activity[1] (line 3)" in dup[0].message
    acts, flows, groups = ledger_counts(engine, result.batch_id)
    assert (acts, flows, groups) == count_iati(f)
    assert result.found == result.imported and result.skipped_total == 0


def _versions(tmp_path: Path) -> tuple[Path, Path]:
    text = (LEGACY / "worldbank-1.01.xml").read_text()
    old = tmp_path / "wb-2012.xml"
    old.write_text(text)
    new = tmp_path / "wb-2013.xml"
    new.write_text(text.replace("2012-12-14T00:00:00", "2013-06-01T00:00:00")
                   .replace("2012-12-15T08:30:00", "2013-06-02T00:00:00")
                   .replace("999999.99", "1999999.99"))
    return old, new


def test_older_file_after_a_newer_one_is_refused(engine, tmp_path: Path) -> None:
    """Policy: refused as older, with both dates and the batch to revert; nothing written.
    The same older bytes again (sha256 of batch 1) are not "unchanged" either."""
    old, new = _versions(tmp_path)
    assert import_file(engine, old).status == "applied"
    assert import_file(engine, new).status == "applied"
    again = import_file(engine, old)
    assert again.status == "rejected"
    assert again.message == (
        "this file is older than what is imported: activity 44000-P074216 was last updated "
        "2012-12-14T00:00:00 in this file but 2013-06-01T00:00:00 in batch 2 (wb-2013.xml); "
        "nothing written. To go back to the older version, revert batch 2")
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 2
        live = c.execute(select(func.sum(m.Flow.amount)).where(
            m.Flow.superseded_by.is_(None), m.Flow.kind == m.FlowKind.DISBURSEMENT)).scalar()
    assert str(live) == "6500000.99"  # the newer file's disbursements
    # A file without activity dates, older by its generated-datetime:
    stale = tmp_path / "wb-stale.xml"
    stale.write_text(old.read_text().replace(' last-updated-datetime="2012-12-14T00:00:00"', ""))
    out = import_file(engine, stale)
    assert out.status == "rejected" and "it was generated 2012-12-15T08:30:00, batch 2 " \
        "(wb-2013.xml) was generated 2013-06-02T00:00:00" in out.message


def test_same_file_unchanged_while_it_is_current(engine, tmp_path: Path) -> None:
    old, _ = _versions(tmp_path)
    assert import_file(engine, old).status == "applied"
    out = import_file(engine, old)
    assert out.status == "unchanged" and out.batch_id == 1


def test_permission_is_checked_before_the_unchanged_answer(engine) -> None:
    path = LEGACY / "worldbank-1.01.xml"
    assert import_file(engine, path).status == "applied"  # an admin imported it
    with pytest.raises(NotPermitted, match="reported by 44000, which is not one of yours"):
        import_file(engine, path, allowed_publishers=["GB-1"])
    assert import_file(engine, path, allowed_publishers=["44000"]).status == "unchanged"


# -- plain parser errors ------------------------------------------------------------------


def test_truncated_file_says_it_ends_early_with_the_location_once(engine, tmp_path: Path) -> None:
    data = (SHARED / "iati-activity/usaid-bo.xml").read_bytes()
    cut = tmp_path / "cut.xml"
    end = data.index(b'vocabulary="', 200000) + len(b"vocab")
    cut.write_bytes(data[:end])
    line = data[:end].count(b"\n") + 1
    column = end - data[:end].rfind(b"\n")
    out = import_file(engine, cut)
    assert out.status == "rejected"
    assert out.message == f"malformed XML: the file ends early (truncated?) at line {line}, " \
        f"column {column}", out.message
    assert out.message.count("line") == 1


def test_malformed_middle_is_not_called_truncated(engine, tmp_path: Path) -> None:
    f = tmp_path / "bad.xml"
    f.write_text((LEGACY / "sida-1.03.xml").read_text().replace("<title>Civilian", "<title Civilian"))
    out = import_file(engine, f)
    assert out.status == "rejected" and "ends early" not in out.message
    assert out.message.startswith("malformed XML: ") and out.message.count("line ") == 1
    assert out.message.endswith("at line 48, column 19"), out.message


def test_cli_says_where_a_truncated_file_ends_once(db_url: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from fundtrack.cli import main

    cut = tmp_path / "usaid-bo-cut.xml"
    cut.write_bytes((SHARED / "iati-activity/usaid-bo.xml").read_bytes()[:200000])
    monkeypatch.setenv("FUNDTRACK_DATABASE_URL", db_url)
    out = CliRunner().invoke(main, ["import", "--quiet", str(cut)], catch_exceptions=False)
    assert out.exit_code == 1
    assert out.output.splitlines()[0] == ("usaid-bo-cut.xml: rejected - malformed XML: the file "
                                          "ends early (truncated?) at line 4311, column 31")
    assert out.output.count("line 4311") == 1, out.output
