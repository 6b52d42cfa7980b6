"""Drops the ``…_like`` (varchar_pattern_ops) twin indexes Django created for our apps' tables.

``config.postgres`` no longer creates them (nothing here queries these
columns by prefix, and each index costs every insert); this removes those
an earlier deployment made. PostgreSQL only; nothing to undo: the backend
would not recreate them.
"""

from django.db import migrations

APPS = ("accounts", "wallets", "catalog", "orders", "payments")


def drop_twins(apps, schema_editor):
    connection = schema_editor.connection
    tables = [model._meta.db_table for app in APPS for model in apps.get_app_config(app).get_models()]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = ANY(%s) AND indexname LIKE %s",
            [tables, r"%\_like"],
        )
        names = [row[0] for row in cursor.fetchall()]
        for name in names:
            cursor.execute(f"DROP INDEX IF EXISTS {connection.ops.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_idempotency_key"),
        ("catalog", "0002_alter_product_merchant"),
        ("orders", "0004_alter_order_buyer_alter_order_merchant"),
        ("payments", "0003_alter_payment_user"),
        ("wallets", "0003_alter_posting_account"),
    ]

    operations = [migrations.RunPython(drop_twins, migrations.RunPython.noop)]
