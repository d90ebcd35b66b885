"""Ledger tables for API tokens and access control (GraphQL API issue)."""

from __future__ import annotations

from fundtrack.models import Base  # noqa: F401
