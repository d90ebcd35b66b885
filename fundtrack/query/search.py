"""Activity search: the words people type, matched against an activity and the
organisations named on it (issue 16 item 8).

One rule for the page (``/activity?q=``) and the API (``ActivityWhere.search``): the text
is found, ignoring case and accents (:mod:`fundtrack.db.text`), in the activity's IATI
identifier or title, its reporting organisation's ref or name (as reported, or the
registry's name for that ref), a participating organisation's ref or name (idem), or
the provider or receiver name of one of its flows (idem for their refs' registry names).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_, select

from fundtrack.db.text import fold, like_pattern
from fundtrack.ledger import tables as m


def activity_search(text: str, table: Any = None) -> ColumnElement[bool]:
    """SQL: the activity (of ``table``, default ``activity``) matches the search ``text``."""
    a = (table if table is not None else m.Activity.__table__).c
    p, f, o = m.ParticipatingOrg.__table__, m.Flow.__table__, m.Organisation.__table__
    pattern = like_pattern(text.strip())

    def hit(col: Any) -> ColumnElement[bool]:
        return fold(col).like(pattern, escape="\\")

    # Registry entries whose name matches: a report that gives only the ref still matches.
    named = select(o.c.ref).where(hit(o.c.name))
    return or_(
        hit(a.iati_identifier), hit(a.title), hit(a.reporting_org_ref),
        hit(a.reporting_org_name), a.reporting_org_ref.in_(named),
        a.id.in_(select(p.c.activity_id).where(or_(hit(p.c.name), hit(p.c.ref),
                                                   p.c.ref.in_(named)))),
        a.id.in_(select(f.c.activity_id).where(or_(
            hit(f.c.provider_name), hit(f.c.receiver_name),
            f.c.provider_ref.in_(named), f.c.receiver_ref.in_(named)))),
    )
