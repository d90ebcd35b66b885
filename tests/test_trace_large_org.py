"""Traces of an organisation with thousands of activities stay in bounded statements.

Before, an upstream trace built one OR term per account: UNDP's 1,220 activities made
SQLite fail with "Expression tree is too large (maximum depth 1000)". A generated
organisation with 5,000 activities (money in from two donors' activities, out to NGOs
and spent) is traced upstream and downstream, on SQLite and PostgreSQL, with exact totals.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import event

from fundtrack.ingest.pipeline import import_file
from fundtrack.query.trace import trace

N = 5000
BIG = "XM-BIG"


def _files(tmp_path: Path) -> tuple[Path, Path]:
    donors = ['<?xml version="1.0" encoding="UTF-8"?>\n<iati-activities version="2.03">']
    for d in (1, 2):
        donors.append(
            f'<iati-activity default-currency="USD"><iati-identifier>XM-DON{d}-A</iati-identifier>'
            f'<reporting-org ref="XM-DON{d}" type="10"><narrative>Donor {d}</narrative>'
            "</reporting-org><title><narrative>Core</narrative></title>"
            + "".join(
                f'<transaction><transaction-type code="3"/><transaction-date iso-date="2020-01-02"/>'
                f'<value value-date="2020-01-02">{100 + i}.50</value>'
                f'<receiver-org ref="{BIG}" receiver-activity-id="{BIG}-{i}"/></transaction>'
                for i in range(N) if i % 2 == d - 1)
            + "</iati-activity>")
    donors.append("</iati-activities>")
    big = ['<?xml version="1.0" encoding="UTF-8"?>\n<iati-activities version="2.03">']
    for i in range(N):
        big.append(
            f'<iati-activity default-currency="USD"><iati-identifier>{BIG}-{i}</iati-identifier>'
            f'<reporting-org ref="{BIG}" type="40"><narrative>Big</narrative></reporting-org>'
            f"<title><narrative>Project {i}</narrative></title>"
            f'<transaction><transaction-type code="1"/><transaction-date iso-date="2020-01-02"/>'
            f'<value value-date="2020-01-02">{100 + i}.50</value>'
            f'<provider-org ref="XM-DON{i % 2 + 1}" provider-activity-id="XM-DON{i % 2 + 1}-A"/>'
            "</transaction>"
            f'<transaction><transaction-type code="3"/><transaction-date iso-date="2020-02-01"/>'
            f'<value value-date="2020-02-01">{50 + i}</value>'
            f'<receiver-org ref="XM-NGO-{i % 7}"/></transaction>'
            f'<transaction><transaction-type code="4"/><transaction-date iso-date="2020-03-01"/>'
            f'<value value-date="2020-03-01">25</value></transaction>'
            "</iati-activity>")
    big.append("</iati-activities>")
    d, b = tmp_path / "donors.xml", tmp_path / "big.xml"
    d.write_text("\n".join(donors))
    b.write_text("\n".join(big))
    return d, b


def test_5000_activity_organisation_traces_up_and_down(engine, tmp_path: Path) -> None:
    donors, big = _files(tmp_path)
    assert import_file(engine, donors).status == "applied"
    assert import_file(engine, big).status == "applied"
    longest: list[int] = []

    def measure(conn, cursor, statement, parameters, context, executemany) -> None:
        longest.append(len(statement))

    event.listen(engine, "before_cursor_execute", measure)
    try:
        with engine.connect() as c:
            up = trace(c, organization=BIG, direction="UPSTREAM")
            down = trace(c, organization=BIG, direction="DOWNSTREAM")
    finally:
        event.remove(engine, "before_cursor_execute", measure)
    received = sum(Decimal(100 + i) + Decimal("0.50") for i in range(N))
    by_donor = {o["organization"]: o["amount"] for o in up.originators}
    assert by_donor == {
        "XM-DON1": sum(Decimal(100 + i) + Decimal("0.50") for i in range(0, N, 2)),
        "XM-DON2": sum(Decimal(100 + i) + Decimal("0.50") for i in range(1, N, 2))}
    assert sum(by_donor.values()) == received == Decimal("13000000.00")
    assert up.counts["accounts"] == N
    assert down.counts["accounts"] >= N + 7
    spent = {(t["organization"], t["activity"]): t["amount"] for t in down.terminals}
    assert sum(v for (org, _), v in spent.items() if org == BIG) == Decimal(25 * N)
    # the largest statement is a chunk of 500 accounts, not one term per account
    assert max(longest) < 60_000, max(longest)
