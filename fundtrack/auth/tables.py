"""Ledger tables for API tokens and access control (GraphQL API issue).

A token row keeps only the sha256 of the secret; the secret is shown once at creation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fundtrack.db.base import Base, BigId


class ApiToken(Base):
    """An API token: a role, a label, and (for reporters) the organisations it reports for."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiTokenOrg(Base):
    """An organisation (by reference) a reporter token may import and revert for."""

    __tablename__ = "api_token_org"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_token.id", ondelete="CASCADE"),
                                          index=True)
    org_ref: Mapped[str] = mapped_column(String(200))
