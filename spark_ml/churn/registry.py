"""MLflow for the churn model: the packaged model, the login, and the promotion gate to `@champion`.

The stack's MLflow server (stack/mlflow.py) tracks every training run and holds the registry. The
churn jobs sign in as MLFLOW_CHURN_USER, which manages only what it creates, and grant READ on the model and
its experiment to MLFLOW_CHURN_API_USER, the real-time service's login (grant_reader). A model version becomes
`@champion` only through `gate()`: its backtest ROC-AUC is not below the current champion's and its
backtest ECE is at most MAX_ECE. The decision is logged on the run and on the model version either way.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from platform_common.config import Settings

MODEL_NAME = "churn_model"
EXPERIMENT = "churn_model"
ALIAS = "champion"
MAX_ECE = 0.05
AUC_METRIC = "backtest_roc_auc"   # of the shipped model (gbt, calibrated), mean over the rolling backtests
ECE_METRIC = "backtest_ece"
GRANT_ENDPOINT = "/api/3.0/mlflow/users/permissions/grant"  # mlflow.server.auth.routes.GRANT_USER_PERMISSION


def _uri(settings: Settings) -> str:
    return f"http://{settings.mlflow_host}:{settings.mlflow_port}"


def connect(settings: Settings, reader: bool = False):
    """Point the mlflow client at the stack's server with the churn login (reader: the real-time service's
    read-only one); returns an MlflowClient. The login is process-wide (mlflow reads it from the environment)."""
    import mlflow
    from mlflow import MlflowClient

    if reader:
        user, password = settings.mlflow_churn_api_user, settings.mlflow_churn_api_password
    else:
        user, password = settings.mlflow_churn_user, settings.mlflow_churn_password
    os.environ["MLFLOW_TRACKING_USERNAME"] = user
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    mlflow.set_tracking_uri(_uri(settings))
    return MlflowClient(_uri(settings))


def grant_reader(settings: Settings, client, name: str, experiment: str | None = None) -> None:
    """READ on registered model `name` and on its experiment (`experiment`, default the same name) for
    MLFLOW_CHURN_API_USER, as the login connect() signed in with (the churn login, which manages both).
    Idempotent: an existing grant is kept. MLflow 3's unified grant API (users/permissions/grant)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    reader = settings.mlflow_churn_api_user
    grants = [("registered_model", name)]
    found = client.get_experiment_by_name(experiment or name)
    if found is not None:
        grants.append(("experiment", found.experiment_id))
    # mlflow-skinny lacks mlflow.server.auth.client (it imports flask): its two calls, with the client's own
    # HTTP layer (retries, the login from the environment, MlflowException on an error)
    creds = get_default_host_creds(_uri(settings))
    for resource_type, resource_id in grants:
        try:
            verify_rest_response(http_request(creds, GRANT_ENDPOINT, "POST", json={
                "username": reader, "resource_type": resource_type, "resource_id": resource_id,
                "permission": "READ"}), GRANT_ENDPOINT)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise RuntimeError(f"mlflow: could not grant {reader} READ on {resource_type} {resource_id}: "
                                   f"{' '.join(str(exc).split())[:200]}") from exc


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def gate(auc: float, ece: float, champion_auc: float | None) -> Decision:
    """Promote when ECE ≤ MAX_ECE and the AUC does not fall below the champion's (any AUC without one)."""
    if not ece <= MAX_ECE:
        return Decision(False, f"rejected: backtest ECE {ece:.4f} > {MAX_ECE}")
    if champion_auc is not None and auc < champion_auc:
        return Decision(False, f"rejected: backtest AUC {auc:.4f} < champion's {champion_auc:.4f}")
    against = "no champion yet" if champion_auc is None else f"champion's AUC {champion_auc:.4f}"
    return Decision(True, f"promoted: backtest AUC {auc:.4f} ({against}), ECE {ece:.4f} <= {MAX_ECE}")


def champion(client, name: str = MODEL_NAME):
    """(version, backtest AUC) of the current @champion, or None."""
    from mlflow.exceptions import MlflowException

    # MLflow's basic auth answers 403 (not 404) for a model that does not exist yet: search first (it lists
    # only what this login may read)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        return None
    try:
        version = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    auc = client.get_run(version.run_id).data.metrics.get(AUC_METRIC)
    return version, auc


def forget(client, name: str) -> None:
    """Delete registered model `name` (all its versions) and experiment `name`, if they exist (test scopes)."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(name)
    except MlflowException:
        pass
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        client.delete_experiment(experiment.experiment_id)
