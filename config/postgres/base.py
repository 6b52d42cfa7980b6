"""Django's PostgreSQL backend without the ``varchar_pattern_ops`` twin of every indexed text column.

Django adds such a ``…_like`` index next to each indexed or unique varchar so
that ``LIKE 'abc%'`` can use it. Nothing here filters ids, keys or references
by prefix, and every index is written by every insert: the ledger and order
tables carried one twin per id and foreign key. Its cursors carry pghistory's context inside each
write statement (``config.audit_sql``) rather than as a statement before it.

psycopg converts each statement's ``%s`` placeholders to ``$n`` in Python and caches the result only for
statements under 4096 bytes and 50 parameters. The wallet purchase is one statement of about 4 kB with
over 100 parameters, so it was parsed again on every purchase (about 0.5 ms of CPU). The limits are
raised here for every connection of this backend; the cache stays an LRU of 128 statements, so it is
bounded whatever the ORM sends.
"""

from __future__ import annotations

import functools
from typing import Any

import psycopg._queries as psycopg_queries
from django.db.backends.postgresql import base, schema

from config.audit_sql import context_in_statement

# Read by psycopg at each conversion (psycopg 3.3); tests/config/test_postgres_backend.py proves the purchase hits it.
psycopg_queries.MAX_CACHED_STATEMENT_LENGTH = 16384
psycopg_queries.MAX_CACHED_STATEMENT_PARAMS = 512


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    def _create_like_index_sql(self, model: Any, field: Any) -> None:
        return None


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params["cursor_factory"] = _context_in_statement_cursor(params["cursor_factory"])
        return params


@functools.cache
def _context_in_statement_cursor(cursor_class: type) -> type:
    """``cursor_class`` whose statements carry pghistory's context inside them (config.audit_sql)."""

    class ContextInStatementCursor(cursor_class):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            query, params = context_in_statement(query, params)
            return super().execute(query, params, **kwargs)

    return ContextInStatementCursor
