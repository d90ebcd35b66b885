"""``fundtrack token create|list|revoke``: API tokens (only a hash is stored)."""

from __future__ import annotations

import click
from sqlalchemy import select

from fundtrack.auth.tables import ApiToken, ApiTokenOrg
from fundtrack.auth.tokens import ROLES, create_token, revoke_token


@click.group("token")
def token_group() -> None:
    """API tokens: create, list, revoke."""


@token_group.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--org", "orgs", multiple=True,
              help="Organisation reference this reporter reports for (repeatable).")
@click.option("--label", default=None, help="Who or what the token is for.")
def token_create(role: str, orgs: tuple[str, ...], label: str | None) -> None:
    """Create a token and print its secret (shown once; only a hash is stored)."""
    from fundtrack.db import make_engine

    try:
        token_id, secret = create_token(make_engine(), role, orgs, label)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"token {token_id} ({role}{': ' + ', '.join(sorted(orgs)) if orgs else ''})",
               err=True)
    click.echo(secret)


@token_group.command("list")
def token_list() -> None:
    """List tokens (never their secrets)."""
    from fundtrack.db import make_engine

    engine = make_engine()
    with engine.connect() as conn:
        orgs: dict[int, list[str]] = {}
        for tid, ref in conn.execute(select(ApiTokenOrg.token_id, ApiTokenOrg.org_ref)):
            orgs.setdefault(tid, []).append(ref)
        # Rows, not ``.scalars()``: on a Core connection that would give the first column
        # (the id) alone.
        for t in conn.execute(select(ApiToken.id, ApiToken.role, ApiToken.revoked_at,
                                     ApiToken.created_at, ApiToken.label)
                              .order_by(ApiToken.id)):
            state = "revoked" if t.revoked_at else "active"
            refs = ",".join(sorted(orgs.get(t.id, []))) or "-"
            click.echo(f"{t.id:5} {t.role:9} {state:8} {refs} {t.label or ''}".rstrip())


@token_group.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke a token: it stops working at once."""
    from fundtrack.db import make_engine

    if not revoke_token(make_engine(), token_id):
        raise click.ClickException(f"no active token {token_id}")
    click.echo(f"token {token_id} revoked")
