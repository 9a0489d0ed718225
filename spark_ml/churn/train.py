"""Train the churn model on the platform's point-in-time rows, log it to MLflow, and gate its promotion.

    python -m spark_ml churn-train [--source analytics.churn_features] [--model-name churn_model]

1. Training rows from ClickHouse (spark_ml.churn.training_set), split by cutoff date.
2. Rolling backtests: the gradient-boosted model (calibrated) against logistic regression and recency
   alone, each fitted, calibrated and tested on its own time blocks (spark_ml.churn.backtest).
3. The shipped model: fitted on all blocks but the newest, calibrated on the newest. Its fit and the
   backtests' are independent: CHURN_TRAIN_JOBS of them run at once (fit()).
4. One MLflow run: parameters, every backtest metric, calibration and lift plots, the model (registered).
5. The gate (spark_ml.churn.registry.gate) against the current @champion; promoted, it becomes @champion.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from platform_common.config import Settings
from spark_ml.churn import backtest, drift, metrics, model, registry, training_set

BASELINES = ("logistic", "recency")
CALIBRATION_TABLE = "ml.churn_model_calibration"  # ClickHouse; the Churn risk dashboard's calibration chart
SHIPPED = ("gbt", model.CALIBRATION)


def models(seed: int) -> dict:
    return {"gbt": model.gbt(seed), "logistic": model.logistic(),
            "recency": model.single_feature(training_set.RECENCY)}


def _plots(predictions):
    """Calibration (reliability) and cumulative gain of the shipped model's backtest predictions."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shipped = predictions[(predictions.model == SHIPPED[0]) & (predictions.calibration == SHIPPED[1])]
    y, p = shipped.y.to_numpy(), shipped.p.to_numpy()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
    bins = np.linspace(0, 1, metrics.ECE_BINS + 1)
    ids = np.clip(np.searchsorted(bins[1:-1], p), 0, metrics.ECE_BINS - 1)
    used = np.unique(ids)
    left.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    left.plot([p[ids == b].mean() for b in used], [y[ids == b].mean() for b in used], marker="o")
    left.set(xlabel="predicted p(churn)", ylabel="observed churn rate", title="calibration (backtests)")
    order = np.argsort(-p, kind="stable")
    gain = np.concatenate([[0], np.cumsum(y[order]) / max(y.sum(), 1)])
    share = np.linspace(0, 1, len(gain))
    right.plot(share, gain, label="model")
    right.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="random")
    right.set(xlabel="share of customers contacted (highest p first)", ylabel="share of churners reached",
              title="cumulative gain (backtests)")
    right.legend()
    fig.tight_layout()
    return fig


def calibration_rows(predictions, model_name: str, version: str, run_id: str) -> list[list]:
    """Per bin of predicted p (metrics.ECE_BINS equal-width bins, right-closed as ECE's): the shipped model's
    mean prediction, observed churn rate and rows, over its pooled backtest predictions."""
    shipped = predictions[(predictions.model == SHIPPED[0]) & (predictions.calibration == SHIPPED[1])]
    ids = np.searchsorted(np.linspace(0, 1, metrics.ECE_BINS + 1)[1:-1], shipped.p.to_numpy())
    grouped = shipped.assign(bin=ids).groupby("bin").agg(mean_p=("p", "mean"), observed=("y", "mean"), rows=("y", "size"))
    return [[model_name, version, run_id, int(b), float(r.mean_p), float(r.observed), int(r.rows)]
            for b, r in grouped.iterrows()]


@dataclass(frozen=True)
class Trained:
    result: backtest.Result       # the rolling backtests of every model in models()
    shipped: object               # the GBT fitted on fit_rows, calibrated on calibration_rows
    reference: dict               # drift.reference of every training row
    splits: list
    fit_rows: np.ndarray
    calibration_rows: np.ndarray
    timings: dict                 # fits_s (backtests and the shipped model, `jobs` at once), reference_s


def fit(X, y, cutoffs, seed: int = 42, jobs: int = 1) -> Trained:
    """The backtests and the shipped model, from point-in-time rows (X, y) and their cutoff dates: every fit is
    independent, so all of them run `jobs` at a time (backtest.fit_all); the drift reference after."""
    t0 = time.perf_counter()
    splits = training_set.rolling_splits(cutoffs)
    fit_rows, cal = training_set.final_split(cutoffs)
    fits = backtest.fits_of(splits, models(seed))
    fits.append(backtest.Fit("shipped", -1, model.gbt(seed), backtest.Split(fit_rows, cal, np.empty(0, dtype=int))))
    with threadpool_limits(limits=1, user_api="openmp"):  # in this process too (calibration, the reference)
        done = backtest.fit_all(X, y, fits, jobs)
        shipped = done[-1].variants[model.CALIBRATION]
        fits_s = time.perf_counter() - t0
        reference = drift.reference(X, shipped.predict_proba(X)[:, 1])  # every training row: scoring's comparison
    return Trained(backtest.result(y, done[:-1]), shipped, reference, splits, fit_rows, cal,
                   {"fits_s": fits_s, "reference_s": time.perf_counter() - t0 - fits_s})


