"""Churn model core: metrics, the model and its baselines, calibration and risk bands, backtests.

Data-agnostic on purpose: every function takes a pandas frame of features (numeric columns and
`category` columns) and 0/1 labels, so the Telco benchmark (spark_ml.churn.telco) and training on
the platform's point-in-time features run the same code. docs/churn_model.md describes the choices.
"""
