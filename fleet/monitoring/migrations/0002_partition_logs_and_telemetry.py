"""On PostgreSQL, log entries and telemetry samples live in daily range partitions (see partitions.py)."""

from datetime import date
from typing import Any

from django.db import migrations


def partition_on_postgresql(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    from fleet.monitoring.partitions import CREATE_PARTITIONED_SQL, ensure_partitions

    for statement in CREATE_PARTITIONED_SQL:
        schema_editor.execute(statement)
    ensure_partitions(today=date.today(), connection=schema_editor.connection)


class Migration(migrations.Migration):
    # The tables were just created empty by 0001; converting them loses nothing.
    dependencies = [("monitoring", "0001_initial")]

    operations = [migrations.RunPython(partition_on_postgresql, migrations.RunPython.noop, elidable=False)]
