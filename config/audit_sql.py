"""pghistory's context inside the statement itself: one statement, the context in its first CTE.

Used by every cursor of ``config.postgres``; pghistory's own wrapper would make each write two statements.
"""

from __future__ import annotations

import functools
import re
from typing import Any

# pghistory puts its context in front of each statement as a second statement; a prepared statement
# (config.db.prepared_cursor) must be one. The same two settings move into a data-modifying CTE of the
# statement itself, which always runs; the triggers (AFTER, at the statement's end) then see them.
_PREFIX = re.compile(
    r"^SELECT set_config\('pghistory\.context_id', %s, true\), "
    r"set_config\('pghistory\.context_metadata', %s, true\); ",
)
_CONTEXT_CTE = (
    "pgh_context_set AS (INSERT INTO pghistory_context (id, metadata, created_at, updated_at)"
    " VALUES (set_config('pghistory.context_id', %s, true)::uuid,"
    " set_config('pghistory.context_metadata', %s, true)::jsonb, now(), now())"
    " ON CONFLICT (id) DO UPDATE SET metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at"
    " WHERE pghistory_context.metadata != EXCLUDED.metadata)"
)
_WITH = re.compile(r"^\s*WITH\s+(RECURSIVE\s+)?", re.IGNORECASE)
# Statements a CTE may precede, and transaction control, which changes no row and needs no context.
_WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)
_TRANSACTION_CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK)\b", re.IGNORECASE)
# A plain write names its one table first; a read changes no row. Neither needs a context row unless the
# table has a history: every other write would leave an unused row in pghistory_context per request.
_TARGET = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:ONLY\s+)?"?(\w+)"?', re.IGNORECASE)
_READ = re.compile(r"^\s*SELECT\b", re.IGNORECASE)


@functools.cache
def tracked_tables() -> frozenset[str]:
    """The tables whose rows pghistory's triggers snapshot (the tracked models of every event model)."""
    from django.apps import apps

    tracked = (getattr(model, "pgh_tracked_model", None) for model in apps.get_models())
    return frozenset(model._meta.db_table for model in tracked if model is not None)


def context_in_statement(sql: Any, params: Any) -> tuple[Any, Any]:
    """``sql`` as one statement: pghistory's prepended context (if any) becomes the statement's first CTE.

    Before a savepoint, its release or a rollback, a plain SELECT, or a plain write to a table without a
    history the context is dropped (they change no tracked row); any other statement a CTE cannot precede
    keeps pghistory's two statements.
    """
    prefix = _PREFIX.match(sql) if isinstance(sql, str) else None
    if prefix is None or not isinstance(params, (list, tuple)) or len(params) < 2:
        return sql, params
    rest = sql[prefix.end() :]
    if _TRANSACTION_CONTROL.match(rest) or _READ.match(rest):
        return rest, params[2:]
    target = _TARGET.match(rest)
    if target is not None and target.group(1) not in tracked_tables():
        return rest, params[2:]
    with_clause = _WITH.match(rest)
    if not with_clause and not _WRITES.match(rest):
        return sql, params
    if with_clause:
        head = "WITH " + (with_clause.group(1) or "")
        return f"{head}{_CONTEXT_CTE}, {rest[with_clause.end() :]}", params
    return f"WITH {_CONTEXT_CTE} {rest}", params
