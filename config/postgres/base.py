"""Django's PostgreSQL backend without the ``varchar_pattern_ops`` twin of every indexed text column.

Django adds such a ``…_like`` index next to each indexed or unique varchar so
that ``LIKE 'abc%'`` can use it. Nothing here filters ids, keys or references
by prefix, and every index is written by every insert: the ledger and order
tables carried one twin per id and foreign key.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base, schema


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    def _create_like_index_sql(self, model: Any, field: Any) -> None:
        return None


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
