"""The service list, in dependency order. A later service module adds one line here."""
from __future__ import annotations

from graphlib import TopologicalSorter

from platform_common.config import Settings
from platform_common.errors import StackError
from stack import (
    airflow,
    cdc_sink,
    churn_api,
    clickhouse,
    connect,
    flink,
    kafka,
    minio,
    mlflow,
    postgres,
    spark,
    spark_cluster,
    superset,
)
from stack.service import Service

MODULES = (postgres, kafka, connect, minio, clickhouse, cdc_sink, flink, flink.taskmanager, spark_cluster,
           spark_cluster.worker, spark, superset, mlflow, churn_api,
           airflow, airflow.scheduler, airflow.dag_processor, airflow.triggerer)


def all_services(settings: Settings) -> list[Service]:
    """Every service, ordered so each comes after what it depends on."""
    by_name = {svc.name: svc for svc in (module.service(settings) for module in MODULES)}
    graph = {name: set(svc.depends_on) for name, svc in by_name.items()}
    for name, deps in graph.items():
        if unknown := deps - by_name.keys():
            raise StackError(f"service {name} depends on unknown service(s): {', '.join(sorted(unknown))}")
    return [by_name[name] for name in TopologicalSorter(graph).static_order()]


def select(services: list[Service], names: list[str]) -> list[Service]:
    """The named services plus everything they depend on, in start order."""
    if not names:
        return services
    by_name = {svc.name: svc for svc in services}
    if unknown := [n for n in names if n not in by_name]:
        raise StackError(f"unknown service {unknown[0]!r}; known: {', '.join(by_name)}")
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(by_name[name].depends_on)
    return [svc for svc in services if svc.name in wanted]
