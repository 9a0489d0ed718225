"""The simulators against the real stack: events into Kafka and back, customers into PostgreSQL."""
from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter, defaultdict

import psycopg
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, TopicPartition

from platform_common.config import REPO
from simulators import run, run_customers
from simulators.population import DAY_MS
from stack import kafka

pytestmark = pytest.mark.integration

START = "2025-02-03"


@pytest.fixture
def topics(stack_up):
    suffix = uuid.uuid4().hex[:8]
    web, purchases = f"it_web_events_{suffix}", f"it_purchase_events_{suffix}"
    kafka.ensure_topics(stack_up, [kafka.Topic(web, 6, 3_600_000, "delete"),
                                   kafka.Topic(purchases, 3, 3_600_000, "delete")])
    yield web, purchases
    client = kafka.admin(stack_up)
    for future in client.delete_topics([web, purchases]).values():
        future.result()


def consume_all(settings, topic: str) -> list[tuple[int, bytes, bytes]]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"it-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in metadata.partitions}
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    out, positions = [], dict.fromkeys(ends, 0)
    while any(positions[p] < ends[p] for p in ends):
        for msg in consumer.consume(10000, timeout=5):
            assert msg.error() is None, msg.error()
            out.append((msg.partition(), msg.key(), msg.value()))
            positions[msg.partition()] = msg.offset() + 1
    consumer.close()
    return out


def test_cli_run_into_kafka_reconciles_exactly_with_its_ledger(stack_up, topics, tmp_path):
    web, purchases = topics
    result = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "simulators", "events", "--start", START, "--days", "3",
         "--customers", "1500", "--seed", "9", "--late-rate", "0.02", "--late-delay", "120",
         "--duplicate-rate", "0.02", "--malformed-rate", "0.01", "--web-topic", web, "--purchase-topic", purchases,
         "--ledger", "full", "--ledger-dir", str(tmp_path), "--run-id", "it-run", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run_id"] == "it-run"
    detail = pq.read_table(tmp_path / "sent.parquet").to_pylist()
    for topic, name in ((web, "web_events"), (purchases, "purchase_events")):
        ledger = summary["topics"][name]
        got = consume_all(stack_up, topic)
        assert len(got) == ledger["messages"] > 0
        values = [v for _, _, v in got]
        ids, parsed = Counter(), 0
        id_field = "event_id" if name == "web_events" else "order_id"
        partition_of = {}
        for partition, key, value in got:
            assert partition_of.setdefault(key, partition) == partition   # one partition per customer
            try:
                rec = json.loads(value)
            except ValueError:
                continue
            parsed += 1
            if "customer_id" in rec:
                assert key == rec["customer_id"].encode()
            ids[rec.get(id_field)] += 1
        sent = [r for r in detail if r["topic"] == topic]
        assert len(sent) == len(values)
        kinds = Counter(r["kind"] for r in sent)
        assert kinds == {"valid": ledger["valid"], "duplicate": ledger["duplicates"], "malformed": ledger["malformed"]}
        assert sum(1 for r in sent if r["late"]) == ledger["late"]
        # every valid id arrived exactly once more per duplicate the ledger lists for it
        dup_ids = Counter(r["record_id"] for r in sent if r["kind"] == "duplicate")
        for r in sent:
            if r["kind"] == "valid":
                assert ids[r["record_id"]] == 1 + dup_ids[r["record_id"]]
        invalid_json = ledger["malformed_by_reason"].get("invalid_json", 0)
        assert parsed == len(values) - invalid_json
        assert len(set(values)) == len(values) - ledger["duplicates"]
    assert summary["topics"]["web_events"]["duplicates"] > 0 and summary["topics"]["web_events"]["late"] > 0


