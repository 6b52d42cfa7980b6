"""Database helpers shared by every app's services."""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import OperationalError, connection, models
from django.db.backends.utils import CursorWrapper

from config.audit_sql import context_in_statement

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# PostgreSQL SQLSTATEs that mean "two transactions collided; try again".
_RETRYABLE_SQLSTATES = {"40P01", "40001", "55P03"}


def is_contention(exc: BaseException) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) in _RETRYABLE_SQLSTATES


def retry_on_contention(attempts: int = 5) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Re-runs a whole transaction when the database reports a deadlock or a
    serialization failure, so contention never surfaces as a 500.

    Only the outermost call retries: inside another transaction the error must
    abort the caller's transaction instead.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if connection.in_atomic_block:
                return fn(*args, **kwargs)
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except OperationalError as exc:
                    if attempt == attempts or not is_contention(exc):
                        raise
                    logger.warning("transaction contention, retrying", extra={"attempt": attempt, "fn": fn.__name__})
                    time.sleep(random.uniform(0.005, 0.02) * attempt)
            raise AssertionError("unreachable")

        return wrapper

    return decorate


def insert_values(
    instance: models.Model, *, computed: dict[str, tuple[str, list[Any]]] | None = None
) -> tuple[str, list[Any]]:
    """``INSERT INTO table (every column) VALUES (%s, …)`` for an unsaved instance, and its parameters.

    For statements that insert rows as part of a larger SQL statement (a
    data-modifying CTE): the values are exactly what ``save()`` would write,
    except the columns named in ``computed`` (attname → SQL expression and its
    parameters), which the database works out.
    """
    numbered = instance.pk is None  # the database numbers it (read it back with RETURNING)
    head, plan = _insert_plan(type(instance), numbered)
    computed = computed or {}
    placeholders: list[str] = []
    values: list[Any] = []
    for attname, prep in plan:
        if attname in computed:
            expression, params = computed[attname]
            placeholders.append(expression)
            values += params
        else:
            value = getattr(instance, attname)
            placeholders.append("%s")
            values.append(value if prep is None else prep(value, connection))
    return f"{head} VALUES ({', '.join(placeholders)})", values


def insert_unless_taken(instance: models.Model, *, unique: tuple[str, ...]) -> bool:
    """Inserts an unsaved instance unless a row with the same ``unique`` columns exists: True
    when this call inserted it (and the instance is then saved, with its database-numbered id).

    One ``INSERT … ON CONFLICT (…) DO NOTHING RETURNING`` statement, committed on its own
    outside a transaction: a concurrent insert of the same key waits for the first to
    commit, then inserts nothing, so exactly one caller ever claims a key.
    """
    inserted, _ = insert_unless_taken_reading(instance, unique=unique)
    return inserted


def insert_unless_taken_reading(
    instance: models.Model, *, unique: tuple[str, ...], beside: tuple[str, list[Any]] | None = None
) -> tuple[bool, tuple[Any, ...] | None]:
    """``insert_unless_taken``, plus the row of ``beside`` (a SELECT of at most one row, and its parameters)
    read by the same statement, so a request that needs both makes one round trip; None when it found none.
    """
    insert, values = insert_values(instance)
    pk = connection.ops.quote_name(str(instance._meta.pk.column))
    conflict = ", ".join(connection.ops.quote_name(column) for column in unique)
    sql = f"{insert} ON CONFLICT ({conflict}) DO NOTHING RETURNING {pk}"
    if beside is not None:
        select, select_params = beside
        # The insert runs whether or not beside finds its row; LEFT JOIN keeps the one answer row.
        sql = (
            f"WITH taken AS ({sql}) SELECT (SELECT {pk} FROM taken), found.*"  # noqa: S608 - our SQL, values are parameters
            f" FROM (SELECT 1) AS one LEFT JOIN LATERAL ({select}) AS found ON true"
        )
        values = [*values, *select_params]
    with prepared_cursor() as cursor:
        cursor.execute(sql, values)
        answer = cursor.fetchone() or (None,)  # no row: the plain insert inserted nothing
    inserted_pk, rest = answer[0], tuple(answer[1:])
    found = rest if any(value is not None for value in rest) else None
    if inserted_pk is None:
        return False, found
    instance.pk = inserted_pk
    instance._state.adding = False
    return True, found


# Fields whose Python value (str, int, bool, None) is already what the database adapter takes.
_PLAIN_FIELDS = (models.CharField, models.TextField, models.IntegerField, models.BooleanField)


@functools.cache
def _insert_plan(
    model: type[models.Model], numbered: bool
) -> tuple[str, tuple[tuple[str, Callable[..., Any] | None], ...]]:
    """``INSERT INTO table (columns)`` of a model and, per column, how its value is prepared (None: as it is)."""
    meta = model._meta
    quote = connection.ops.quote_name
    fields: Sequence[Any] = meta.concrete_fields
    if numbered:
        fields = [field for field in fields if field is not meta.auto_field]
    columns = ", ".join(quote(str(field.column)) for field in fields)
    plan = tuple(
        (field.attname, None if isinstance(field, _PLAIN_FIELDS) and not field.is_relation else field.get_db_prep_save)
        for field in fields
    )
    # Table and column names are the model's own; every value is a parameter.
    return f"INSERT INTO {quote(meta.db_table)} ({columns})", plan


def prepared_cursor() -> CursorWrapper:
    """A cursor that runs each statement as a prepared statement of the connection.

    Django's cursors bind parameters client-side and never prepare, so
    PostgreSQL parses and plans every statement anew. For the hot
    one-statement paths (the wallet purchase plans in about as long as it
    runs) this one has the server bind the parameters and prepares the
    statement on the connection, so later runs reuse its plan. Execute
    wrappers see it as any other cursor. While queries are logged (DEBUG,
    tests capturing them: the log shows the SQL with its values), it is
    Django's cursor, as it is with ``DATABASE_PREPARED_STATEMENTS`` off (a transaction-mode
    PgBouncer before 1.21 would hand the next statement to a server connection that never
    prepared it).
    """
    if connection.queries_logged or not settings.DATABASE_PREPARED_STATEMENTS:
        return connection.cursor()
    connection.ensure_connection()
    return connection.make_cursor(_preparing_cursor_class()(connection.connection))


@functools.cache
def _preparing_cursor_class() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            query, params = context_in_statement(query, params)
            return super().execute(query, params, prepare=True)  # type: ignore[misc]

    return PreparingCursor
