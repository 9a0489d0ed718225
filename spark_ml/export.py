"""Export `customer_features` from ClickHouse into the Iceberg table lakehouse.marts.customer_features.

ClickHouse → Arrow (clickhouse-connect `query_arrow`) → checked and cast against the contract
(spark_ml.features) → Parquet data files on MinIO → one Iceberg commit with pyiceberg.

Semantics: the table is partitioned by `snapshot_date` (identity). An export replaces the
partitions of the snapshot dates it carries and leaves the others: re-exporting the same day is
idempotent, earlier days stay queryable, and every export is exactly ONE Iceberg snapshot
(operation `overwrite`, or `append` for a new date) whose summary records the source, the row
count and an export id, so time travel to any export is a snapshot id away.
"""
from __future__ import annotations

import datetime as dt
import re
import time
import uuid

import pyarrow as pa

from spark_ml import features, lake

DEFAULT_SOURCE = "analytics.customer_features"


class ExportError(RuntimeError):
    pass


def read_clickhouse(source: str = DEFAULT_SOURCE, client=None, customer_prefix: str | None = None) -> pa.Table:
    """The mart from ClickHouse as Arrow, conformed to the contract (ContractError if it is not).
    customer_prefix: only the customers of one simulated population (ids `<prefix><digits>`)."""
    ch = client or lake.clickhouse()
    db, _, name = source.rpartition(".")
    exists = ch.command(f"EXISTS TABLE {source}")
    if str(exists).strip() != "1":
        raise ExportError(f"ClickHouse table {source} does not exist; build the mart with dbt "
                          f"(or run `python -m spark_ml export --synthetic N` for generated features)")
    cols = {r[0] for r in ch.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
        parameters={"db": db or "default", "t": name}).result_rows}
    missing = [c for c in features.COLUMN_NAMES if c not in cols]
    if missing:
        raise features.ContractError(f"{source} lacks column(s) {', '.join(missing)} of the customer_features "
                                     f"contract (spark_ml/features.py, docs/customer_features.md)")
    select = ", ".join(f"`{c}`" for c in features.COLUMN_NAMES)
    where, params = "", {}
    if customer_prefix:
        where, params = " WHERE match(customer_id, {p:String})", {"p": "^" + re.escape(customer_prefix) + "[0-9]+$"}
    table = ch.query_arrow(f"SELECT {select} FROM {source}{where}", parameters=params,
                           settings={"output_format_arrow_string_as_string": 1})
    return features.conform(table, source)


def ensure_table(catalog, schema: pa.Schema = None, name: str | None = None):
    """Create the Iceberg table `name` (default lakehouse.marts.customer_features; partitioned by
    snapshot_date) or evolve its schema. The churn scores (spark_ml.churn.score) use it too."""
    from pyiceberg.exceptions import NoSuchTableError

    schema = schema or features.arrow_schema()
    name = name or lake.FEATURES_TABLE
    namespace = name.split(".")[0]
    catalog.create_namespace_if_not_exists(namespace)
    try:
        table = catalog.load_table(name)
    except NoSuchTableError:
        table = catalog.create_table(name, schema=schema,
                                     properties={"write.parquet.compression-codec": "zstd"})
        with table.update_spec() as spec:
            spec.add_identity("snapshot_date")
        return table
    missing = [f.name for f in schema if f.name not in table.schema().column_names]
    if missing:  # the contract grew: add the new columns (old snapshots read them as NULL)
        with table.update_schema() as update:
            update.union_by_name(schema)
    return table


def commit(table, data: pa.Table, properties: dict[str, str]) -> int:
    """Replace the partitions of `data`'s snapshot dates in ONE snapshot; returns its id."""
    from pyiceberg.expressions import In
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    dates = sorted(d.isoformat() for d in data.column("snapshot_date").unique().to_pylist())
    with table.transaction() as tx:
        old = [task.file for task in tx._table.scan(row_filter=In("snapshot_date", dates)).plan_files()]
        with tx.update_snapshot(snapshot_properties=properties).overwrite() as producer:
            for data_file in old:
                producer.delete_data_file(data_file)
            for data_file in _dataframe_to_data_files(table_metadata=tx.table_metadata, df=data, io=tx._table.io):
                producer.append_data_file(data_file)
    table.refresh()
    return table.current_snapshot().snapshot_id


def export(source: str = DEFAULT_SOURCE, data: pa.Table | None = None, catalog=None,
           customer_prefix: str | None = None) -> dict:
    """Export the mart (or `data`, already conformed) into Iceberg. Returns what was committed."""
    t0 = time.perf_counter()
    data = read_clickhouse(source, customer_prefix=customer_prefix) if data is None else features.conform(data, source)
    t_read = time.perf_counter() - t0
    if data.num_rows == 0:
        raise ExportError(f"{source} is empty{f' for customer prefix {customer_prefix}' if customer_prefix else ''}; "
                          "nothing to export")
    catalog = catalog or lake.catalog()
    table = ensure_table(catalog)
    export_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    dates = sorted(d.isoformat() for d in data.column("snapshot_date").unique().to_pylist())
    snapshot_id = commit(table, data, {"export-id": export_id, "export-source": source,
                                       "export-customer-prefix": customer_prefix or "",
                                       "export-rows": str(data.num_rows), "export-snapshot-dates": ",".join(dates)})
    return {"export_id": export_id, "table": f"{lake.CATALOG}.{lake.FEATURES_TABLE}", "source": source,
            "rows": data.num_rows, "snapshot_dates": dates, "snapshot_id": snapshot_id,
            "read_seconds": round(t_read, 3), "seconds": round(time.perf_counter() - t0, 3)}