def test_make_target_streams_live_web_events(stack_up, topics, tmp_path):
    web, purchases = topics
    result = subprocess.run(
        ["make", "-s", "generate_web_events",
         f"ARGS=--rate 2000 --duration 4 --customers 500 --web-topic {web} --ledger-dir {tmp_path} -q"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["mode"] == "live" and summary["config"]["streams"] == ["web"]
    got = consume_all(stack_up, web)
    assert len(got) == summary["topics"]["web_events"]["messages"] == summary["messages"]
    assert 0.6 * 8000 < len(got) < 1.4 * 8000
    assert consume_all(stack_up, purchases) == []


def test_in_process_run_into_kafka_matches_the_ledger_windows(stack_up, topics):
    web, purchases = topics
    ledger = run(start=__import__("datetime").datetime.fromisoformat(START), days=2, customers=800, seed=3,
                 web_topic=web, purchase_topic=purchases, quiet=True, ledger="none", write_ground_truth=False,
                 settings=stack_up)
    windows = defaultdict(int)
    for _, _, value in consume_all(stack_up, web):
        rec = json.loads(value)
        windows[(rec["event_time"] // 60000 * 60000, rec["country"], rec["device_type"])] += 1
    assert dict(windows) == {k: sum(v[:9]) for k, v in ledger.web_windows.items()}
    revenue = 0
    for _, _, value in consume_all(stack_up, purchases):
        revenue += round(json.loads(value)["total_amount"] * 100)
    assert revenue == sum(ledger.revenue_cents_by_status.values())


def _table(settings, prefix: str) -> list[tuple]:
    with psycopg.connect(settings.postgres_dsn(settings.postgres_simulator_user,
                                               settings.postgres_simulator_password)) as conn:
        return conn.execute(
            "SELECT customer_id, email, signup_date, country, acquisition_channel, subscription_tier, updated_at "
            "FROM crm.customers WHERE customer_id LIKE %s ORDER BY customer_id", (prefix + "%",)).fetchall()


@pytest.fixture
def prefix(stack_up):
    p = f"it{uuid.uuid4().hex[:6]}_"
    yield p
    with psycopg.connect(stack_up.postgres_dsn(stack_up.postgres_simulator_user,
                                               stack_up.postgres_simulator_password)) as conn:
        conn.execute("DELETE FROM crm.customers WHERE customer_id LIKE %s", (p + "%",))


def test_customers_in_postgres_equal_the_ledger_after_updates_and_deletes(stack_up, prefix, tmp_path):
    import datetime as dt
    start = dt.datetime.fromisoformat(START)
    first = run_customers(customers=1500, seed=21, days=60, start=start, id_prefix=prefix, quiet=True,
                          ledger_dir=tmp_path / "1", write_ground_truth=False, settings=stack_up)
    s = first.summary()
    assert s["inserts"] == 1500 and s["updates_total"] > 100 and s["deletes"] > 3
    assert s["final_rows"] == 1500 - s["deletes"]
    assert _table(stack_up, prefix) == first.final_rows()
    assert first.transactions == 60
    # the ledger file says the same
    assert (tmp_path / "1" / "customers_final.csv").read_text().count("\n") == s["final_rows"] + 1

    # re-running the same seed: same final state; only the deleted customers are written again
    # (re-inserted, updated, deleted: one row change per day-batch with an upsert, plus the delete)
    again = run_customers(customers=1500, seed=21, days=60, start=start, id_prefix=prefix, quiet=True,
                          ledger="none", write_ground_truth=False, settings=stack_up)
    assert _table(stack_up, prefix) == again.final_rows() == first.final_rows()
    start_ms = int(start.replace(tzinfo=dt.UTC).timestamp() * 1000)
    batches = {(ch.customer_id, max(ch.t_ms, start_ms) // DAY_MS) for ch in first.changes
               if ch.customer_id in first.deleted and ch.op != "delete"}
    assert again.rows_changed == len(batches) + len(first.deleted)

    # live changes on top, stamped now
    live = run_customers(customers=1500, seed=21, days=60, start=start, id_prefix=prefix, quiet=True,
                         ledger="none", write_ground_truth=False, settings=stack_up, mode="live", count=25, rate=100)
    assert sum(live.updates.values()) + live.deletes == s["updates_total"] + s["deletes"] + 25
    rows = _table(stack_up, prefix)
    assert rows == live.final_rows()
    now = dt.datetime.now(dt.UTC)
    assert sum(1 for r in rows if now - r[6] < dt.timedelta(minutes=5)) >= 15


def test_simulator_role_cannot_touch_other_schemas(stack_up):
    with psycopg.connect(stack_up.postgres_dsn(stack_up.postgres_simulator_user,
                                               stack_up.postgres_simulator_password)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM raw.web_events")
