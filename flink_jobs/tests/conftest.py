"""A local PyFlink TableEnvironment (an in-process mini cluster) for the job's SQL.

Streaming mode on small bounded inputs: the same operators as production (watermarks, dedupe,
updating aggregates) but deterministic: one parallel instance, one input file read in order, and a
watermark emitted after every record (pipeline.auto-watermark-interval = 0). The job's Java functions
come from flink_jobs/udf's jar (built with Maven when missing or older than its sources).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from flink_jobs import pipeline, streaming_job


def udf_jar() -> Path:
    """flink_jobs/udf's jar, (re)built with Maven (tests included) when older than its sources."""
    jar = pipeline.UDF_JAR
    sources = [pipeline.UDF_DIR / "pom.xml", *pipeline.UDF_DIR.glob("src/**/*.java")]
    if not jar.exists() or jar.stat().st_mtime < max(f.stat().st_mtime for f in sources):
        result = subprocess.run(["mvn", "-B", "-q", "-f", str(pipeline.UDF_DIR / "pom.xml"), "package"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"building {jar.name} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return jar


class Job:
    """Registers the job's views over two in-order test inputs and runs its queries."""

    def __init__(self, tmp: Path, web: list, orders: list, replay: pipeline.Replay = pipeline.Replay()):
        self.replay = replay
        from pyflink.table import EnvironmentSettings, TableEnvironment
        self.t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
        streaming_job.configure(self.t_env, checkpointing=False, udf_jar=udf_jar())
        self.t_env.get_config().set("pipeline.auto-watermark-interval", "0")
        self.t_env.get_config().set("parallelism.default", "1")
        self.t_env.get_config().set("state.backend.type", "hashmap")
        self.offsets = {}
        for name, topic, time_field, records in (("test_web", "web_events", "event_time", web),
                                                 ("test_orders", "purchase_events", "order_time", orders)):
            path = tmp / f"{name}.json"
            with path.open("w") as fh:
                for offset, record in enumerate(records):
                    payload = record if isinstance(record, str) else json.dumps(record)
                    fh.write(json.dumps({"payload": payload, "src_topic": topic, "src_partition": 0,
                                         "src_offset": offset}) + "\n")
            self.t_env.execute_sql(f"""CREATE TEMPORARY TABLE {name} (
  payload STRING, src_topic STRING, src_partition INT, src_offset BIGINT,
{pipeline.source_columns(time_field)}
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json')""")
        streaming_job.register_views(self.t_env, "test_web", "test_orders", replay)

    def rows(self, query: str) -> list[tuple]:
        """The final rows of a query's changelog (updates applied), as tuples."""
        from pyflink.common import RowKind
        final: list[tuple] = []
        with self.t_env.execute_sql(query).collect() as results:
            for row in results:
                values = tuple(row)
                if row.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER):
                    final.append(values)
                else:
                    final.remove(values)
        return final

    def sink(self, name: str) -> list[tuple]:
        return self.rows(streaming_job.queries(self.replay)[name])


@pytest.fixture
def job(tmp_path):
    return lambda web=(), orders=(), replay=pipeline.Replay(): Job(tmp_path, list(web), list(orders), replay)
