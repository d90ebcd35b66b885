"""People's decisions about who is who (issue 15 item 3): merge, split, set type, flag as
pooled fund or women's rights organisation, name-only parties included.

A decision is a row of ``org_decision`` (who, when, why, from where); the identity
resolver applies every decision that is not undone, first, on every rebuild
(:mod:`fundtrack.identity.resolve`), so decisions survive re-imports and ``fundtrack
recompute``. Undoing one marks it reverted (the row stays, for the record): the rebuild
then gives exactly the answers from before. Each change is a ledger writer like a
registry edit: it takes the ledger lock and rebuilds the derived steps that read the
registry (identity first, then the money trail), in the caller's transaction.

The same decisions come from the API (admin mutations), the CLI (``fundtrack orgs``) and
a reviewable TOML file (``fundtrack orgs apply FILE``), which may be applied again: an
entry already in force is left as it is.
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, update

from fundtrack.derived import steps as derived
from fundtrack.identity.tables import OrgDecision
from fundtrack.ledger.writer import lock_ledger

log = logging.getLogger(__name__)

#: action -> (needs a target, needs a value): the one list of what people may decide.
ACTIONS: dict[str, tuple[bool, bool]] = {
    "merge": (True, False),  # subject is the organisation target
    "split": (False, False),  # the identifier or name subject does not denote (target)
    "set_type": (False, True),  # value: an IATI OrganisationType code
    "flag_pooled_fund": (False, True),  # value: true | false
    "flag_wro": (False, True),  # value: true | false
}
FLAG_VALUES = ("true", "false")
_TYPE_CODE = re.compile(r"^\d{1,3}$")
#: The fields of a decision as the file, the CLI and the API give them.
FIELDS = ("action", "subject", "target", "value", "reason")


class DecisionError(ValueError):
    """A decision that cannot be taken as given; says which field and why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Decision:
    """What a person decides (before it is recorded)."""

    action: str
    subject: str
    reason: str
    target: str | None = None
    value: str | None = None

    def key(self) -> tuple[str, str, str | None, str | None]:
        return (self.action, self.subject, self.target, self.value)


def check(d: Decision) -> Decision:
    """``d`` cleaned (spaces trimmed, flags lower case) or a :class:`DecisionError`."""
    action = (d.action or "").strip().lower().replace("-", "_")
    if action not in ACTIONS:
        raise DecisionError("action", f"{d.action!r} is not one of {', '.join(ACTIONS)}")
    subject = " ".join((d.subject or "").split())
    if not subject or len(subject) > 300:
        raise DecisionError("subject", "give a ref, an identifier or name:<reported name> "
                            "(at most 300 characters)")
    if subject == "name:":
        raise DecisionError("subject", "name: needs the name as reported after it")
    reason = (d.reason or "").strip()
    if not reason:
        raise DecisionError("reason", "say why (it is kept with the decision)")
    needs_target, needs_value = ACTIONS[action]
    target = " ".join((d.target or "").split()) or None
    if needs_target and not target:
        raise DecisionError("target", f"{action} needs the organisation to merge into")
    if target is not None and len(target) > 300:
        raise DecisionError("target", "at most 300 characters")
    if action == "merge" and target == subject:
        raise DecisionError("target", "an organisation cannot be merged into itself")
    value = (d.value or "").strip() or None
    if needs_value and value is None:
        raise DecisionError("value", f"{action} needs a value")
    if not needs_value and value is not None:
        raise DecisionError("value", f"{action} takes no value")
    if action.startswith("flag_"):
        value = (value or "").lower()
        if value not in FLAG_VALUES:
            raise DecisionError("value", "a flag is true or false")
    if action == "set_type" and not _TYPE_CODE.match(value or ""):
        raise DecisionError("value", f"{value!r} is not an IATI OrganisationType code "
                            "(10, 21, 40, 80 ...)")
    return Decision(action, subject, reason, target, value)


def _names_something(conn: Connection, key: str) -> bool:
    """Whether ``key`` (ref, identifier or name:<name>) names an organisation the identity
    tables know, or a party of a current report."""
    from fundtrack.identity.names import normalise
    from fundtrack.identity.tables import CanonicalOrg, OrgIdentifier, OrgName, PartyResolution

    co, oi, on, pr = (CanonicalOrg.__table__, OrgIdentifier.__table__, OrgName.__table__,
                      PartyResolution.__table__)
    if key.startswith("name:"):
        name = key[5:]
        return conn.execute(select(on.c.id).where(on.c.normalised == normalise(name)).limit(1)
                            ).first() is not None or conn.execute(
            select(pr.c.id).where(pr.c.name_key == name).limit(1)).first() is not None
    for q in (select(co.c.id).where(co.c.ref == key), select(oi.c.id).where(oi.c.value == key),
              select(pr.c.id).where(pr.c.ref == key)):
        if conn.execute(q.limit(1)).first() is not None:
            return True
    return False


def _active(conn: Connection) -> list[Any]:
    d = OrgDecision.__table__
    return list(conn.execute(select(d).where(d.c.reverted_at.is_(None))
                             .order_by(d.c.decided_at, d.c.id)).mappings())


def _insert(conn: Connection, d: Decision, by: str, via: str, now: datetime) -> Any:
    t = cast(Table, OrgDecision.__table__)
    pk = conn.execute(insert(t).values(
        action=d.action, subject=d.subject, target=d.target, value=d.value, reason=d.reason,
        decided_by=by, decided_at=now, via=via).returning(t.c.id)).scalar_one()
    return conn.execute(select(t).where(t.c.id == pk)).mappings().one()


