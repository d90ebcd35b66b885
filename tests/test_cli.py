"""The command line: import, dry run, rejection exit status, plugins, revert."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fundtrack.cli import main
from tests.conftest import SHARED


@pytest.fixture
def run(db_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FUNDTRACK_DATABASE_URL", db_url)
    runner = CliRunner()

    def _run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return _run


def test_import_prints_a_summary_per_file_and_is_idempotent(run):
    f = str(SHARED / "iati-activity/dportal-covid19-2021/dportal_8.xml")
    first = run("import", "--quiet", f)
    assert first.exit_code == 0, first.output
    assert "dportal_8.xml: applied (batch 1) 100 activities, 180 flows" in first.output
    again = run("import", "--quiet", f)
    assert again.exit_code == 0
    assert "unchanged" in again.output and "batch 1" in again.output


def test_rejected_file_gives_non_zero_exit(run, tmp_path: Path):
    bad = tmp_path / "cut.xml"
    bad.write_bytes((SHARED / "iati-activity/usaid-bo.xml").read_bytes()[:5000])
    good = str(SHARED / "iati-activity/wri-521257057-strategic-plan-2023-2027.xml")
    out = run("import", "--quiet", str(bad), good)
    assert out.exit_code == 1
    assert "cut.xml: rejected" in out.output and "line" in out.output
    assert "wri-521257057-strategic-plan-2023-2027.xml: applied" in out.output


def test_dry_run_then_revert(run):
    f = str(SHARED / "iati-activity/usaid-bo.xml")
    dry = run("import", "--dry-run", "--quiet", f)
    assert "dry-run" in dry.output and "304 flows" in dry.output
    real = run("import", "--quiet", f)
    # a dry run may use up a batch id (PostgreSQL sequences do not roll back)
    batch = re.search(r"applied \(batch (\d+)\)", real.output).group(1)
    rev = run("revert", batch)
    assert rev.exit_code == 0 and "'deleted_flows': 304" in rev.output
    bad = run("revert", batch)
    assert bad.exit_code != 0 and "reverted, not applied" in bad.output


def test_unknown_format_lists_known_formats(run, tmp_path: Path):
    f = tmp_path / "notes.txt"
    f.write_text("just some notes")
    out = run("import", "--quiet", str(f))
    assert out.exit_code == 1
    assert "format not recognised" in out.output and "iati" in out.output
    assert "Name the format with --format NAME" in out.output  # the CLI's own hint


def test_plugins_lists_the_iati_importer(run):
    out = run("plugins")
    assert out.exit_code == 0
    assert "iati" in out.output and "IATI activity and organisation XML" in out.output


def test_db_upgrade_is_repeatable(run):
    out = run("db", "upgrade")
    assert out.exit_code == 0 and "head" in out.output


def test_a_broken_plugin_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch):
    """An entry point that fails to import is reported; built-ins still load."""
    import importlib.metadata as md

    from fundtrack import plugins

    broken = md.EntryPoint(name="broken", value="no_such_module_xyz", group=plugins.ENTRY_POINT_GROUP)
    real = plugins.entry_points

    def fake(group: str):
        return [*real(group=group), broken]

    monkeypatch.setattr(plugins, "entry_points", fake)
    monkeypatch.setattr(plugins, "LOAD_ERRORS", {})
    with pytest.warns(RuntimeWarning, match="broken"):
        pm = plugins.make_plugin_manager()
    assert "iati" in plugins.importers(pm)
    assert "ModuleNotFoundError" in plugins.LOAD_ERRORS["broken"]


def test_classify_overrides_by_hand_and_is_cited(run, db_url: str):
    """A hand decision puts an activity's flows in a pillar and says so; --remove undoes it."""
    from sqlalchemy import select

    from fundtrack.accounting.tables import FlowClassification
    from fundtrack.db import make_engine

    f = str(SHARED / "iati-activity/wri-521257057-strategic-plan-2023-2027.xml")
    assert run("import", "--quiet", f).exit_code == 0
    subject = "activity:US-EIN-521257057-US-EIN-521257057"

    def rows():
        eng = make_engine(db_url)
        with eng.connect() as c:
            out = c.execute(select(FlowClassification.dimension, FlowClassification.is_in,
                                   FlowClassification.rules)
                            .where(FlowClassification.dimension == "pillar:protection")).all()
        eng.dispose()
        return out

    assert rows() == []  # no rule puts this activity in the protection pillar
    out = run("classify", subject, "pillar:protection", "in", "--note", "by hand")
    assert out.exit_code == 0, out.output
    assert len(rows()) == 2 and all(r.is_in and "override:" in str(r.rules) for r in rows())
    assert run("classify", subject, "pillar:protection", "--remove").exit_code == 0
    assert rows() == []
    bad = run("classify", "nonsense", "scope", "in")
    assert bad.exit_code != 0 and "activity:<identifier>" in bad.output


def test_token_list_shows_every_token_with_role_state_orgs_and_label(run):
    """``fundtrack token list`` used to crash on every call ('int' object has no attribute
    'revoked_at'); operators need it to find the token to revoke. Secrets never appear."""
    made = run("token", "create", "--role", "reporter", "--org", "XM-DAC-46004",
               "--org", "GB-GOV-1", "--label", "ADB upload robot")
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    assert run("token", "create", "--role", "admin", "--label", "ops").exit_code == 0
    assert run("token", "revoke", "2").exit_code == 0
    out = run("token", "list")
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        "    1 reporter  active   GB-GOV-1,XM-DAC-46004 ADB upload robot",
        "    2 admin     revoked  - ops",
    ]
    assert secret not in out.output


def test_the_cli_starts_without_the_graphql_library() -> None:
    """Every command's start-up (``fundtrack import`` of one file too) skips loading graphql
    (~0.06 s of CPU): the query layer reaches it only to raise an input error."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom fundtrack.cli import main\n"
         "from fundtrack.ingest import many, pipeline\n"
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('graphql', 'strawberry')))"],
        capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
