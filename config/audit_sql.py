"""pghistory's context inside a prepared statement: one statement, the context in its first CTE.

Used by ``config.db.prepared_cursor``; pghistory's own wrapper would make the statement two.
"""

from __future__ import annotations

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


def context_in_statement(sql: str, params: Any) -> tuple[str, Any]:
    """``sql`` as one statement: pghistory's prepended context (if any) becomes the statement's first CTE."""
    if not isinstance(sql, str) or not _PREFIX.match(sql) or not isinstance(params, (list, tuple)):
        return sql, params
    rest = sql[_PREFIX.match(sql).end() :]  # type: ignore[union-attr]
    with_clause = _WITH.match(rest)
    if with_clause:
        head = "WITH " + (with_clause.group(1) or "")
        return f"{head}{_CONTEXT_CTE}, {rest[with_clause.end() :]}", params
    return f"WITH {_CONTEXT_CTE} {rest}", params
