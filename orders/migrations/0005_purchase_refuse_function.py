"""``purchase_refuse(reason)``: lets the one-statement wallet purchase abort itself (PostgreSQL).

The statement runs on its own, without BEGIN and COMMIT around it; when the
stock, the product's terms or a wallet say no, it calls this function, whose
error rolls the whole statement back. The reason comes back as the error's hint.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION purchase_refuse(reason text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'purchase refused: ' || reason, HINT = reason;
END
$$;
"""
DROP = "DROP FUNCTION IF EXISTS purchase_refuse(text);"


def create(apps, schema_editor):
    schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("orders", "0004_alter_order_buyer_alter_order_merchant")]

    operations = [migrations.RunPython(create, drop)]
