"""Who is asking: API tokens, roles and the ``fundtrack token`` command.

Tokens are random secrets shown once; only their sha256 is stored. Roles:
``admin`` (everything), ``reporter`` (import reports of its own organisations and revert
its own batches) and anonymous (read published data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


ANONYMOUS_VIEWER = Viewer()
