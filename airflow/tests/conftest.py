"""The DAG integrity tests run in the airflow venv (`make test-airflow`), with no Airflow services:
a throw-away AIRFLOW_HOME and cosmos' dbt ls cache off (it would need the metadata database)."""
import os
import tempfile

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-test-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__COSMOS__ENABLE_CACHE"] = "False"
os.environ["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] = "False"
