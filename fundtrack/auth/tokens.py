"""Who is asking: API tokens, roles and the ``fundtrack token`` command.

Tokens are random secrets shown once; only their sha256 is stored. Roles:
``admin`` (everything), ``reporter`` (import reports of its own organisations and revert
its own batches) and anonymous (read published data).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from fundtrack.auth.tables import ApiToken, ApiTokenOrg

ADMIN, REPORTER, ANONYMOUS = "admin", "reporter", "anonymous"


@dataclass(frozen=True)
class Viewer:
    """The caller of one request."""

    role: str = ANONYMOUS
    token_id: int | None = None
    label: str | None = None
    orgs: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def is_anonymous(self) -> bool:
        return self.role == ANONYMOUS

    @property
    def who(self) -> str:
        """How records name this caller (an import's ``imported_by``, a decision's or a
        WPS edit's author): ``token:<id> <label>``."""
        return f"token:{self.token_id} {self.label or ''}".strip()


ANONYMOUS_VIEWER = Viewer()


def published(viewer: Viewer, row: Any) -> bool:
    """Whether ``viewer`` may read a ledger ``row`` fetched by id (``node``/``nodes``).

    Published = the ledger as it stands: rows replaced by a later import carry
    ``superseded_by`` and are kept only for revert and provenance, so only token holders
    fetch them (with ``current: false``). Rows of reverted batches are deleted and dry
    runs are rolled back, so neither can be found at all. Lists and totals leave
    superseded rows out for everyone.
    """
    if row is None:
        return False
    return not viewer.is_anonymous or row.get("superseded_by") is None


# --- tokens -----------------------------------------------------------------------------

TOKEN_PREFIX = "ft_"
ROLES = (ADMIN, REPORTER)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(engine: Engine, role: str, orgs: Iterable[str] = (),
                 label: str | None = None) -> tuple[int, str]:
    """Store a new token (hashed) and return ``(id, secret)``; the secret is not kept."""
    orgs = sorted(set(orgs))
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == REPORTER and not orgs:
        raise ValueError("a reporter token needs at least one organisation (--org REF)")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        token_id = conn.execute(insert(ApiToken).values(
            secret_sha256=hash_secret(secret), role=role, label=label,
            created_at=datetime.now(UTC)).returning(ApiToken.id)).scalar_one()
        if orgs:
            conn.execute(insert(ApiTokenOrg), [{"token_id": token_id, "org_ref": o}
                                               for o in orgs])
    return token_id, secret


def viewer_for_secret(engine: Engine, secret: str) -> Viewer | None:
    """The viewer a bearer secret stands for; ``None`` if unknown or revoked."""
    with engine.connect().execution_options(readonly=True) as conn:
        row = conn.execute(select(ApiToken.id, ApiToken.role, ApiToken.label).where(
            ApiToken.secret_sha256 == hash_secret(secret),
            ApiToken.revoked_at.is_(None))).first()
        if row is None:
            return None
        orgs = conn.execute(select(ApiTokenOrg.org_ref).where(
            ApiTokenOrg.token_id == row.id)).scalars().all()
        conn.rollback()
    return Viewer(role=row.role, token_id=row.id, label=row.label, orgs=frozenset(orgs))


def revoke_token(engine: Engine, token_id: int) -> bool:
    with engine.begin() as conn:
        n = conn.execute(update(ApiToken).where(ApiToken.id == token_id,
                                                ApiToken.revoked_at.is_(None))
                         .values(revoked_at=datetime.now(UTC))).rowcount
    return bool(n)
