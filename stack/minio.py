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
    return Minio(f"{settings.minio_host}:{settings.minio_port}", access_key=settings["MINIO_ROOT_USER"],
                 secret_key=settings["MINIO_ROOT_PASSWORD"], secure=settings["MINIO_ENDPOINT"].startswith("https"))


def ensure_bucket(settings: Settings) -> None:
    minio, bucket = client(settings), settings["MINIO_BUCKET"]
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


# component users: (user setting, password setting, prefix of MINIO_BUCKET it may use)
USERS = (("MINIO_MLFLOW_USER", "MINIO_MLFLOW_PASSWORD", mlflow.ARTIFACTS_PREFIX),)


def ensure_users(settings: Settings) -> None:
    """Each component user with its password from .env and a policy for its prefix only (idempotent:
    user_add sets the password again, policy_add replaces the policy)."""
    admin = MinioAdmin(endpoint=f"{settings.minio_host}:{settings.minio_port}",
                       credentials=StaticProvider(settings["MINIO_ROOT_USER"], settings["MINIO_ROOT_PASSWORD"]),
                       secure=settings["MINIO_ENDPOINT"].startswith("https"))
    for user_var, password_var, prefix in USERS:
        user, policy = settings[user_var], f"{settings[user_var]}-{prefix}"
        admin.user_add(user, settings[password_var])
        admin.policy_add(policy, policy=prefix_policy(settings["MINIO_BUCKET"], prefix))
        if policy not in json.loads(admin.user_info(user)).get("policyName", "").split(","):
            admin.attach_policy([policy], user=user)


def provision(settings: Settings) -> None:
    ensure_bucket(settings)
    ensure_users(settings)


def service(settings: Settings) -> Service:
    endpoint = settings["MINIO_ENDPOINT"].rstrip("/")

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
        environment={"MINIO_ROOT_USER": settings["MINIO_ROOT_USER"],
                     "MINIO_ROOT_PASSWORD": settings["MINIO_ROOT_PASSWORD"],
                     "MINIO_BROWSER_REDIRECT_URL": f"http://{settings.minio_host}:{settings.minio_console_port}",
                     "MINIO_UPDATE": "off"},
        extra_ports=(settings.minio_console_port,),
    )
