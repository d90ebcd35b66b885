"""The identity step after an import or a revert (issue 15/17): it touches the batch's
parties and flows only, and gives the same canonical answers as ``identity.rebuild`` on the
final ledger (compared by canonical ref, since organisation ids differ).

Real shared files, imported one by one; a changed copy of one of them (a receiver that
another file names only by name, "ActionAid Zimbabwe", given an identifier; a party
renamed) re-imported over it, which moves the earlier name-only party; a second copy
without the rename over that (the renamed party is named by nothing current: dropped); an
FTS file imported and reverted; both copies reverted (the flows they replaced come back).
Each step is checked against ``identity.rebuild`` of the same ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import Connection, select

from fundtrack.db import make_engine
from fundtrack.derived.trail.recompute import recompute
from fundtrack.derived.trail.tables import Attribution, Movement, Reach
from fundtrack.identity import resolve
from fundtrack.identity import tables as t
from fundtrack.ingest.pipeline import import_file, revert_batch
from fundtrack.ledger import tables as m
from tests.conftest import SHARED

DPORTAL = SHARED / "iati-activity" / "dportal-covid19-2021"
FILES = [DPORTAL / "dportal_15.xml", DPORTAL / "dportal_118.xml", DPORTAL / "dportal_130.xml"]
FTS = sorted((SHARED / "fts-json").glob("custom-search-locationid-*.json"))[0]
NAME, REF = "ActionAid Zimbabwe", "ZZ-TEST-AAZ"
OLD = ("US-EIN-84-3058143", "Moving Well Project International")
RENAMED = (OLD[0], OLD[1] + " (renamed)")


def _changed_copy(tmp: Path, rename: bool) -> Path:
    """dportal_118.xml (no receiver-org anywhere) whose first transaction now names its
    receiver: ``REF``, ``NAME``; with ``rename``, ``OLD`` named ``RENAMED`` wherever it
    appears."""
    tree = etree.parse(str(DPORTAL / "dportal_118.xml"))
    tx = next(tree.iter("transaction"))
    prov = tx.find("provider-org")
    rec = etree.Element("receiver-org", ref=REF)
    etree.SubElement(rec, "narrative").text = NAME
    prov.addnext(rec)
    for n in tree.iter("narrative"):
        if rename and n.text == OLD[1]:
            n.text = RENAMED[1]
    out = tmp / f"dportal_118{'-renamed' if rename else ''}.xml"
    tree.write(str(out), xml_declaration=True, encoding="utf-8")
    return out


def _name_only_receivers(path: Path, name: str) -> int:
    """Transactions whose receiver-org is named ``name`` and has no ref, or has the name
    itself in its ref attribute (a ref of words is a name, docs/methodology.md) (lxml)."""
    tree = etree.parse(str(path))
    return sum(1 for r in tree.iter("receiver-org") if r.get("ref", "").strip() in ("", name)
               and ((r.findtext("narrative") or "").strip() or r.get("ref", "").strip()) == name)


def snapshot(conn: Connection) -> dict[str, Any]:
    """Canonical answers of the identity tables, by ref (not by id)."""
    co, fp = t.CanonicalOrg.__table__, t.FlowParty.__table__
    orgs = {r.id: (r.ref, r.merged_into_id) for r in conn.execute(select(co))}

    def ref(oid: int | None) -> str | None:
        while oid is not None and orgs[oid][1] is not None:
            oid = orgs[oid][1]
        return None if oid is None else orgs[oid][0]

    pr, oi, on, mc = (t.PartyResolution.__table__, t.OrgIdentifier.__table__,
                      t.OrgName.__table__, t.MatchCandidate.__table__)
    f = m.Flow.__table__
    return {
        "current_flows": set(conn.execute(select(f.c.id).where(f.c.superseded_by.is_(None)))
                             .scalars()),
        "flow_party": {r.flow_id: (ref(r.provider_org_id), ref(r.receiver_org_id),
                                   ref(r.reporter_org_id)) for r in conn.execute(select(fp))},
        "parties": {(r.ref, r.name_key): (ref(r.org_id), r.rule)
                    for r in conn.execute(select(pr))},
        "identifiers": {(r.value, ref(r.org_id), r.scheme) for r in conn.execute(select(oi))},
        "names": {(r.name, ref(r.org_id)) for r in conn.execute(select(on))},
        "candidates": {(r.party_ref, r.party_name, ref(r.org_id), ref(r.candidate_org_id))
                       for r in conn.execute(select(mc))},
        "orgs": {(r.ref, r.name, r.type, r.is_pooled_fund, r.is_womens_rights_org)
                 for r in conn.execute(select(co)) if r.merged_into_id is None},
    }


def trail(conn: Connection) -> tuple[list[Any], list[Any], list[Any]]:
    """Movements, their attribution and the donor rollup by content (flow ids, never
    movement ids)."""
    t, a = Movement.__table__, Attribution.__table__
    cols = (t.c.flow_id, t.c.mirror_flow_id, t.c.method, t.c.kind, t.c.src_org,
            t.c.src_activity, t.c.dst_org, t.c.dst_activity, t.c.amount, t.c.currency)
    moves = sorted(tuple(r) for r in conn.execute(select(*cols)))
    attr = sorted((tuple(r) for r in conn.execute(
        select(t.c.flow_id, t.c.kind, a.c.originator_ref, a.c.untraced_reason, a.c.amount)
        .select_from(a.join(t, t.c.id == a.c.movement_id)))), key=repr)
    r = Reach.__table__
    reach = sorted((tuple(x) for x in conn.execute(select(
        r.c.originator_ref, r.c.kind, r.c.org, r.c.activity, r.c.currency, r.c.amount,
        r.c.amount_usd, r.c.n, r.c.depth))), key=repr)
    return moves, attr, reach


def _check(eng: Any) -> dict[str, Any]:
    """The incremental tables against a rebuild of the same ledger (rolled back): identity
    and, since the trail's incremental path reads it, the money trail too."""
    with eng.connect() as conn:
        inc = snapshot(conn)
        inc_trail = trail(conn)
        resolve.rebuild(conn)
        full = snapshot(conn)
        recompute(conn)
        full_trail = trail(conn)
        conn.rollback()
    assert set(inc["flow_party"]) == inc["current_flows"]
    for k in full:
        assert inc[k] == full[k], k
    assert inc_trail[0] == full_trail[0]
    assert inc_trail[1] == full_trail[1]
    assert inc_trail[2] == full_trail[2]
    return inc


