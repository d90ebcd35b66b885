"""Every registered built-in importer keeps the importer contract (``fundtrack.testing``).

Samples are real files from ``../shared/data`` chosen per importer name; the foreign
files an importer must not claim are all the other shared files (and the example
plugin's real-data CSVs). An importer still being written (its hook returns no
importer) simply is not registered, so it is not collected; one that is registered but
has no sample files named here fails, so a new built-in cannot skip the contract.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fundtrack.ingest.pipeline import choose_importer
from fundtrack.plugins import SNIFF_BYTES, importers
from fundtrack.testing import check_importer
from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_SAMPLES = ROOT / "examples" / "fundtrack-example-plugin" / "samples"
TABULAR = {".csv", ".tsv", ".txt", ".xlsx", ".xls"}
NOT_DATA = {".md", ".py"}


def shared_files() -> list[Path]:
    return sorted(p for p in SHARED.rglob("*") if p.is_file() and p.suffix not in NOT_DATA)


def _under(*folders: str) -> Callable[[Path], bool]:
    return lambda p: any(SHARED / f in p.parents for f in folders)


def _fixtures(*globs: str) -> list[Path]:
    """Fixture data files (not the scripts that derive them, not deliberately broken ones)."""
    return sorted({p for g in globs for p in FIXTURES.glob(g)
                   if p.is_file() and p.suffix not in NOT_DATA and "error" not in p.name})


IATI_SAMPLES = [SHARED / rel for rel in (
    "iati-activity/usaid-bo.xml",
    "iati-activity/MAEC_IATI_INDONESIA.xml",
    "iati-activity/dportal-covid19-2021/dportal_8.xml",
    "iati-activity/dfid-albania-oipa-media/5e87f792-3d59-4f06-afcf-a8efa8523553.xml",
    "iati-legacy-1.0x/complex_example_dfid.xml",
    "iati-example/2.03/activity-standard-example-annotated.xml",
    "iati-organisation/3fi-org.xml",
    "iati-organisation/IATI_ORG.xml",
    "iati-organisation/asian-dev-bank-org.xml",
)]

#: importer name -> (its sample files, which shared files are of its own family).
#: Files of its own family are neither samples it must claim nor foreign files it must
#: refuse (an FTS importer may or may not take FTS's location list, for instance).
SAMPLES: dict[str, tuple[Callable[[], list[Path]], Callable[[Path], bool]]] = {
    "iati": (lambda: IATI_SAMPLES,
             _under("iati-activity", "iati-example", "iati-legacy-1.0x", "iati-organisation")),
    "fts": (lambda: sorted((SHARED / "fts-json").glob("custom-search-*.json")),
            _under("fts-json")),
    "giving360": (lambda: sorted((SHARED / "360giving").rglob("*.json"))
                  + sorted((SHARED / "360giving").rglob("*.xlsx")),
                  _under("360giving")),
    "crs": (lambda: _fixtures("crs*", "crs/*", "oecd*/*"), _under("oecd-dac")),
    "spreadsheet": (lambda: _fixtures("spreadsheet/*.csv", "spreadsheet/*.xlsx"),
                    lambda p: p.suffix.lower() in TABULAR),
    "simple_grants": (lambda: sorted(EXAMPLE_SAMPLES.glob("*.csv")), lambda p: False),
}

#: Importers exempt from the streaming check, with the reason. Keep this list short.
WHOLE_FILE_READERS: dict[str, str] = {
    "fts": "an FTS API page is one JSON document, read with json.loads (no streaming JSON "
           "parser is a dependency); pages are bounded by the API's page size",
    "giving360": "XLSX is a zip container and needs random access; JSON is one document",
    "spreadsheet": "XLSX is a zip container and needs random access",
}


def registered() -> list[str]:
    return sorted(importers())


def test_built_in_importers_are_registered_through_entry_points():
    assert "iati" in registered()


@pytest.mark.parametrize("name", registered())
def test_importer_keeps_the_contract(name: str):
    imp = importers()[name]
    if name not in SAMPLES:
        if type(imp).__module__.startswith("importers."):
            pytest.fail(f"built-in importer {name!r} has no sample files in {__file__}")
        pytest.skip(f"third-party importer {name!r}: it runs fundtrack.testing in its own tests")
    pick, own_family = SAMPLES[name]
    samples = pick()
    if not samples:
        pytest.skip(f"no sample files for {name!r} yet (see SAMPLES in this module)")
    foreign = [p for p in shared_files() if not own_family(p) and p not in samples]
    if name not in ("simple_grants", "spreadsheet"):
        foreign += sorted(EXAMPLE_SAMPLES.glob("*.csv"))
    report = check_importer(imp, samples, foreign, streaming=name not in WHOLE_FILE_READERS)
    assert report.records > 0
    assert all(s.records > 0 for s in report.samples)


def test_iati_contract_numbers():
    """The IATI importer streams: its first record comes after 32 KiB of a 0.8 MB file."""
    report = check_importer(importers()["iati"], IATI_SAMPLES[:3])
    assert [s.records for s in report.samples] == [63, 83, 100]
    assert all(0 < s.bytes_before_first_record < s.size for s in report.samples)


@pytest.mark.parametrize("path", IATI_SAMPLES, ids=lambda p: p.name)
def test_sniffing_chooses_iati_for_iati_files(path: Path):
    head = path.read_bytes()[:SNIFF_BYTES]
    assert choose_importer(head, path.name, None).name == "iati"


@pytest.mark.parametrize("path", sorted(EXAMPLE_SAMPLES.glob("*.csv")), ids=lambda p: p.name)
def test_sniffing_chooses_the_example_plugin_for_its_files(path: Path):
    head = path.read_bytes()[:SNIFF_BYTES]
    assert choose_importer(head, path.name, None).name == "simple_grants"
