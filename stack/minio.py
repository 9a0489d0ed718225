"""MinIO, built from its Go module by `make setup`; the platform's bucket and the components' own users
are created on start."""
from __future__ import annotations

import json

import requests
from minio import Minio
from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin

from platform_common.config import BIN, Settings
from stack import mlflow
from stack.service import Service

BINARY = BIN / "minio"


def client(settings: Settings) -> Minio:
    return Minio(f"{settings.minio_host}:{settings.minio_port}", access_key=settings.minio_root_user,
                 secret_key=settings.minio_root_password, secure=settings.minio_secure)


def ensure_bucket(settings: Settings) -> None:
    minio, bucket = client(settings), settings.minio_bucket
    if not minio.bucket_exists(bucket):
        minio.make_bucket(bucket)


def prefix_policy(bucket: str, prefix: str) -> dict:
    """Read and write objects under s3://bucket/prefix/ and list only that prefix: nothing else."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/{prefix}/*"]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"],
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", prefix]}}},
        {"Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": [f"arn:aws:s3:::{bucket}"]}]}


def users(settings: Settings) -> list[tuple[str, str, str]]:
    """The component users: (user, password, the prefix of MINIO_BUCKET it may use)."""
    return [(settings.minio_mlflow_user, settings.minio_mlflow_password, mlflow.ARTIFACTS_PREFIX)]


def ensure_users(settings: Settings) -> None:
    """Each component user with its password from .env and a policy for its prefix only (idempotent:
    user_add sets the password again, policy_add replaces the policy)."""
    admin = MinioAdmin(endpoint=f"{settings.minio_host}:{settings.minio_port}",
                       credentials=StaticProvider(settings.minio_root_user, settings.minio_root_password),
                       secure=settings.minio_secure)
    for user, password, prefix in users(settings):
        policy = f"{user}-{prefix}"
        admin.user_add(user, password)
        admin.policy_add(policy, policy=prefix_policy(settings.minio_bucket, prefix))
        if policy not in json.loads(admin.user_info(user)).get("policyName", "").split(","):
            admin.attach_policy([policy], user=user)


def provision(settings: Settings) -> None:
    ensure_bucket(settings)
    ensure_users(settings)


def service(settings: Settings) -> Service:
    endpoint = settings.minio_endpoint.rstrip("/")

    def healthy() -> bool:
        try:
            return requests.get(f"{endpoint}/minio/health/live", timeout=2).ok
        except requests.RequestException:
            return False

    return Service(
        name="minio",
        port=settings.minio_port,
        port_setting="MINIO_ENDPOINT",
        url=endpoint,
        command=[str(BINARY), "server", str(settings.data_dir / "minio"),
                 "--address", f"{settings.minio_host}:{settings.minio_port}",
                 "--console-address", f"{settings.minio_host}:{settings.minio_console_port}", "--quiet"],
        healthy=healthy,
        provision=lambda: provision(settings),
        environment={"MINIO_ROOT_USER": settings.minio_root_user,
                     "MINIO_ROOT_PASSWORD": settings.minio_root_password,
                     "MINIO_BROWSER_REDIRECT_URL": f"http://{settings.minio_host}:{settings.minio_console_port}",
                     "MINIO_UPDATE": "off"},
        extra_ports=(settings.minio_console_port,),
    )