def test_incremental_identity_equals_rebuild(db_factory: Any, tmp_path: Path) -> None:
    url = db_factory.new_url()
    eng = make_engine(url)
    try:
        for path in FILES:
            assert import_file(eng, path).status == "applied", path
            _check(eng)
        before = _check(eng)
        aaz = {k: v for k, v in before["parties"].items() if k == ("", NAME)}
        assert aaz[("", NAME)][0] == "name:actionaid zimbabwe"
        expected = _name_only_receivers(DPORTAL / "dportal_15.xml", NAME)
        assert expected == 16  # 15 with no ref, 1 with the name as its ref
        changed = import_file(eng, _changed_copy(tmp_path, rename=True))
        assert changed.status == "applied"
        after = _check(eng)
        # the earlier name-only party now resolves (name rule) to the new identifier, and
        # so do dportal_15's flows, which the re-import did not carry
        assert after["parties"][("", NAME)] == (REF, "name")
        moved = [fid for fid, (_, rec, _) in after["flow_party"].items()
                 if rec == REF and before["flow_party"].get(fid, (None,) * 3)[1]
                 == "name:actionaid zimbabwe"]
        assert len(moved) == expected
        # OLD stays: the organisation registry still names it (imports keep what they met)
        assert OLD in after["parties"] and RENAMED in after["parties"]
        # the same change without the rename, over it: RENAMED was named only by the rows
        # this import replaces (and not by the registry): dropped, as a rebuild drops it
        again = import_file(eng, _changed_copy(tmp_path, rename=False))
        assert again.status == "applied"
        assert RENAMED not in _check(eng)["parties"]
        fts = import_file(eng, FTS)
        assert fts.status == "applied"
        _check(eng)
        revert_batch(eng, fts.batch_id)
        _check(eng)
        revert_batch(eng, again.batch_id)  # the renamed copy's flows are current again
        assert RENAMED in _check(eng)["parties"]
        revert_batch(eng, changed.batch_id)  # dportal_118's original flows are current again
        back = _check(eng)
        assert back["parties"][("", NAME)] == ("name:actionaid zimbabwe", "new")
        assert (REF, NAME) not in back["parties"] and RENAMED not in back["parties"]
        assert back["flow_party"] == before["flow_party"]
    finally:
        eng.dispose()
        db_factory.drop(url)


def _amount_changed_copy(tmp: Path) -> Path:
    """dportal_130.xml with its first transaction's value doubled and its provider left out
    (a side nobody is named on): new bytes, the same parties."""
    tree = etree.parse(str(DPORTAL / "dportal_130.xml"))
    tx = next(tree.iter("transaction"))
    value = tx.find("value")
    value.text = str(float(value.text) * 2)
    tx.remove(tx.find("provider-org"))
    out = tmp / "dportal_130-amount.xml"
    tree.write(str(out), xml_declaration=True, encoding="utf-8")
    return out