def decide(conn: Connection, d: Decision, by: str, via: str) -> Any:
    """Record one decision and rebuild what it changes; returns its row.

    The subject and target must name something the identity tables or the reports know
    (a typo would otherwise be a decision about nothing)."""
    d = check(d)
    if not by.strip():
        raise DecisionError("by", "say who decides")
    lock_ledger(conn)
    for field, key in (("subject", d.subject), ("target", d.target)):
        if key is not None and not _names_something(conn, key):
            raise DecisionError(field, f"{key!r} names no organisation, identifier or "
                                "reported name in this database")
    for r in _active(conn):
        if (r["action"], r["subject"], r["target"], r["value"]) == d.key():
            raise DecisionError("subject", f"the same decision is in force already "
                                f"(decision {r['id']}, {r['decided_by']})")
    row = _insert(conn, d, by.strip(), via, datetime.now(UTC))
    derived.after_registry_edit(conn)
    log.info("identity decision %s by %s via %s: %s %s -> %s (%s)", row["id"], by, via,
             d.action, d.subject, d.target or d.value or "", d.reason)
    return row


def undo(conn: Connection, decision_id: int, by: str) -> Any:
    """Mark a decision reverted and rebuild: the answers are those from before it."""
    t = cast(Table, OrgDecision.__table__)
    lock_ledger(conn)
    row = conn.execute(select(t).where(t.c.id == decision_id)).mappings().first()
    if row is None:
        raise DecisionError("id", f"no decision {decision_id}")
    if row["reverted_at"] is not None:
        raise DecisionError("id", f"decision {decision_id} was undone already "
                            f"({row['reverted_at']:%Y-%m-%d %H:%M} by {row['reverted_by']})")
    conn.execute(update(t).where(t.c.id == decision_id).values(
        reverted_at=datetime.now(UTC), reverted_by=by.strip() or "?"))
    derived.after_registry_edit(conn)
    log.info("identity decision %s undone by %s", decision_id, by)
    return conn.execute(select(t).where(t.c.id == decision_id)).mappings().one()


def read_file(path: Path) -> list[Decision]:
    """The decisions of a TOML file (``[[decision]]`` tables with action, subject,
    target, value, reason), checked; errors name the entry and field."""
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeError, tomllib.TOMLDecodeError) as exc:
        raise DecisionError("file", f"{path}: {exc}") from None
    entries = doc.get("decision", [])
    if not isinstance(entries, list):
        raise DecisionError("file", f"{path}: [[decision]] entries expected")
    out = []
    for i, e in enumerate(entries, 1):
        unknown = sorted(set(e) - set(FIELDS))
        if unknown:
            raise DecisionError(f"decision {i}", f"unknown field(s) {', '.join(unknown)} "
                                f"(known: {', '.join(FIELDS)})")
        try:
            out.append(check(Decision(**{k: str(v) for k, v in e.items()})))  # type: ignore[arg-type]
        except TypeError:
            raise DecisionError(f"decision {i}", "action, subject and reason are required"
                                ) from None
        except DecisionError as exc:
            raise DecisionError(f"{path.name}: decision {i} {exc.field}",
                                str(exc).split(": ", 1)[1]) from None
    return out


@dataclass
class Applied:
    """What applying a file did."""

    added: list[Any]
    kept: int


def apply_file(conn: Connection, path: Path, by: str) -> Applied:
    """Record the file's decisions that are not in force yet (one rebuild for all).
    Entries already in force (same action, subject, target, value) are kept as they are,
    so the file can be applied again; decisions the file no longer holds are not undone
    (undo them by id)."""
    wanted = read_file(path)
    lock_ledger(conn)
    active = {(r["action"], r["subject"], r["target"], r["value"]) for r in _active(conn)}
    for i, d in enumerate(wanted, 1):
        for field, key in (("subject", d.subject), ("target", d.target)):
            if key is not None and not _names_something(conn, key):
                raise DecisionError(f"{path.name}: decision {i} {field}",
                                    f"{key!r} names no organisation, identifier or reported "
                                    "name in this database")
    now = datetime.now(UTC)
    added = []
    for d in wanted:
        if d.key() in active:
            continue
        active.add(d.key())
        added.append(_insert(conn, d, by, f"file:{path.name}", now))
    if added:
        derived.after_registry_edit(conn)
    log.info("identity decisions from %s: %d added, %d already in force", path, len(added),
             len(wanted) - len(added))
    return Applied(added=added, kept=len(wanted) - len(added))


def to_toml(rows: list[Any]) -> str:
    """Decisions as the file ``apply_file`` reads (who and when as comments)."""
    out = ["# fundtrack organisation decisions (fundtrack orgs apply FILE)", ""]
    for r in rows:
        out.append(f"# decision {r['id']}: {r['decided_by']}, {r['decided_at']:%Y-%m-%d %H:%M}"
                   f" UTC, via {r['via']}")
        out.append("[[decision]]")
        for k in FIELDS:
            if r[k] is not None:
                out.append(f"{k} = {_toml_str(str(r[k]))}")
        out.append("")
    return "\n".join(out)


def _toml_str(s: str) -> str:
    esc = s.replace("\\", "\\\\").replace('"', '\\"')
    esc = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in esc)
    return f'"{esc}"'


def decisions(conn: Connection, include_undone: bool = False) -> list[Any]:
    """Every decision in force (or all of them), oldest first."""
    t = OrgDecision.__table__
    q = select(t).order_by(t.c.decided_at, t.c.id)
    if not include_undone:
        q = q.where(t.c.reverted_at.is_(None))
    return list(conn.execute(q).mappings())
