"""notebooks/cluster_analysis.ipynb executed end to end (nbclient) on two segmentation runs of generated
customers: the latest run from ClickHouse (BI user), the previous one by Iceberg time travel.

The runs go to this module's own Iceberg namespaces, ClickHouse database and MinIO prefix (not the
session's `isolated` ones, whose tables test_segmentation.py counts exactly); all removed afterwards.
"""
from __future__ import annotations

import datetime as dt
import json

import pyarrow.compute as pc
import pytest

from platform_common.config import REPO
from spark_ml import export, features, lake, load, segmentation
from spark_ml.tests.conftest import isolated_lake

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

NOTEBOOK = REPO / "notebooks" / "cluster_analysis.ipynb"
N = 3_000
KEPT = 2_700                      # customers still present in the second run
SNAPSHOT = dt.date(2026, 10, 1)
PLOTS = ["segment_sizes", "profile_heatmap", "rfm_scatter", "migration", "churn"]


@pytest.fixture(scope="module")
def notebook_data(services, spark, tmp_path_factory):
    with isolated_lake(services.minio_bucket, tag="_nb") as names:
        db = names["clickhouse_db"]
        tmp = tmp_path_factory.mktemp("nb")
        runs = []
        # run 1: N customers; run 2: a day later, behaviour drifted, KEPT of the same customers
        for i, (drift, keep) in enumerate(((0.0, N), (0.05, KEPT))):
            data, truth = features.synthetic_arrow(N, seed=11, snapshot_date=SNAPSHOT + dt.timedelta(days=i), drift=drift)
            ids = sorted(data.column("customer_id").to_pylist())[:keep]
            data = data.filter(pc.is_in(data.column("customer_id"), value_set=pc.cast(ids, data.schema.field("customer_id").type)))
            truth = truth[truth.customer_id.isin(ids)]
            export.export(source=f"synthetic notebook test {i}", data=data)
            path = tmp / f"truth_{i}.csv"
            features.write_ground_truth(truth, path)
            k_range = (3, 5) if i == 0 else (runs[0]["k"],) * 2
            m = segmentation.run(spark, segmentation.Config(k_min=k_range[0], k_max=k_range[1], seed=42,
                                                            ground_truth=str(path), sklearn_sample=0))
            m.pop("_scored", None)
            load.load(run_id=m["run_id"])
            runs.append({"run_id": m["run_id"], "k": m["k"], "customers": m["customers"], "ids": set(ids)})
        yield {"db": db, "segments_table": lake.SEGMENTS_TABLE, "features_table": lake.FEATURES_TABLE, "runs": runs}


@pytest.fixture(scope="module")
def executed(notebook_data, tmp_path_factory):
    import nbclient
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"), \
        "the notebook is committed with outputs: clear them"
    # papermill style: a cell after the one tagged `parameters` overrides its values
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    figure_dir = tmp_path_factory.mktemp("figures")
    params = {"CLICKHOUSE_DB": notebook_data["db"], "SEGMENTS_TABLE": notebook_data["segments_table"],
              "FEATURES_TABLE": notebook_data["features_table"], "SAMPLE_SIZE": 1000, "FIGURE_DIR": str(figure_dir)}
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(
        "\n".join(f"{k} = {v!r}" for k, v in params.items()), metadata={"tags": ["injected-parameters"]}))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return nb, figure_dir


def _cells(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_notebook_runs_without_errors(executed):
    nb, _ = executed
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


def test_sizes_table_sums_to_the_latest_runs_customers(executed, notebook_data):
    nb, _ = executed
    latest = notebook_data["runs"][-1]
    (cell,) = _cells(nb, "sizes")
    assert f"run {latest['run_id']} " in _text(cell)
    assert f"{latest['k']} segments, {KEPT:,} customers" in _text(cell)
    assert latest["customers"] == KEPT


def test_migration_crosstab_covers_the_customers_in_both_runs(executed, notebook_data):
    nb, _ = executed
    first, second = notebook_data["runs"]
    (cell,) = _cells(nb, "migration")
    in_both = len(first["ids"] & second["ids"])
    assert in_both == KEPT
    assert f"{in_both:,} customers in both runs" in _text(cell)
    assert f"0 new, {N - KEPT:,} no longer scored" in _text(cell)
    (history,) = _cells(nb, "history")
    assert f"latest {second['run_id']}, previous {first['run_id']}" in _text(history)


def test_every_plot_cell_produced_a_figure(executed):
    nb, figure_dir = executed
    plots = _cells(nb, "plot")
    assert len(plots) == len(PLOTS)
    for cell in plots:
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.source[:200]
    assert sorted(p.stem for p in figure_dir.glob("*.png")) == sorted(PLOTS)


def test_summary(executed, notebook_data):
    nb, _ = executed
    first, second = notebook_data["runs"]
    (cell,) = _cells(nb, "summary")
    summary = json.loads(_text(cell).strip().splitlines()[-1])
    assert summary == {"run_id": second["run_id"], "previous_run_id": first["run_id"],
                       "snapshot_date": (SNAPSHOT + dt.timedelta(days=1)).isoformat(), "segments": second["k"],
                       "customers": KEPT, "customers_in_both_runs": KEPT, "churn_rates": second["k"],
                       "figures": PLOTS}
