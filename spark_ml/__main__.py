"""`python -m spark_ml export|segment|load|run` (with the spark venv's python: .tools/venvs/spark/bin/python).

  export   ClickHouse analytics.customer_features → Iceberg lakehouse.marts.customer_features
           (--synthetic N: generated features instead, plus their churn ground truth CSV)
  segment  Spark ML K-Means on the newest snapshot_date → Iceberg lakehouse.ml.* + model in MinIO
  load     the newest (or --run-id) segmentation run from Iceberg → ClickHouse ml.*
  run      export → segment → load
  churn-train  the churn model on ClickHouse analytics.churn_features: rolling backtests, one MLflow run,
               the promotion gate to @champion (spark_ml/churn/train.py)
  churn-score  every live customer scored by @champion → Iceberg ml.churn_scores + ClickHouse ml.churn_scores*
               (--train-if-no-champion: train first when the registry has no champion yet)
  drop-scope  remove everything a --scope run wrote (Iceberg namespaces, ClickHouse database, MinIO prefix)

--scope NAME writes to a separate namespace set (spark_ml/scope.py) instead of the platform's tables;
--customer-prefix P exports only one simulated population's customers (ids P0000001 ...).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys

from platform_common.errors import StackError


def _export(args) -> dict:
    from spark_ml import export, features, lake

    if args.synthetic:
        data, truth = features.synthetic_arrow(args.synthetic, seed=args.seed)
        path = lake.data_dir() / "synthetic_churn_ground_truth.csv"
        features.write_ground_truth(truth, path)
        args.ground_truth = args.ground_truth or str(path)
        out = export.export(source=f"synthetic(n={args.synthetic}, seed={args.seed})", data=data)
        out["ground_truth"] = str(path)
        return out
    return export.export(source=args.source, customer_prefix=args.customer_prefix)


def _segment(args) -> dict:
    from spark_ml import lake, segmentation

    truth = args.ground_truth
    if truth is None and lake.default_ground_truth().exists():
        truth = str(lake.default_ground_truth())
    cfg = segmentation.Config(k_min=args.k_min, k_max=args.k_max, seed=args.seed, n_init=args.n_init, ground_truth=truth,
                              snapshot_date=args.snapshot_date, sklearn_sample=args.sklearn_sample,
                              search_sample=args.search_sample)
    spark = lake.spark_session("spark_ml.segment", connect=args.connect)
    try:
        with lake.connect_safe_gc() if args.connect else contextlib.nullcontext():
            metrics = segmentation.run(spark, cfg)
    finally:
        spark.stop()
    metrics.pop("_scored", None)
    print(segmentation.summary_table(metrics))
    args.run_id = metrics["run_id"]
    return {k: metrics[k] for k in ("run_id", "customers", "k", "silhouette", "model_uri", "timings")}


def _load(args) -> dict:
    from spark_ml import load

    return load.load(run_id=args.run_id, keep_runs=args.keep_runs)


class Skip(Exception):
    """Nothing to do yet (one line); exit code SKIPPED, which Airflow's bash tasks report as skipped."""


SKIPPED = 99  # BashOperator's skip_on_exit_code


def _churn_train(args) -> dict:
    from spark_ml import lake
    from spark_ml.churn import registry, train

    return train.train(lake.settings(), lake.clickhouse(), source=args.churn_source, model_name=registry.MODEL_NAME,
                       experiment=registry.EXPERIMENT, customer_prefix=args.customer_prefix, seed=args.seed)


def _churn_score(args) -> dict:
    from spark_ml import lake
    from spark_ml.churn import registry, score

    if args.train_if_no_champion and registry.champion(registry.connect(lake.settings()), registry.MODEL_NAME) is None:
        from spark_ml.churn.training_set import TrainingSetError

        print(f"churn-score: {registry.MODEL_NAME} has no @{registry.ALIAS}; training one first", flush=True)
        try:
            trained = _churn_train(args)
        except TrainingSetError as exc:
            raise Skip(f"no churn model can be trained yet: {exc}") from None
        print(f"churn-train: {json.dumps(trained, default=str)}", flush=True)
        if not trained["promoted"]:
            raise Skip(f"the first churn model did not pass the gate ({trained['gate']}); no scores this run")
    return score.score(lake.settings(), lake.clickhouse(), source=args.churn_source, model_name=registry.MODEL_NAME,
                       customer_prefix=args.customer_prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_ml", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["export", "segment", "load", "run", "churn-train", "churn-score",
                                            "drop-scope"])
    parser.add_argument("--source", default="analytics.customer_features", help="ClickHouse table to export")
    parser.add_argument("--customer-prefix", default=None, metavar="P",
                        help="export only customers with ids P<digits> (one simulated population)")
    parser.add_argument("--scope", default=None, metavar="NAME",
                        help="write to scope NAME's own Iceberg namespaces, ClickHouse database and MinIO prefix")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="export N generated customers instead of the ClickHouse mart")
    parser.add_argument("--connect", action="store_true",
                        help="run on the stack's Spark Connect server (SPARK_CONNECT_URL) instead of a Spark "
                             "started in this process")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ground-truth", default=None,
                        help="churn ground truth CSV (default: DATA_DIR/simulator/churn_ground_truth.csv if present)")
    parser.add_argument("--snapshot-date", default=None, help="feature snapshot to cluster (default: newest)")
    parser.add_argument("--k-min", type=int, default=3)
    parser.add_argument("--k-max", type=int, default=8)
    parser.add_argument("--n-init", type=int, default=4, help="K-Means starts per k; the lowest cost wins")
    parser.add_argument("--sklearn-sample", type=int, default=10_000)
    parser.add_argument("--search-sample", type=int, default=50_000,
                        help="k search on a sample of about this many customers, then one fit on all (0 = all)")
    parser.add_argument("--run-id", default=None, help="run to load (default: the newest)")
    parser.add_argument("--keep-runs", type=int, default=10, help="runs kept in ClickHouse")
    parser.add_argument("--churn-source", default="analytics.churn_features",
                        help="ClickHouse table of the churn model's point-in-time rows (dbt model churn_features)")
    parser.add_argument("--train-if-no-champion", action="store_true",
                        help="churn-score: train and gate a model first when there is no @champion")
    args = parser.parse_args(argv)
    steps = {"export": [_export], "segment": [_segment], "load": [_load], "run": [_export, _segment, _load],
             "churn-train": [_churn_train], "churn-score": [_churn_score]}
    try:
        if args.command == "drop-scope":
            from spark_ml import scope
            if not args.scope:
                raise ValueError("drop-scope needs --scope NAME")
            scope.drop(args.scope)
            from spark_ml import lake
            from spark_ml.churn import registry
            registry.forget(registry.connect(lake.settings()), f"churn_model_{args.scope}")
            print(f"drop-scope: removed scope {args.scope}")
            return 0
        if args.scope:
            from spark_ml import scope
            print(f"scope: {json.dumps(scope.apply(args.scope))}", flush=True)
        for step in steps[args.command]:
            result = step(args)
            print(f"{step.__name__[1:]}: {json.dumps(result, default=str)}", flush=True)
    except Skip as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return SKIPPED
    except (StackError, RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # MLflow's and the churn jobs' own errors: one line, not a traceback
        if type(exc).__module__.split(".")[0] not in ("mlflow", "spark_ml"):
            raise
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
