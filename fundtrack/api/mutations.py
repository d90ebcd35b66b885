"""Mutations: one ``input`` object each, a payload with ``errors``, access checked first."""

from __future__ import annotations

import strawberry


@strawberry.type
class LedgerMutation:
    @strawberry.mutation(description="Placeholder until uploads land.")
    def noop(self) -> bool:
        return False