def test_a_file_of_known_parties_only_skips_resolution(
        db_factory: Any, tmp_path: Path, caplog: Any) -> None:
    """A publisher's next file that names only parties already resolved changes no input
    of the resolution: only its flows' ``flow_party`` rows are written, and the tables
    equal a rebuild's. A file with a new party still resolves the set."""
    url = db_factory.new_url()
    eng = make_engine(url)
    try:
        for path in FILES:
            assert import_file(eng, path).status == "applied", path
        before = _check(eng)
        caplog.set_level("INFO", logger="fundtrack.identity.incremental")
        caplog.clear()
        again = import_file(eng, _amount_changed_copy(tmp_path))
        assert again.status == "applied" and again.counts["replaced_flows"] > 0
        assert "every party already resolved" in caplog.text
        after = _check(eng)
        assert after["parties"] == before["parties"]
        assert after["current_flows"] != before["current_flows"]
        caplog.clear()
        assert import_file(eng, _changed_copy(tmp_path, rename=False)).status == "applied"
        assert "every party already resolved" not in caplog.text  # ZZ-TEST-AAZ is new
        assert _check(eng)["parties"][("", NAME)] == (REF, "name")
    finally:
        eng.dispose()
        db_factory.drop(url)


#: Organisations an organisation file describes: a new identifier for a body earlier files
#: named only by name, and a name for an identifier earlier files named (ref only, or
#: with another name) that another file uses alone.
ACF = ("ZZ-TEST-ACF", "Action Contre la Faim")
ADA = ("DE-CR-BonnVR8726", "ADA")


def _org_file(tmp: Path, orgs: list[tuple[str, str]]) -> Path:
    body = "".join(
        f'<iati-organisation default-currency="EUR"><organisation-identifier>{ref}'
        f"</organisation-identifier><name><narrative>{name}</narrative></name>"
        f'<reporting-org ref="{ref}" type="21"><narrative>{name}</narrative></reporting-org>'
        "</iati-organisation>" for ref, name in orgs)
    out = tmp / "orgs.xml"
    out.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<iati-organisations version="2.03">'
                   f"{body}</iati-organisations>\n", encoding="utf-8")
    return out


def _identity_log(caplog: Any) -> dict[str, Any]:
    """The counts the last identity update logged."""
    outs = [r.args[-1] for r in caplog.records if r.name == "fundtrack.identity.incremental"
            and isinstance(r.args, tuple) and r.args and isinstance(r.args[-1], dict)]
    assert outs, caplog.text
    return outs[-1]


def test_a_file_of_new_organisations_resolves_only_their_part(
        db_factory: Any, tmp_path: Path, caplog: Any) -> None:
    """An organisation file that registers ``ACF`` (named by name only before) and names
    ``ADA``'s identifier (named by ref before; ``ADA`` alone elsewhere) moves those
    name-only parties; the update resolves only the parties tied to them by ref or name,
    writes only their organisations, and equals a rebuild (identity and trail). A revert
    puts every answer back."""
    url = db_factory.new_url()
    eng = make_engine(url)
    try:
        for path in FILES:
            assert import_file(eng, path).status == "applied", path
        before = _check(eng)
        assert before["parties"][("", ACF[1])] == ("name:action contre la faim", "new")
        assert before["parties"][("", ADA[1])] == ("name:ada", "new")
        assert before["parties"][(ADA[0], "")] == (ADA[0], "new")
        caplog.set_level("INFO", logger="fundtrack.identity.incremental")
        caplog.clear()
        orgs = import_file(eng, _org_file(tmp_path, [ACF, ADA]))
        assert orgs.status == "applied"
        out = _identity_log(caplog)
        after = _check(eng)
        assert after["parties"][("", ACF[1])] == (ACF[0], "name")
        assert after["parties"][("", ADA[1])] == (ADA[0], "name")
        assert after["parties"][ACF] == (ACF[0], "new")
        assert (out["parties"], out["parties_changed"]) == (len(after["parties"]), 2)
        # the part: the two registry rows, the parties named by their refs and names
        assert out["parties_resolved"] == len({
            k for k in after["parties"] if k[0] in (ACF[0], ADA[0])
            or resolve.match_name(*k) in ("action contre la faim", "ada")})
        assert out["parties_resolved"] < len(after["parties"]) // 10
        changed = {k for k in after["parties"] if before["parties"].get(k) != after["parties"][k]}
        assert changed == {("", ACF[1]), ("", ADA[1]), ACF, ADA}
        revert_batch(eng, orgs.batch_id)
        back = _check(eng)
        assert back["parties"] == before["parties"]
        assert back["flow_party"] == before["flow_party"]
    finally:
        eng.dispose()
        db_factory.drop(url)


