"""Text folded for searching: case and accents ignored, the same way on both databases.

Searching "cote d'ivoire" must find "Côte d'Ivoire" and "organizacion" "Organización".
PostgreSQL's ``unaccent`` is an extension a server may lack, and SQLite has neither it
nor a Unicode ``lower``; so the folding is one fixed table (Latin letters with
diacritics to their base letter, upper case to lower), applied by ``translate`` and
``lower`` on PostgreSQL and by the same table in Python on SQLite (the function
``ft_fold``, registered on every SQLite connection by :mod:`fundtrack.db.engine`).
Letters outside the table (Greek, Cyrillic ...) are lower-cased by each database's own
rules.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

#: Letters without a decomposition that people still type without their stroke.
_EXTRA = {"Ø": "o", "ø": "o", "Đ": "d", "đ": "d", "Ł": "l", "ł": "l", "Ħ": "h", "ħ": "h",
          "ı": "i", "Ŧ": "t", "ŧ": "t"}


def _table() -> tuple[str, str]:
    src, dst = [], []
    for code in [*range(ord("A"), ord("Z") + 1), *range(0xC0, 0x250)]:
        ch = chr(code)
        base = _EXTRA.get(ch) or unicodedata.normalize("NFKD", ch)[0]
        if base != ch and base.isascii() and base.isalpha():
            src.append(ch)
            dst.append(base.lower())
    return "".join(src), "".join(dst)


#: ``translate(text, FOLD_FROM, FOLD_TO)``: each character of FOLD_FROM becomes the one
#: at the same place in FOLD_TO.
FOLD_FROM, FOLD_TO = _table()
_TRANSLATION = str.maketrans(FOLD_FROM, FOLD_TO)


def fold_text(value: str | None) -> str | None:
    """``value`` folded as :class:`fold` folds a column (None stays None)."""
    return None if value is None else value.translate(_TRANSLATION).lower()


class fold(FunctionElement[str]):  # noqa: N801 (an SQL function, named like one)
    """SQL: the folded text of an expression (:func:`fold_text`, in the database)."""

    type = String()
    name = "fold"
    inherit_cache = True


@compiles(fold, "sqlite")
def _fold_sqlite(element: fold, compiler: Any, **kw: Any) -> str:
    return f"ft_fold({compiler.process(element.clauses, **kw)})"


@compiles(fold)
def _fold_default(element: fold, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return (f"lower(translate({arg}, {compiler.render_literal_value(FOLD_FROM, String())}, "
            f"{compiler.render_literal_value(FOLD_TO, String())}))")


def like_pattern(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching ``text`` folded, anywhere."""
    folded = fold_text(text) or ""
    escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
