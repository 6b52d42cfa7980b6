"""pghistory's context inside the prepared statements of ``config.db.prepared_cursor`` (one statement each)."""

from __future__ import annotations

import pghistory

from audit.models import ProductEvent
from config.audit_sql import context_in_statement
from config.db import prepared_cursor
from tests.factories import ProductFactory

PREFIX = "SELECT set_config('pghistory.context_id', %s, true), set_config('pghistory.context_metadata', %s, true); "


def test_rewrite_when_pghistory_prefix_then_one_statement_with_the_context_cte_first() -> None:
    sql, params = context_in_statement(PREFIX + "WITH a AS (SELECT 1) SELECT * FROM a WHERE %s", ("id", "{}", 1))
    assert sql.startswith("WITH pgh_context_set AS (INSERT INTO pghistory_context")
    assert sql.endswith(", a AS (SELECT 1) SELECT * FROM a WHERE %s") and ";" not in sql
    assert params == ("id", "{}", 1)
    insert, _ = context_in_statement(PREFIX + 'INSERT INTO "orders_order" (a) VALUES (%s)', ("id", "{}", 1))
    assert insert.startswith("WITH pgh_context_set AS (") and insert.endswith(
        ') INSERT INTO "orders_order" (a) VALUES (%s)'
    )
    assert context_in_statement("SELECT 1", None) == ("SELECT 1", None)


def test_rewrite_when_a_read_or_a_write_to_a_table_without_history_then_the_context_is_dropped() -> None:
    for statement in (
        'INSERT INTO "accounts_idempotencykey" (a) VALUES (%s)',
        "UPDATE accounts_idempotencykey SET a = %s",
        'DELETE FROM "orders_receiptdue" WHERE a = %s',
        'SELECT "id" FROM "catalog_product" WHERE a = %s',
    ):
        assert context_in_statement(PREFIX + statement, ("id", "{}", 1)) == (statement, (1,))
    kept, _ = context_in_statement(PREFIX + "UPDATE catalog_product SET stock = %s", ("id", "{}", 1))
    assert kept.startswith("WITH pgh_context_set AS (")


def test_request_when_it_writes_only_untracked_rows_then_no_context_row_is_left(db: None) -> None:
    from pghistory.models import Context

    from accounts.models import SentEmail

    with pghistory.context(reason="untracked only"):
        SentEmail.objects.create(key="k", to="a@example.com", template="t")
    assert not Context.objects.filter(metadata__reason="untracked only").exists()
    product = ProductFactory.create(stock=5)
    with pghistory.context(reason="tracked"):
        SentEmail.objects.create(key="k2", to="a@example.com", template="t")
        product.stock = 4
        product.save(update_fields=["stock"])
    assert (
        ProductEvent.objects.get(pgh_obj_id=product.pk, pgh_label="update").pgh_context.metadata["reason"] == "tracked"
    )


def test_prepared_update_when_in_context_then_history_row_carries_it(db: None) -> None:
    product = ProductFactory.create(stock=5)
    with pghistory.context(reason="prepared path", user="usr_test"):
        for stock in (4, 3, 2, 1, 0, 7):  # more runs than psycopg's prepare threshold
            with prepared_cursor() as cursor:
                cursor.execute("UPDATE catalog_product SET stock = %s WHERE id = %s", [stock, product.pk])
    changes = list(ProductEvent.objects.filter(pgh_obj_id=product.pk, pgh_label="update").order_by("pgh_id"))
    assert [c.stock for c in changes] == [4, 3, 2, 1, 0, 7]
    assert all(c.pgh_context.metadata["reason"] == "prepared path" for c in changes)
