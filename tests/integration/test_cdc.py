"""CDC end to end: PostgreSQL -> Debezium (Kafka Connect) -> Kafka -> CDC sink -> ClickHouse mirror.

Every test uses its own ids, so other data in the tables (simulators, other tests) does not matter.
The mirror is read with FINAL and without _is_deleted rows, and must equal PostgreSQL row for row.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time
import uuid
from decimal import Decimal

import orjson
import psycopg
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from debezium import connectors
from platform_common import clients
from stack import kafka
from stack.supervisor import Supervisor
from tests.conftest import run_stack

pytestmark = pytest.mark.integration

TABLES = {  # source table -> (mirror table, primary key)
    "crm.customers": ("cdc.crm_customers", "customer_id"),
    "raw.web_events": ("cdc.raw_web_events", "event_id"),
    "raw.purchase_events": ("cdc.raw_purchase_events", "order_id"),
}


# -- helpers -----------------------------------------------------------------------------------
def pg(settings, role: str = "POSTGRES"):
    """As the role <role>_USER of .env (POSTGRES: the admin)."""
    user, password = getattr(settings, f"{role.lower()}_user"), getattr(settings, f"{role.lower()}_password")
    return psycopg.connect(settings.postgres_dsn(user, password), autocommit=True)


@pytest.fixture(scope="module")
def ch(stack_up):
    return clients.clickhouse(stack_up)


def source_columns(settings, table: str) -> list[str]:
    schema, name = table.split(".")
    with pg(settings) as conn:
        return [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position", (schema, name))]


def normalise(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dict, list)):
        return value
    return value


def pg_rows(settings, table: str, prefix: str) -> list[tuple]:
    """The source rows whose customer_id starts with this test's prefix (every table has one)."""
    _, key = TABLES[table]
    cols = source_columns(settings, table)
    with pg(settings) as conn:
        rows = conn.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE starts_with(customer_id, %s) "
                            f"ORDER BY {key}::text", (prefix,)).fetchall()
    return [tuple(normalise(v) for v in row) for row in rows]


def mirror_rows(settings, ch, table: str, prefix: str) -> list[tuple]:
    mirror, key = TABLES[table]
    cols = source_columns(settings, table)
    json_cols = {"items"} if table == "raw.purchase_events" else set()
    db, name = mirror.split(".")
    present = {r[0] for r in ch.query("SELECT name FROM system.columns WHERE database = {d:String} AND "
                                      "table = {t:String}", parameters={"d": db, "t": name}).result_rows}
    if missing := [c for c in cols if c not in present]:
        return [("column not in the mirror yet", *missing)]
    rows = ch.query(f"SELECT {', '.join(cols)} FROM {mirror} FINAL WHERE _is_deleted = 0 AND "
                    f"startsWith(customer_id, {{p:String}}) ORDER BY toString({key})",
                    parameters={"p": prefix}).result_rows
    return [tuple(json.loads(v) if c in json_cols else normalise(v) for c, v in zip(cols, row)) for row in rows]


def wait_mirrored(settings, ch, table: str, prefix: str, timeout: float = 90) -> list[tuple]:
    """Poll until the mirror equals PostgreSQL for this prefix; assert equality at the end."""
    deadline = time.monotonic() + timeout
    while True:
        expected, actual = pg_rows(settings, table, prefix), mirror_rows(settings, ch, table, prefix)
        if expected == actual or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(actual) == len(expected), f"{table}: {len(actual)} mirror rows, {len(expected)} in PostgreSQL"
    assert actual == expected, f"{table}: mirror differs from PostgreSQL after {timeout}s"
    return expected


def no_duplicates(ch, table: str, prefix: str) -> None:
    mirror, key = TABLES[table]
    dupes = ch.query(f"SELECT toString({key}), count() c FROM {mirror} FINAL WHERE startsWith(customer_id, "
                     f"{{p:String}}) GROUP BY {key} HAVING c > 1", parameters={"p": prefix}).result_rows
    assert dupes == []


def customer(cid: str, **overrides) -> dict:
    row = dict(customer_id=cid, email=f"{cid}@example.com", signup_date=dt.date(2024, 2, 29), country="DE",
               acquisition_channel="organic", subscription_tier="free")
    row.update(overrides)
    return row


