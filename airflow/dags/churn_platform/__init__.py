"""Shared pieces of the platform's DAGs (paths, assets, default_args, alerts, streaming checks).

Named churn_platform, not platform, so it never shadows the standard library's `platform` module
(Airflow puts the dags folder on sys.path). .airflowignore keeps the DAG processor out of it.
"""
