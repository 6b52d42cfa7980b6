"""On PostgreSQL the database itself refuses UPDATE and DELETE of ledger rows.

Row-level triggers do not fire on TRUNCATE, so test flushes keep working.
Other databases rely on the model layer (wallets.models.ImmutableModel).
"""

from django.db import migrations

TABLES = ("wallets_entry", "wallets_posting")

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION wallets_ledger_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are immutable: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
"""


def install(apps, schema_editor):
    schema_editor.execute(CREATE_FUNCTION, params=None)
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION wallets_ledger_immutable()"
        )


def uninstall(apps, schema_editor):
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS wallets_ledger_immutable()")


class Migration(migrations.Migration):
    dependencies = [("wallets", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