def train(settings: Settings, client, source: str = training_set.DEFAULT_SOURCE, model_name: str = registry.MODEL_NAME,
          experiment: str = registry.EXPERIMENT, customer_prefix: str | None = None, seed: int = 42,
          horizon_days: int = 30) -> dict:
    import mlflow
    from mlflow.entities import Metric, Param

    from spark_ml.churn.pyfunc import ChurnModel

    t0 = time.perf_counter()
    rows = training_set.read(client, source, training=True, customer_prefix=customer_prefix)
    X, y = training_set.features(rows), training_set.labels(rows)
    t_read = time.perf_counter() - t0
    trained = fit(X, y, rows.cutoff_date, seed, settings.churn_train_jobs)
    result, shipped, reference, splits, fit_rows, cal = (trained.result, trained.shipped, trained.reference,
                                                         trained.splits, trained.fit_rows, trained.calibration_rows)
    summary = result.summary()

    # The backtests' figures are those of their test predictions pooled (every test block once): per block,
    # a few hundred rows of a demo make ECE mostly noise. The mean over blocks is logged beside them.
    figures = {}
    for (name, method), scored in result.predictions.groupby(["model", "calibration"], sort=False):
        if method == backtest.UNCALIBRATED:
            continue
        key = "backtest" if (name, method) == SHIPPED else f"backtest_{name}"
        figures.update({f"{key}_{m}": v for m, v in metrics.evaluate(scored.y, scored.p).items()})
        figures.update({f"{key}_{m}_fold_mean": float(summary.loc[(name, method), (m, "mean")])
                        for m in ("roc_auc", "ece")})
    auc, ece = figures[registry.AUC_METRIC], figures[registry.ECE_METRIC]
    baseline = max(BASELINES, key=lambda b: figures[f"backtest_{b}_roc_auc"])
    figures.update(best_baseline_roc_auc=figures[f"backtest_{baseline}_roc_auc"], training_rows=len(y),
                   churn_rate=float(y.mean()), backtests=len(splits))
    per_fold = result.scores[(result.scores.model == SHIPPED[0]) & (result.scores.calibration == SHIPPED[1])]

    mlclient = registry.connect(settings)
    mlflow.set_experiment(experiment)
    # few requests: parameters, metrics and per-backtest figures go in ONE batch, and no table artifact (each
    # request is a round trip through the server's auth and database; a remote tracking server is slower still)
    with mlflow.start_run(run_name=f"churn {rows.cutoff_date.max():%Y-%m-%d}") as run:
        params = {"source": source, "horizon_days": horizon_days, "seed": seed,
                  "features": ",".join(training_set.FEATURES), "calibration": model.CALIBRATION,
                  "cutoffs": f"{rows.cutoff_date.min():%Y-%m-%d}..{rows.cutoff_date.max():%Y-%m-%d}",
                  "fit_cutoffs": training_set.cutoff_range(rows, fit_rows),
                  "calibration_cutoffs": training_set.cutoff_range(rows, cal),
                  "best_baseline": baseline, **{f"gbt_{k}": v for k, v in model.GBT_PARAMS.items()}}
        # the model before the metrics: log_model links every metric already on the run to the model, one
        # request per metric
        metadata = {"training_rows": len(y), "churn_rate": float(y.mean()), **figures}
        info = mlflow.pyfunc.log_model(name="model", python_model=ChurnModel(shipped, horizon_days, metadata, reference),
                                       registered_model_name=model_name,
                                       pip_requirements=["scikit-learn==1.7.2", "pandas==2.3.3", "numpy==2.3.5"])
        version = str(info.registered_model_version)
        registry.grant_reader(settings, mlclient, model_name, experiment)  # the real-time service reads it
        now = int(time.time() * 1000)
        logged = [Metric(k, v, now, 0) for k, v in figures.items()]
        logged += [Metric(f"fold_{m}", float(getattr(score, m)), now, int(score.fold))
                   for score in per_fold.itertuples() for m in ("roc_auc", "ece")]
        mlclient.log_batch(run.info.run_id, metrics=logged, params=[Param(k, str(v)) for k, v in params.items()])
        mlflow.log_figure(_plots(result.predictions), "backtest_calibration_and_gain.png")
        current = registry.champion(mlclient, model_name)
        decision = registry.gate(auc, ece, None if current is None else current[1])
        mlflow.set_tags({"gate.decision": "promoted" if decision.promote else "rejected",
                         "gate.reason": decision.reason, "model.version": version})
        mlclient.set_model_version_tag(model_name, version, "gate", decision.reason)
        client.insert(CALIBRATION_TABLE, calibration_rows(result.predictions, model_name, version, run.info.run_id),
                      column_names=["model_name", "model_version", "mlflow_run_id", "bin", "mean_p", "observed_rate",
                                    "rows"])
        if decision.promote:
            mlclient.set_registered_model_alias(model_name, registry.ALIAS, version)
    return {"run_id": run.info.run_id, "model": model_name, "version": version, "promoted": decision.promote,
            "gate": decision.reason, "roc_auc": auc, "ece": ece, "best_baseline": baseline,
            "best_baseline_roc_auc": figures["best_baseline_roc_auc"], "training_rows": len(y),
            "churn_rate": float(y.mean()), "backtests": len(splits),
            "timings": {"read_s": round(t_read, 2), **{k: round(v, 2) for k, v in trained.timings.items()},
                        "mlflow_s": round(time.perf_counter() - t0 - t_read - sum(trained.timings.values()), 2),
                        "total_s": round(time.perf_counter() - t0, 2)}}
