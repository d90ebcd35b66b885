"""The quick "is any field too long?" check of validation (``validate._any_too_long``)
sees every field of every limits table, so :func:`validate._too_long` never skips the
field-by-field pass that reports (and shortens) a value over its limit."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from fundtrack.ingest import validate

TABLES = {"activity": validate.ACTIVITY_TEXT, "flow": validate.FLOW_TEXT,
          "budget": validate.BUDGET_TEXT, "organisation": validate.ORGANISATION_TEXT}


def _holding(path: str, value: str) -> Any:
    """An object with ``value`` at ``path`` (lists of two: the second holds it)."""
    head, _, rest = path.partition(".")
    inner = _holding(rest, value) if rest else value
    if head.endswith("[]"):
        return SimpleNamespace(**{head[:-2]: [SimpleNamespace(), inner]})
    return SimpleNamespace(**{head: inner})


CASES = [(name, path, limit) for name, table in TABLES.items()
         for path, limit in table.items() if not path.endswith("[]")]


@pytest.mark.parametrize(("table", "path", "limit"), CASES)
def test_every_field_over_its_limit_is_seen(table: str, path: str, limit: int) -> None:
    limits = TABLES[table]
    assert not validate._any_too_long(_holding(path, "x" * limit), limits)
    assert validate._too_long(_holding(path, "x" * limit), limits, "here", table, []) is None
    record = _holding(path, "y" * (limit + 1))
    assert validate._any_too_long(record, limits)
    issues: list[validate.Issue] = []
    bad = validate._too_long(record, limits, "here", table, issues)
    if path in validate.ESSENTIAL:
        assert bad is not None and bad.code == validate.SKIPPED and f"{path} is" in bad.message
    else:
        assert bad is None and [i.code for i in issues] == ["value-shortened"]
        assert list(validate._values(record, path)) == ["y" * limit]


def test_paths_ending_in_a_list_name_no_field() -> None:
    """``parent_external_ids[]`` (cut by the ledger writer) is no field of its own here,
    as before the quick check: a long parent id neither skips nor warns."""
    record = SimpleNamespace(parent_external_ids=["z" * 5000])
    assert not validate._any_too_long(record, validate.FLOW_TEXT)
    assert validate._too_long(record, validate.FLOW_TEXT, "here", "flow", []) is None


def test_many_too_long_fields_report_in_table_order() -> None:
    """Several fields over their limits: the issues come in the table's order (the
    field-by-field pass), whatever order the quick check met them in."""
    limits = validate.FLOW_TEXT
    fields = ["sector.vocabulary", "aid_type", "provider.type"]
    record = SimpleNamespace(aid_type="a" * 100, sector=SimpleNamespace(vocabulary="v" * 100),
                             provider=SimpleNamespace(type="t" * 2000))
    issues: list[validate.Issue] = []
    assert validate._too_long(record, limits, "here", "flow", issues) is None
    order = [p for p in limits if p in fields]
    assert [i.message.split(" is ")[0] for i in issues] == order
