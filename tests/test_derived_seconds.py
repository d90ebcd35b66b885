"""The derived steps say how long each took (bench/bench_one_file.py reads it), and nothing
of it reaches the counts stored on the batch."""

from __future__ import annotations

import io
import logging

import pytest
from sqlalchemy import Engine, select

from fundtrack.derived import steps as derived
from fundtrack.ingest.pipeline import import_file, revert_batch
from fundtrack.ledger import tables as m

FILE = b"""<?xml version="1.0"?><iati-activities version="2.03"><iati-activity
 default-currency="USD"><iati-identifier>XB-NGO-1-T</iati-identifier><reporting-org
 ref="XB-NGO-1" type="22"><narrative>ngo</narrative></reporting-org><title><narrative>t
 </narrative></title><transaction><transaction-type code="1"/><transaction-date
 iso-date="2023-06-01"/><value currency="USD" value-date="2023-06-01">1000.00</value>
 <provider-org ref="XB-AGENCY-0"/></transaction><transaction><transaction-type code="4"/>
 <transaction-date iso-date="2023-07-01"/><value currency="USD" value-date="2023-07-01">900.00
 </value></transaction></iati-activity></iati-activities>"""

WANTED = [*derived.NAMES, "statistics"]


def _seconds(caplog: pytest.LogCaptureFixture, what: str) -> dict[str, float]:
    found = [getattr(r, derived.SECONDS) for r in caplog.records
             if r.name == derived.__name__ and what in r.getMessage()]
    assert len(found) == 1, [r.getMessage() for r in caplog.records]
    return found[0]


def test_import_and_revert_log_seconds_per_step_not_in_counts(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=derived.__name__)
    result = import_file(engine, io.BytesIO(FILE), filename="t.xml")
    assert result.status == "applied"
    seconds = _seconds(caplog, f"after_import of batch {result.batch_id}")
    assert list(seconds) == WANTED
    assert all(isinstance(v, float) and v >= 0 for v in seconds.values())
    with engine.connect() as c:
        stored = c.execute(select(m.ImportBatch.counts)
                           .where(m.ImportBatch.id == result.batch_id)).scalar_one()
    assert stored == result.counts
    assert not any("second" in k for k in stored), stored
    assert stored["flows"] == 2
    revert_batch(engine, result.batch_id)
    assert list(_seconds(caplog, f"after_revert of batch {result.batch_id}")) == WANTED


def test_rebuild_leaves_seconds_on_the_connection(engine: Engine) -> None:
    import_file(engine, io.BytesIO(FILE), filename="t.xml")
    with engine.begin() as c:
        derived.rebuild(c)
        assert list(c.info[derived.SECONDS]) == WANTED
        derived.rebuild(c, ["rollup"])
        assert list(c.info[derived.SECONDS]) == ["rollup", "statistics"]
