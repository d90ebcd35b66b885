"""What a database failure means to a client, in words that give away no details."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError


def database_error_message(exc: BaseException | None) -> str | None:
    """A safe, detail-free message for a database failure, or None if ``exc`` is not one.

    A client cannot act on "Internal error", but can on "the database is unavailable, try
    again" (a restart, a failover) or "the statement timeout cut the query" (ask less).
    The API's error masking and the pages both say it this way.
    """
    if not isinstance(exc, DBAPIError):
        return None
    if type(exc.orig).__name__ == "QueryCanceled":
        return ("The query ran longer than the statement timeout and was cancelled; "
                "ask for less (smaller pages, narrower filters).")
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return "The database is unavailable just now; try again shortly."
    return None
