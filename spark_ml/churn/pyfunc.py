"""The shipped churn model as an MLflow pyfunc: raw churn_features rows in, calibrated p(churn) out.

MLflow's generic loader would return class labels for a scikit-learn classifier; this returns the
probability, and keeps the fitted model (`model`) for the exact explanations (spark_ml.churn.explain).
"""
from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from spark_ml.churn import training_set


class ChurnModel(mlflow.pyfunc.PythonModel):
    def __init__(self, model, horizon_days: int, metadata: dict, reference: dict | None = None):
        self.model = model                # CalibratedClassifierCV around the fitted gradient-boosted trees
        self.horizon_days = horizon_days  # the label's horizon: p is the churn probability over these days
        self.metadata = metadata          # training rows, cutoffs, backtest figures
        self.reference = reference        # the training rows' distributions (spark_ml.churn.drift.reference)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"p_churn": self.model.predict_proba(training_set.features(model_input))[:, 1]})
