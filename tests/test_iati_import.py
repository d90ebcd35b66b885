"""Every shared IATI 2.0x file imports, and matches an independent count exactly."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from tests.conftest import SHARED
from tests.iati_count import count_iati

IATI_FILES = sorted((SHARED / "iati-activity").rglob("*.xml"))


def ledger_counts(engine, batch_id: int):
    with engine.connect() as c:
        acts = c.execute(select(func.count()).select_from(m.Activity)
                         .where(m.Activity.batch_id == batch_id)).scalar_one()
        rows = c.execute(
            select(m.Flow.kind, m.Flow.currency, func.count(), money_sum(m.Flow.amount))
            .where(m.Flow.batch_id == batch_id).group_by(m.Flow.kind, m.Flow.currency)
        ).all()
    groups = {(k.name, cur): (n, s) for k, cur, n, s in rows}
    return acts, sum(n for n, _ in groups.values()), groups


def test_shared_files_are_there():
    assert len(IATI_FILES) >= 25


@pytest.mark.parametrize("path", IATI_FILES, ids=lambda p: p.name)
def test_file_matches_independent_count(engine, path: Path):
    result = import_file(engine, path)
    assert result.status == "applied", result.summary()
    expected_acts, expected_flows, expected_groups = count_iati(path)
    acts, flows, groups = ledger_counts(engine, result.batch_id)
    assert (acts, flows) == (expected_acts, expected_flows)
    assert result.counts["activities"] == expected_acts
    assert result.counts["flows"] == expected_flows
    assert groups == expected_groups
    for _, total in groups.values():
        assert isinstance(total, Decimal)


def test_many_decimals_sum_exactly(engine):
    """Sida values carry up to 12 decimals; the sum must not pass through float."""
    path = SHARED / "iati-activity/dportal-covid19-2021/dportal_36.xml"
    result = import_file(engine, path)
    _, _, groups = ledger_counts(engine, result.batch_id)
    _, _, expected = count_iati(path)
    total = sum((s for _, s in groups.values()), Decimal(0))
    assert total == sum((s for _, s in expected.values()), Decimal(0))
    assert any(-s.as_tuple().exponent >= 10 for _, s in groups.values())
