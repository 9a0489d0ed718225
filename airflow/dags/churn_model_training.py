"""churn_model_training: retrain the churn model every week, and promote it only through the gate.

train_churn_model runs `python -m spark_ml churn-train` on analytics.churn_features (rebuilt by every
customer_analytics_pipeline run): rolling time backtests against the baselines, one MLflow run with its
metrics, plots and model, and the gate (backtest AUC not below the current @champion's, ECE <= 0.05)
that alone moves `@champion`. The next customer_analytics_pipeline run scores with whichever model is
@champion then. A platform without a champion does not wait for Monday: the pipeline's score_churn
trains one at once.
"""
from __future__ import annotations

from airflow.sdk import dag, task
from churn_platform.common import CHURN_TRAINING_DAG_ID, DEFAULT_ARGS, REPO, cron, spark_ml


@dag(
    dag_id=CHURN_TRAINING_DAG_ID,
    # Mondays 03:00 UTC, between the pipeline's 00:00 and 06:00 runs; no start_date, as the pipeline: a
    # fresh platform does not run a "missed" week at once while it still fills with data
    schedule=cron("0 3 * * 1"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ml", "churn", "mlflow"],
    doc_md=__doc__,
)
def churn_model_training():
    @task.bash(cwd=str(REPO))
    def train_churn_model() -> str:
        return spark_ml("churn-train")

    train_churn_model()


churn_model_training()