def insert_customers(conn, rows: list[dict]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO crm.customers (customer_id, email, signup_date, country, acquisition_channel, "
                        "subscription_tier, updated_at) VALUES (%(customer_id)s, %(email)s, %(signup_date)s, "
                        "%(country)s, %(acquisition_channel)s, %(subscription_tier)s, clock_timestamp())", rows)


def web_event(customer_id: str, n: int) -> dict:
    return dict(event_id=uuid.uuid4(), customer_id=customer_id, session_id=f"s-{customer_id}", event_type="page_view",
                page_url=f"/p/{n}" if n % 2 else None, product_id=None if n % 3 else f"prod-{n}", search_query=None,
                device_type="mobile", country="FR", utm_source="newsletter" if n % 4 == 0 else None,
                event_time=dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC) + dt.timedelta(seconds=n),
                kafka_partition=n % 6, kafka_offset=10_000_000 + n)


def insert_web_events(conn, rows: list[dict]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO raw.web_events (event_id, customer_id, session_id, event_type, page_url, "
                        "product_id, search_query, device_type, country, utm_source, event_time, kafka_partition, "
                        "kafka_offset) VALUES (%(event_id)s, %(customer_id)s, %(session_id)s, %(event_type)s, "
                        "%(page_url)s, %(product_id)s, %(search_query)s, %(device_type)s, %(country)s, "
                        "%(utm_source)s, %(event_time)s, %(kafka_partition)s, %(kafka_offset)s)", rows)


def insert_orders(conn, rows: list[dict]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO raw.purchase_events (order_id, customer_id, session_id, order_time, items, "
                        "item_count, total_amount, currency, payment_method, order_status, shipping_country, "
                        "kafka_partition, kafka_offset) VALUES (%(order_id)s, %(customer_id)s, %(session_id)s, "
                        "%(order_time)s, %(items)s::jsonb, %(item_count)s, %(total_amount)s, %(currency)s, "
                        "%(payment_method)s, %(order_status)s, %(shipping_country)s, %(kafka_partition)s, "
                        "%(kafka_offset)s)", rows)


def order(customer_id: str, n: int) -> dict:
    items = [{"product_id": f"prod-{n}", "quantity": 2, "unit_price": 19.99}, {"product_id": "prod-x", "quantity": 1,
                                                                              "unit_price": 0.5}]
    return dict(order_id=uuid.uuid4(), customer_id=customer_id, session_id=None if n % 2 else f"s-{n}",
                order_time=dt.datetime(2026, 3, 4, 5, 6, 7, 654321, tzinfo=dt.UTC),
                items=json.dumps(items), item_count=3, total_amount=Decimal("40.48") + n,
                currency="EUR", payment_method="card", order_status="completed", shipping_country="ES",
                kafka_partition=n % 3, kafka_offset=20_000_000 + n)


def sink_health(settings) -> dict | None:
    try:
        response = requests.get(f"http://127.0.0.1:{settings.cdc_sink_port}/health", timeout=2)
        return response.json() if response.ok else None
    except requests.RequestException:
        return None


# -- Debezium ----------------------------------------------------------------------------------
def test_connectors_are_registered_and_running_with_their_own_slot_and_publication(stack_up):
    url = stack_up.connect_url
    names = list(connectors.load(stack_up.as_env()))
    assert names == ["cdc-crm", "cdc-raw"]
    states = connectors.states(url, names)
    assert all(state == "RUNNING" and tasks == ["RUNNING"] for state, tasks in states.values()), states
    # registering again is a no-op (idempotent PUT, nothing changed)
    assert connectors.register(stack_up.as_env(), url) == []
    with pg(stack_up) as conn:
        slots = dict(conn.execute("SELECT slot_name, plugin FROM pg_replication_slots "
                                  "WHERE slot_name IN ('cdc_crm', 'cdc_raw')").fetchall())
        assert slots == {"cdc_crm": "pgoutput", "cdc_raw": "pgoutput"}
        pubs = conn.execute("SELECT pubname, schemaname || '.' || tablename FROM pg_publication_tables "
                            "WHERE pubname LIKE 'cdc_%' ORDER BY 1, 2").fetchall()
        assert pubs == [("cdc_crm", "cdc.heartbeat"), ("cdc_crm", "crm.customers"), ("cdc_raw", "cdc.heartbeat"),
                        ("cdc_raw", "raw.purchase_events"), ("cdc_raw", "raw.web_events")]
        # the heartbeat action query (run by the CDC role) keeps a row per connector fresh
        beats = dict(conn.execute("SELECT connector, now() - beat_at < interval '1 minute' FROM cdc.heartbeat"))
        assert beats == {"cdc-crm": True, "cdc-raw": True}


def test_the_cdc_password_is_readable_neither_through_connect_nor_in_its_config_topic(stack_up):
    """Connect resolves ${env:POSTGRES_CDC_PASSWORD} itself: its REST API and its config topic (the
    latest record per connector, what a restart reads) hold the placeholder, never the password."""
    url = stack_up.connect_url
    secret = stack_up.postgres_cdc_password
    for name in connectors.load(stack_up.as_env()):
        config = requests.get(f"{url}/connectors/{name}/config", timeout=10).json()
        assert config["database.password"] == "${env:POSTGRES_CDC_PASSWORD}"
        assert secret not in json.dumps(config)
        tasks = requests.get(f"{url}/connectors/{name}/tasks", timeout=10).json()
        assert tasks and secret not in json.dumps(tasks)
    consumer = Consumer({"bootstrap.servers": stack_up.kafka_bootstrap_servers, "group.id": f"it-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        topic = "_connect_configs"
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        latest: dict[bytes, bytes] = {}
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 30
        while len(done) < len(parts) and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is None or msg.error():
                continue
            latest[msg.key()] = msg.value()
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
    finally:
        consumer.close()
    ours = {k: v for k, v in latest.items() if k.startswith((b"connector-cdc-", b"task-cdc-")) and v}
    assert ours.keys() >= {b"connector-cdc-crm", b"connector-cdc-raw", b"task-cdc-crm-0", b"task-cdc-raw-0"}
    for key, value in ours.items():
        # task configs are written with the placeholder too (Connect reverses the resolution)
        assert b"${env:POSTGRES_CDC_PASSWORD}" in value and secret.encode() not in value, key


def test_insert_update_delete_on_customers_appear_on_the_topic(stack_up):
    topic = f"{stack_up.cdc_topic_prefix}.crm.customers"
    consumer = Consumer({"bootstrap.servers": stack_up.kafka_bootstrap_servers, "group.id": f"it-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    partitions = kafka.admin(stack_up).list_topics(topic, timeout=10).topics[topic].partitions
    start = [TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
             for p in partitions]
    consumer.assign(start)
    cid = f"it-topic-{uuid.uuid4().hex[:12]}"
    with pg(stack_up, "POSTGRES_SIMULATOR") as conn:
        insert_customers(conn, [customer(cid)])
        conn.execute("UPDATE crm.customers SET subscription_tier = 'premium' WHERE customer_id = %s", (cid,))
        conn.execute("DELETE FROM crm.customers WHERE customer_id = %s", (cid,))
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(seen) < 4:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() or orjson.loads(msg.key())["payload"]["customer_id"] != cid:
            continue
        payload = orjson.loads(msg.value())["payload"] if msg.value() else None
        seen.append(("tombstone", None) if payload is None else
                    (payload["op"], (payload["after"] or payload["before"])["subscription_tier"]))
    consumer.close()
    assert seen == [("c", "free"), ("u", "premium"), ("d", ""), ("tombstone", None)]


# -- the mirror --------------------------------------------------------------------------------
def test_customer_inserts_updates_deletes_are_mirrored_exactly(stack_up, ch):
    run = uuid.uuid4().hex[:10]
    ids = [f"it-cust-{run}-{i:03d}" for i in range(50)]
    with pg(stack_up, "POSTGRES_SIMULATOR") as conn:
        insert_customers(conn, [customer(cid, country=["DE", "FR", "US"][i % 3]) for i, cid in enumerate(ids)])
        with conn.transaction():  # several changes of one key in one transaction: the last one wins
            for cid in ids[:10]:
                conn.execute("UPDATE crm.customers SET subscription_tier = 'basic', updated_at = clock_timestamp() "
                             "WHERE customer_id = %s", (cid,))
                conn.execute("UPDATE crm.customers SET subscription_tier = 'premium', email = 'x+' || email "
                             "WHERE customer_id = %s", (cid,))
        conn.execute("DELETE FROM crm.customers WHERE customer_id = ANY(%s)", (ids[40:],))
        # delete and re-insert a key: the new row must come back
        conn.execute("DELETE FROM crm.customers WHERE customer_id = %s", (ids[0],))
        insert_customers(conn, [customer(ids[0], acquisition_channel="referral")])
    prefix = f"it-cust-{run}-"
    rows = wait_mirrored(stack_up, ch, "crm.customers", prefix)
    assert len(rows) == 40 and [r[0] for r in rows] == sorted(ids[:40])
    assert {r[5] for r in rows if r[0] in ids[1:10]} == {"premium"}
    no_duplicates(ch, "crm.customers", prefix)
    ops = dict(ch.query("SELECT _op, count() FROM cdc.crm_customers FINAL WHERE customer_id IN {ids:Array(String)} "
                        "GROUP BY _op", parameters={"ids": ids}).result_rows)
    assert ops.get("d") is None  # deleted keys are gone under FINAL ...
    deleted = ch.query("SELECT count() FROM cdc.crm_customers WHERE customer_id IN {ids:Array(String)} "
                       "AND _is_deleted = 1", parameters={"ids": ids[40:]}).result_rows[0][0]
    assert deleted >= 10  # ... but their delete rows exist underneath


def test_raw_event_tables_are_mirrored_with_types(stack_up, ch):
    run = uuid.uuid4().hex[:10]
    events = [web_event(f"it-web-{run}", n) for n in range(300)]
    orders = [order(f"it-ord-{run}", n) for n in range(120)]
    with pg(stack_up, "POSTGRES_STREAM") as conn:
        insert_web_events(conn, events)
        insert_orders(conn, orders)
        conn.execute("UPDATE raw.purchase_events SET order_status = 'refunded', total_amount = total_amount + 0.01 "
                     "WHERE order_id = ANY(%s)", ([o["order_id"] for o in orders[:20]],))
        conn.execute("UPDATE raw.web_events SET search_query = 'shoes', page_url = NULL WHERE event_id = ANY(%s)",
                     ([e["event_id"] for e in events[:30]],))
    with pg(stack_up) as conn:  # the stream role may not delete; the platform can
        conn.execute("DELETE FROM raw.web_events WHERE event_id = ANY(%s)", ([e["event_id"] for e in events[-25:]],))
    web = wait_mirrored(stack_up, ch, "raw.web_events", f"it-web-{run}")
    assert len(web) == 275
    got = wait_mirrored(stack_up, ch, "raw.purchase_events", f"it-ord-{run}")
    assert len(got) == 120
    types = dict(ch.query("SELECT name, type FROM system.columns WHERE database = 'cdc' "
                          "AND table = 'raw_purchase_events'").result_rows)
    assert types["order_id"] == "UUID" and types["total_amount"] == "Decimal(12, 2)"
    assert types["order_time"] == "DateTime64(6, 'UTC')" and types["items"] == "String"
    assert types["session_id"] == "Nullable(String)"
    refunded = [r for r in got if r[9] == "refunded"]
    assert len(refunded) == 20 and all(isinstance(r[6], Decimal) and r[6] % 1 == Decimal("0.49") for r in refunded)


def test_a_new_nullable_column_is_carried_through(stack_up, ch):
    cid = f"it-evo-{uuid.uuid4().hex[:12]}"
    with pg(stack_up, "POSTGRES_SIMULATOR") as conn:
        insert_customers(conn, [customer(cid)])
    wait_mirrored(stack_up, ch, "crm.customers", cid)
    with pg(stack_up) as admin:
        admin.execute("ALTER TABLE crm.customers ADD COLUMN IF NOT EXISTS it_loyalty_points integer NULL")
    try:
        with pg(stack_up, "POSTGRES_SIMULATOR") as conn:
            conn.execute("UPDATE crm.customers SET it_loyalty_points = 42 WHERE customer_id = %s", (cid,))
        rows = wait_mirrored(stack_up, ch, "crm.customers", cid)
        assert rows[0][-1] == 42
        types = dict(ch.query("SELECT name, type FROM system.columns WHERE database = 'cdc' "
                              "AND table = 'crm_customers'").result_rows)
        assert types["it_loyalty_points"] == "Nullable(Int32)"
    finally:
        with pg(stack_up) as admin:
            admin.execute("ALTER TABLE crm.customers DROP COLUMN IF EXISTS it_loyalty_points")
    # and after the column is gone again, changes still flow (the mirror column stays, NULL)
    with pg(stack_up, "POSTGRES_SIMULATOR") as conn:
        conn.execute("UPDATE crm.customers SET subscription_tier = 'basic' WHERE customer_id = %s", (cid,))
    assert wait_mirrored(stack_up, ch, "crm.customers", cid)[0][5] == "basic"


def test_a_record_it_cannot_map_goes_to_the_dead_letter_topic(stack_up):
    topic = f"{stack_up.cdc_topic_prefix}.it_bad.records_{uuid.uuid4().hex[:8]}"
    admin = kafka.admin(stack_up)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    try:
        dlq = Consumer({"bootstrap.servers": stack_up.kafka_bootstrap_servers, "group.id": f"it-{uuid.uuid4()}",
                        "enable.auto.commit": False})
        end = dlq.get_watermark_offsets(TopicPartition("dead_letter", 0), timeout=10)[1]
        dlq.assign([TopicPartition("dead_letter", 0, end)])
        producer = Producer({"bootstrap.servers": stack_up.kafka_bootstrap_servers})
        producer.produce(topic, key=b'{"schema":null,"payload":{"id":1}}', value=b"{not json")
        producer.produce(topic, value=orjson.dumps({"schema": {"type": "string"}, "payload": "x"}))
        producer.flush(10)
        found = []
        deadline = time.monotonic() + 60  # the sink's pattern subscription sees new topics within ~10 s
        while time.monotonic() < deadline and len(found) < 2:
            msg = dlq.poll(0.5)
            if msg is not None and not msg.error():
                record = orjson.loads(msg.value())
                if record.get("source_topic") == topic:
                    found.append(record)
        dlq.close()
        assert [r["source_offset"] for r in found] == [0, 1]
        assert found[0]["reason"].startswith("not JSON") and found[0]["payload"] == "{not json"
        assert "envelope" in found[1]["reason"]
    finally:
        admin.delete_topics([topic])[topic].result()


def test_kill_9_of_the_sink_loses_nothing_and_duplicates_nothing(stack_up, ch):
    sup = Supervisor(stack_up)
    before = sup.info("cdc-sink")
    assert before and before["statename"] == "RUNNING"
    run = uuid.uuid4().hex[:10]
    cust_ids: list[str] = []
    event_ids: list = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        with pg(stack_up, "POSTGRES_SIMULATOR") as crm, pg(stack_up, "POSTGRES_STREAM") as raw:
            while not stop.is_set():
                batch = [f"it-crash-{run}-{n + i:05d}" for i in range(20)]
                insert_customers(crm, [customer(cid) for cid in batch])
                crm.execute("UPDATE crm.customers SET subscription_tier = 'pro', updated_at = clock_timestamp() "
                            "WHERE customer_id = ANY(%s)", (batch[::2],))
                crm.execute("DELETE FROM crm.customers WHERE customer_id = ANY(%s)", (batch[::5],))
                events = [web_event(f"it-crash-{run}", n + i) for i in range(50)]
                insert_web_events(raw, events)
                cust_ids.extend(batch)
                event_ids.extend(e["event_id"] for e in events)
                n += 20
                time.sleep(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(3)
        os.kill(before["pid"], signal.SIGKILL)  # mid-stream: some rows inserted, offsets not committed
        time.sleep(4)                            # writes go on while the sink is down
    finally:
        stop.set()
        writer.join()
    # bring it back the way users do (supervisord may already have restarted it)
    result = run_stack("up", check=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sink_health(stack_up) is None:
        time.sleep(0.5)
    after = sup.info("cdc-sink")
    assert after["statename"] == "RUNNING" and after["pid"] != before["pid"], result.stdout + result.stderr
    assert len(cust_ids) > 100 and len(event_ids) > 200
    prefix = f"it-crash-{run}"
    assert len(wait_mirrored(stack_up, ch, "crm.customers", prefix, timeout=120)) == len(cust_ids) * 4 // 5
    assert len(wait_mirrored(stack_up, ch, "raw.web_events", prefix, timeout=120)) == len(event_ids)
    no_duplicates(ch, "crm.customers", prefix)
    no_duplicates(ch, "raw.web_events", prefix)


def test_make_status_shows_connectors_and_sink_progress(stack_up):
    from stack import lifecycle, services
    rows = {r.name: r for r in lifecycle.rows(stack_up, services.all_services(stack_up))}
    assert rows["connect"].details == "cdc-crm RUNNING [RUNNING]; cdc-raw RUNNING [RUNNING]"
    assert rows["cdc-sink"].healthy and rows["cdc-sink"].details.startswith("rows ")
    health = sink_health(stack_up)
    assert health["status"] == "ok" and health["rows_written"] > 0
