"""Who a batch belongs to, read from what it writes (issue 18, items 1 and 5).

- An organisation file changes the organisation its ``<organisation-identifier>`` names:
  a reporter may upload one only for its own organisations, whatever ``reporting-org``
  says (a reporter for XM-DAC-46004 renamed US-GOV-1 and replaced its budgets).
- A revert undoes everything the batch changed, the registry's name, type and currency
  included.
- A batch's publishers are kept in full (``batch_publisher``); a joined string cut at
  200 characters let a reporter revert a batch that also held another organisation's rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from fundtrack.ingest.pipeline import import_file, revert_batch
from fundtrack.ledger import tables as m
from tests.conftest import SHARED
from tests.test_api_abuse import REVERT, report, upload

ADB = SHARED / "iati-organisation/asian-dev-bank-org.xml"
LEDGER = ("import_batch", "batch_issue", "batch_publisher", "batch_org_change", "organisation",
          "activity", "flow", "budget")
BATCH = """query($id: ID!) { node(id: $id) { ... on ImportBatch { status publisherRef
  publishers } } }"""


def org_file(ref: str, name: str, currency: str, budgets: list[str], *,
             reporting: str | None = None, org_type: str = "10") -> bytes:
    """An IATI organisation file: one organisation, a total-budget per amount."""
    lines = "".join(
        f'<total-budget><period-start iso-date="{2020 + i}-01-01"/>'
        f'<period-end iso-date="{2020 + i}-12-31"/><value value-date="{2020 + i}-01-01">{amount}'
        "</value></total-budget>" for i, amount in enumerate(budgets))
    rep = reporting or ref
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<iati-organisations version="2.03">'
            f'<iati-organisation default-currency="{currency}"><organisation-identifier>{ref}'
            f"</organisation-identifier><name><narrative>{name}</narrative></name>"
            f'<reporting-org ref="{rep}" type="{org_type}"><narrative>{name}</narrative>'
            f"</reporting-org>{lines}</iati-organisation></iati-organisations>\n").encode()


def snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as c:
        out: dict[str, Any] = {t: c.execute(select(func.count()).select_from(
            m.Base.metadata.tables[t])).scalar_one() for t in LEDGER}
        org = m.Organisation.__table__
        out["orgs"] = sorted(tuple(r) for r in c.execute(
            select(org.c.ref, org.c.name, org.c.type, org.c.default_currency, org.c.batch_id)))
        b = m.Budget.__table__
        out["budgets"] = sorted((r.organisation_ref, str(r.amount), r.currency, r.superseded_by)
                                for r in c.execute(select(b)))
    return out


def registry(engine: Engine, ref: str) -> tuple[Any, ...] | None:
    org = m.Organisation.__table__
    with engine.connect() as c:
        row = c.execute(select(org.c.name, org.c.type, org.c.default_currency, org.c.batch_id)
                        .where(org.c.ref == ref)).first()
    return tuple(row) if row else None


def current_budgets(engine: Engine, ref: str) -> list[str]:
    b = m.Budget.__table__
    with engine.connect() as c:
        return sorted(str(a) for a in c.execute(select(b.c.amount).where(
            b.c.organisation_ref == ref, b.c.superseded_by.is_(None))).scalars())


def test_reporter_cannot_rewrite_another_organisation_with_an_org_file(db_url: str,
                                                                       engine: Engine) -> None:
    api = Api(db_url)
    _, admin = create_token(engine, "admin")
    us = upload(api, org_file("US-GOV-1", "United States", "USD", ["310", "320"]), admin)
    assert us["status"] == "applied", us
    _, adb = create_token(engine, "reporter", ["XM-DAC-46004"])
    before = snapshot(engine)
    # the ADB's own file, its organisation-identifier changed to US-GOV-1; reporting-org
    # is still the ADB's own
    text = ADB.read_bytes().replace(b">XM-DAC-46004</organisation-identifier>",
                                    b">US-GOV-1</organisation-identifier>", 1)
    assert text.count(b'<reporting-org ref="XM-DAC-46004"') == 1
    out = upload(api, text, adb, "adb-as-usa.xml")
    assert out["status"] == "refused", out
    assert out["errors"][0]["code"] == "NOT_PERMITTED"
    assert "describes organisation US-GOV-1, which is not one of yours (XM-DAC-46004)" \
        in out["message"]
    assert snapshot(engine) == before  # nothing written: not its name, not its budgets
    assert registry(engine, "US-GOV-1")[0] == "United States"
    # its own file, unchanged, is still accepted
    assert upload(api, ADB.read_bytes(), adb)["status"] == "applied"


def test_revert_puts_back_the_organisation_name_type_and_currency(engine: Engine, tmp_path
                                                                  ) -> None:
    baseline = snapshot(engine)
    v1 = tmp_path / "v1.xml"
    v1.write_bytes(org_file("XX-ORG", "Old name", "EUR", ["100", "200"], org_type="21"))
    v2 = tmp_path / "v2.xml"
    v2.write_bytes(org_file("XX-ORG", "New name", "GBP", ["999"], org_type="22"))
    first = import_file(engine, v1)
    assert registry(engine, "XX-ORG") == ("Old name", "21", "EUR", first.batch_id)
    after_first = snapshot(engine)
    second = import_file(engine, v2)
    assert registry(engine, "XX-ORG") == ("New name", "22", "GBP", second.batch_id)
    assert current_budgets(engine, "XX-ORG") == ["999"]

    out = revert_batch(engine, second.batch_id)
    assert out["restored_organisations"] == 1
    assert registry(engine, "XX-ORG") == ("Old name", "21", "EUR", first.batch_id)
    assert current_budgets(engine, "XX-ORG") == ["100", "200"]
    after = snapshot(engine)
    bookkeeping = {"import_batch", "batch_issue", "batch_publisher", "batch_org_change"}
    assert {k: v for k, v in after.items() if k not in bookkeeping} == \
        {k: v for k, v in after_first.items() if k not in bookkeeping}

    # the first file created the organisation: reverting it removes it again
    out = revert_batch(engine, first.batch_id)
    assert out["removed_organisations"] == 1
    assert registry(engine, "XX-ORG") is None
    final = snapshot(engine)
    assert final["orgs"] == baseline["orgs"] and final["budgets"] == []


def test_revert_out_of_order_keeps_the_later_description(engine: Engine, tmp_path) -> None:
    """Reverting an earlier file leaves a later one's description; reverting the later one
    then goes back past the reverted one (to nothing: the earlier file created it)."""
    files = []
    for n, name in enumerate(("Name A", "Name B")):
        f = tmp_path / f"{n}.xml"
        f.write_bytes(org_file("XX-ORG", name, "USD", [str(10 + n)]))
        files.append(import_file(engine, f))
    a, b = files
    revert_batch(engine, a.batch_id)
    assert registry(engine, "XX-ORG") == ("Name B", "10", "USD", b.batch_id)
    revert_batch(engine, b.batch_id)
    assert registry(engine, "XX-ORG") is None


def test_revert_keeps_an_organisation_another_batch_still_names(engine: Engine, tmp_path
                                                                ) -> None:
    f = tmp_path / "org.xml"
    f.write_bytes(org_file("XX-ORG", "Described", "USD", ["5"]))
    described = import_file(engine, f)
    act = tmp_path / "act.xml"
    act.write_bytes(report(("XX-ORG", "XX-ORG-1", "7")))
    assert import_file(engine, act).status == "applied"
    revert_batch(engine, described.batch_id)
    # the activity file names it: it stays, without the reverted description
    assert registry(engine, "XX-ORG") == (None, None, None, None)


MINE = "AA-" + "M" * 197  # 200 characters: the old joined string held nothing after it


def test_reporter_cannot_revert_a_batch_whose_publishers_run_past_200_characters(
        db_url: str, engine: Engine) -> None:
    api = Api(db_url)
    _, admin = create_token(engine, "admin")
    mixed = upload(api, report((MINE, "AA-1", "10"), ("ZZ-VICTIM", "ZZ-VICTIM-1", "20")), admin)
    assert mixed["status"] == "applied", mixed
    batch = api.query(BATCH, {"id": mixed["batch"]["id"]}, token=admin)["node"]
    assert batch["publishers"] == [MINE, "ZZ-VICTIM"]
    assert batch["publisherRef"] == f"{MINE},ZZ-VICTIM"  # in full, not cut at 200
    _, mine = create_token(engine, "reporter", [MINE])
    before = snapshot(engine)
    refused = api.query(REVERT, {"id": mixed["batch"]["id"]}, token=mine)["revertImport"]
    assert refused["errors"][0]["code"] == "NOT_PERMITTED", refused
    assert "ZZ-VICTIM" in refused["errors"][0]["message"]
    assert snapshot(engine) == before
    # a token for both may revert it
    _, both = create_token(engine, "reporter", [MINE, "ZZ-VICTIM"])
    done = api.query(REVERT, {"id": mixed["batch"]["id"]}, token=both)["revertImport"]
    assert done["errors"] == [] and done["batch"]["status"] == "reverted"