def test_part_follows_decisions_and_seeds(db_factory: Any, tmp_path: Path, caplog: Any
                                          ) -> None:
    """A person's merge ties the parties of its subject and target: a name given to an
    identifier makes it the merge's subject, and its parties move to the target; a seed's
    name given to a new identifier makes the seed's name-only party ambiguous (the seed,
    its identifiers and names are one part). The result equals a rebuild."""
    from fundtrack.registry.decisions import Decision, decide

    url = db_factory.new_url()
    eng = make_engine(url)
    try:
        for path in FILES:
            assert import_file(eng, path).status == "applied", path
        with eng.begin() as c:
            decide(c, Decision("merge", "name:ADA", "test", target="DE-1"), "tester", "test")
        before = _check(eng)
        assert before["parties"][("", ADA[1])] == ("DE-1", "decision")
        caplog.set_level("INFO", logger="fundtrack.identity.incremental")
        caplog.clear()
        assert import_file(eng, _org_file(tmp_path, [ADA, ("ZZ-TEST-PBF", "UN Peacebuilding Fund")])
                           ).status == "applied"
        out = _identity_log(caplog)
        after = _check(eng)
        assert after["parties"][("", ADA[1])] == ("DE-1", "decision")
        changed = {k: after["parties"][k] for k in after["parties"]
                   if before["parties"].get(k) != after["parties"][k]}
        # "ADA" now names DE-CR-BonnVR8726's organisation, which the merge of "name:ADA"
        # then moves into DE-1 whole; the seed's name, now also a registry row's, is ambiguous
        assert changed == {
            ("", "United Nations Peacebuilding Fund (UNPBF)"):
                ("name:united nations peacebuilding fund", "ambiguous"),
            (ADA[0], ""): ("DE-1", "decision"), ADA: ("DE-1", "decision"),
            (ADA[0], "IFOAM - Organics International"): ("DE-1", "decision"),
            ("ZZ-TEST-PBF", "UN Peacebuilding Fund"): ("ZZ-TEST-PBF", "new")}
        assert out["parties_changed"] == 3  # (ADA and ZZ-TEST-PBF are new parties)
        resolved = out["parties_resolved"]
        assert 0 < resolved < len(after["parties"])
        assert resolved >= len({k for k in after["parties"] if k[0] == "DE-1"})
    finally:
        eng.dispose()
        db_factory.drop(url)


def test_name_only_flows_are_found_by_index(engine: Any) -> None:
    """The flows of a party known only by name (looked up when an import drops or moves
    it) are read through the partial index on the trimmed name of a side without a ref,
    and are exactly the flows whose side carries that name and no ref."""
    from sqlalchemy import text

    from fundtrack.db.base import current
    from fundtrack.identity.incremental import name_only_flows

    assert import_file(engine, FILES[0]).status == "applied"
    f = m.Flow.__table__
    with engine.begin() as c:
        got = {r.id for r in c.execute(name_only_flows("receiver", [NAME], current(f)))}
        assert len(got) == _name_only_receivers(FILES[0], NAME) - 1  # (one has it as ref)
        sql = str(name_only_flows("receiver", [NAME], current(f)).compile(
            dialect=c.dialect, compile_kwargs={"literal_binds": True}))
        if c.dialect.name == "postgresql":
            c.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(r[0] for r in c.execute(text("EXPLAIN " + sql)))
        else:
            plan = " ".join(str(r[-1]) for r in c.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert "ix_flow_receiver_name_only" in plan, plan


def test_a_participating_org_name_longer_than_a_btree_entry_imports(engine: Any) -> None:
    """dportal_30.xml names participating organisations with up to 17 kB of text; the
    name indexes the identity update reads (hash on PostgreSQL, whose B-tree refuses an
    entry over 2,704 bytes) take them, and the file imports whole."""
    from sqlalchemy import func

    res = import_file(engine, DPORTAL / "dportal_30.xml")
    assert res.status == "applied", res
    p = m.ParticipatingOrg.__table__
    with engine.connect() as c:
        longest = c.execute(select(func.max(func.length(p.c.name)))).scalar_one()
        n_long = c.execute(select(func.count()).where(func.length(p.c.name) > 2704)).scalar_one()
    assert (longest, n_long) == (17459, 5)
