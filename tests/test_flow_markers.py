"""Markers reported on flows (CRS 'Gender' column) reach the ledger and the crosswalk."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sqlalchemy import select

from fundtrack.accounting.items import load_items
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m

CSV = Path(__file__).parent / "fixtures" / "crs" / "crs_1973.csv"


def test_crs_gender_marker_is_stored_and_classified(engine, tmp_path: Path):
    lines = CSV.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    rows = [next(csv.reader([line])) for line in lines[1:4]]
    for row, score in zip(rows, ("2", "1", "0"), strict=True):
        row[header.index("gender")] = score
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    f = tmp_path / "crs-gender.csv"
    f.write_text(out.getvalue(), encoding="utf-8")
    result = import_file(engine, f)
    assert result.status == "applied", result.summary()
    with engine.connect() as c:
        stored = c.execute(select(m.FlowPolicyMarker.vocabulary, m.FlowPolicyMarker.code,
                                  m.FlowPolicyMarker.significance)
                           .where(m.FlowPolicyMarker.code == "1")).all()
        items = load_items(c)
    assert sorted(s.significance for s in stored) == sorted(
        {"2": "2", "1": "1", "0": "0"}[r[header.index("gender")]]
        for r in rows for _ in range(_flows_per_row(r, header)))
    commons = {it.marker.common for it in items}
    assert {"principal", "significant", "not-targeted"} <= commons
    assert all(it.marker.level == "flow" for it in items)


def _flows_per_row(row: list[str], header: list[str]) -> int:
    """A CRS row gives one flow per non-zero USD column (commitment, disbursement, received)."""
    cols = [c for c in ("usd_commitment", "usd_disbursement", "usd_received") if c in header]
    return sum(1 for c in cols if row[header.index(c)] not in ("", "0", "0.0"))
