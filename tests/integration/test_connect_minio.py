"""Kafka Connect with the Debezium plugin, and MinIO with the platform bucket."""
from __future__ import annotations

import io
import os
import uuid

import pytest
import requests
from confluent_kafka.admin import ConfigResource

from stack import kafka, minio
from stack.connect import DEBEZIUM_POSTGRES

pytestmark = pytest.mark.integration


def test_connect_lists_the_debezium_postgres_plugin(stack_up):
    plugins = requests.get(f"{stack_up.connect_url}/connector-plugins", timeout=10).json()
    debezium = [p for p in plugins if p["class"] == DEBEZIUM_POSTGRES]
    assert len(debezium) == 1 and debezium[0]["version"].startswith("3.7.0")


def test_connect_runs_distributed_with_compacted_internal_topics(stack_up):
    root = requests.get(stack_up.connect_url, timeout=10).json()
    assert root["version"] == "4.3.1"
    client = kafka.admin(stack_up)
    topics = client.list_topics(timeout=10).topics
    for name in ("_connect_configs", "_connect_offsets", "_connect_status"):
        assert all(len(p.replicas) == 1 for p in topics[name].partitions.values())
        entries = next(iter(client.describe_configs([ConfigResource("topic", name)]).values())).result()
        assert entries["cleanup.policy"].value == "compact"


def test_minio_bucket_exists_and_objects_round_trip(stack_up):
    client = minio.client(stack_up)
    bucket = stack_up.minio_bucket
    assert client.bucket_exists(bucket)
    payload = os.urandom(6 * 1024 * 1024 + 17)  # multipart-sized and odd
    key = f"it/{uuid.uuid4()}.bin"
    client.put_object(bucket, key, io.BytesIO(payload), len(payload))
    try:
        response = client.get_object(bucket, key)
        assert response.read() == payload
        response.close()
    finally:
        client.remove_object(bucket, key)


def test_minio_refuses_a_wrong_secret(stack_up):
    from minio import Minio
    from minio.error import S3Error
    bad = Minio(f"{stack_up.minio_host}:{stack_up.minio_port}", access_key=stack_up.minio_root_user,
                secret_key="wrong-secret", secure=False)
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        bad.list_buckets()
