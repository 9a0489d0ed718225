"""MinIO, built from its Go module by `make setup`; the platform's bucket is created on start."""
from __future__ import annotations

import requests
from minio import Minio

from platform_common.config import BIN, Settings
from stack.service import Service

BINARY = BIN / "minio"


def client(settings: Settings) -> Minio:
    return Minio(f"{settings.minio_host}:{settings.minio_port}", access_key=settings["MINIO_ROOT_USER"],
                 secret_key=settings["MINIO_ROOT_PASSWORD"], secure=settings["MINIO_ENDPOINT"].startswith("https"))


def ensure_bucket(settings: Settings) -> None:
    minio, bucket = client(settings), settings["MINIO_BUCKET"]
    if not minio.bucket_exists(bucket):
        minio.make_bucket(bucket)


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
        provision=lambda: ensure_bucket(settings),
        environment={"MINIO_ROOT_USER": settings["MINIO_ROOT_USER"],
                     "MINIO_ROOT_PASSWORD": settings["MINIO_ROOT_PASSWORD"],
                     "MINIO_BROWSER_REDIRECT_URL": f"http://{settings.minio_host}:{settings.minio_console_port}",
                     "MINIO_UPDATE": "off"},
        extra_ports=(settings.minio_console_port,),
    )
