"""The shipped churn model flattened into arrays, to score and explain one customer in about a millisecond.

explain.contributions evaluates every tree recursively in Python, once per feature subset: fine for a
batch (the work is vectorised over customers, ~0.5 ms each), but ~500 ms for a single customer, and
predict_proba on a one-row DataFrame costs ~15 ms of pandas and encoder overhead. The real-time service
(spark_ml/churn/api.py) needs both per request, so `compile()` turns the fitted model into arrays once:

- each leaf of each tree as its path: (split node, direction) pairs, padded to the deepest path;
- E[f(x) | x_S] of a tree, for every subset S of its (at most 5) features at once, is then
  Σ_leaf value × Π_path (feature in S ? [x goes this way] : share of the training rows that went this way),
  the same path-dependent expectation explain._tree_shapley computes by recursion;
- the Shapley values are a fixed linear map of those subset values per tree (a weight matrix);
- the category encoding (the model's OrdinalEncoder: known category → code, unknown → NaN) and the
  calibration (sigmoid on the margin, averaged over the calibrated classifiers) are applied directly.

The results equal explain.contributions and the model's predict_proba to rounding
(spark_ml/tests/test_churn_realtime.py checks both on a fitted model).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from spark_ml.churn import explain


@dataclass(frozen=True)
class CompiledModel:
    columns: tuple[str, ...]          # X's columns (training_set.FEATURES)
    order: np.ndarray                 # X column of each encoded column (categorical first, as the model encodes)
    categories: dict[str, dict]       # categorical column → {category: code}
    base: float                       # the model's baseline margin
    # split nodes of every tree, flattened
    node_feature: np.ndarray          # encoded column tested
    node_threshold: np.ndarray
    node_missing_left: np.ndarray
    node_categorical: np.ndarray
    node_bitset: np.ndarray           # [nodes, words] left-category bitsets (0 for numeric nodes)
    # leaf paths, [trees, leaves, depth]; padding: node 0 with share 1 and no feature
    path_node: np.ndarray
    path_left: np.ndarray
    path_share: np.ndarray
    path_local: np.ndarray            # the node's feature as an index into its tree's features (-1: padding)
    leaf_value: np.ndarray            # [trees, leaves] (0 for padding)
    in_subset: np.ndarray             # [subsets, trees, leaves, depth]: the path node's feature is in the subset
    shapley: np.ndarray               # [trees, max features, subsets]: phi_j = Σ_S W[j, S] v(S)
    tree_columns: np.ndarray          # [trees, max features] X column of each local feature (-1: none)
    calibrators: tuple[tuple[float, float], ...]   # sigmoid (a, b) of each calibrated classifier

    def encode(self, row: dict) -> np.ndarray:
        """One customer's features (X's columns → values) as the model's encoded row."""
        out = np.empty(len(self.order))
        for i, c in enumerate(self.order):
            name = self.columns[c]
            value = row[name]
            if name in self.categories:
                out[i] = self.categories[name].get(str(value), np.nan)
            else:
                out[i] = np.nan if value is None else float(value)
        return out

    def explain(self, xp: np.ndarray) -> tuple[float, float, np.ndarray]:
        """(p(churn), margin, contributions per X column) of one encoded row."""
        x = xp[self.node_feature]
        missing = np.isnan(x)
        codes = np.where(missing, 0, x).astype(np.int64)
        word = self.node_bitset[np.arange(len(codes)), np.clip(codes // 32, 0, self.node_bitset.shape[1] - 1)]
        in_bitset = (codes >= 0) & (codes < 32 * self.node_bitset.shape[1]) & (((word >> (codes % 32)) & 1) == 1)
        left = np.where(self.node_categorical, in_bitset, x <= self.node_threshold)
        left = np.where(missing, self.node_missing_left, left)
        follows = left[self.path_node] == self.path_left                      # [trees, leaves, depth]
        factor = np.where(self.in_subset, follows, self.path_share)
        values = (factor.prod(axis=3) * self.leaf_value).sum(axis=2).T         # [trees, subsets]
        phi_local = np.einsum("tjs,ts->tj", self.shapley, values)
        phi = np.zeros(len(self.columns))
        mask = self.tree_columns >= 0
        np.add.at(phi, self.tree_columns[mask], phi_local[mask])
        margin = self.base + float(values[:, -1].sum())  # all bits set: every feature of every tree known = f(x)
        p = float(np.mean([expit(-(a * margin + b)) for a, b in self.calibrators]))
        return p, margin, phi


def compile(fitted, columns) -> CompiledModel:  # noqa: A001 - the module's one verb
    gbt = explain.margin_model(fitted)
    columns = tuple(columns)
    order = explain._original_columns(gbt, len(columns))
    categories = {}
    if gbt._preprocessor is not None:
        encoder = gbt._preprocessor.named_transformers_["encoder"]
        categorical = [columns[i] for i in np.flatnonzero(np.asarray(gbt.is_categorical_))]
        categories = {name: {str(v): code for code, v in enumerate(cats)}
                      for name, cats in zip(categorical, encoder.categories_, strict=True)}

    trees = [tree for (tree,) in gbt._predictors]
    nodes_all = []
    paths: list[list[list[tuple[int, bool, float, int]]]] = []
    leaf_values: list[list[float]] = []
    tree_features: list[list[int]] = []
    words = max((t.raw_left_cat_bitsets.shape[1] for t in trees if t.raw_left_cat_bitsets.size), default=1)
    bitsets = []
    offset = 0
    for tree in trees:
        nodes = tree.nodes
        features = sorted({int(nodes["feature_idx"][i]) for i in np.flatnonzero(~nodes["is_leaf"].astype(bool))})
        local = {f: k for k, f in enumerate(features)}
        tree_features.append(features)
        tree_paths, tree_leaves = [], []

        stack = [(0, [])]
        while stack:  # depth first; a leaf's path is its (node, went left, share of rows, local feature) pairs
            node, path = stack.pop()
            n = nodes[node]
            if n["is_leaf"]:
                tree_paths.append(path)
                tree_leaves.append(float(n["value"]))
                continue
            left, right = int(n["left"]), int(n["right"])
            wl, wr = float(nodes["count"][left]), float(nodes["count"][right])
            f = local[int(n["feature_idx"])]
            stack.append((right, [*path, (offset + node, False, wr / (wl + wr), f)]))
            stack.append((left, [*path, (offset + node, True, wl / (wl + wr), f)]))
        paths.append(tree_paths)
        leaf_values.append(tree_leaves)
        for i in range(len(nodes)):
            n = nodes[i]
            nodes_all.append((int(n["feature_idx"]), float(n["num_threshold"]), bool(n["missing_go_to_left"]),
                              bool(n["is_categorical"])))
            row = np.zeros(words, dtype=np.uint32)
            if n["is_categorical"] and not n["is_leaf"]:
                row[:tree.raw_left_cat_bitsets.shape[1]] = tree.raw_left_cat_bitsets[int(n["bitset_idx"])]
            bitsets.append(row)
        offset += len(nodes)

    n_trees = len(trees)
    max_leaves = max(len(p) for p in paths)
    depth = max(len(path) for p in paths for path in p)
    max_features = max(len(f) for f in tree_features)
    path_node = np.zeros((n_trees, max_leaves, depth), dtype=np.int64)
    path_left = np.ones((n_trees, max_leaves, depth), dtype=bool)
    path_share = np.ones((n_trees, max_leaves, depth))
    path_local = np.full((n_trees, max_leaves, depth), -1, dtype=np.int64)
    leaf_value = np.zeros((n_trees, max_leaves))
    tree_columns = np.full((n_trees, max_features), -1, dtype=np.int64)
    shapley = np.zeros((n_trees, max_features, 2 ** max_features))
    for t, (tree_paths, values, features) in enumerate(zip(paths, leaf_values, tree_features, strict=True)):
        for leaf, (path, value) in enumerate(zip(tree_paths, values, strict=True)):
            leaf_value[t, leaf] = value
            for d, (node, left, share, f) in enumerate(path):
                path_node[t, leaf, d], path_left[t, leaf, d], path_share[t, leaf, d], path_local[t, leaf, d] = \
                    node, left, share, f
        m = len(features)
        tree_columns[t, :m] = order[features]
        for j in range(m):
            others = [k for k in range(m) if k != j]
            for r in range(m):
                weight = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
                for subset in itertools.combinations(others, r):
                    s = sum(1 << k for k in subset)
                    shapley[t, j, s | (1 << j)] += weight
                    shapley[t, j, s] -= weight
    node_arr = np.array(nodes_all, dtype=object)
    calibrators = tuple((float(c.calibrators[0].a_), float(c.calibrators[0].b_))
                        for c in fitted.calibrated_classifiers_) if hasattr(fitted, "calibrated_classifiers_") else ()
    return CompiledModel(
        columns=columns, order=order, categories=categories, base=float(gbt._baseline_prediction.ravel()[0]),
        node_feature=node_arr[:, 0].astype(np.int64), node_threshold=node_arr[:, 1].astype(float),
        node_missing_left=node_arr[:, 2].astype(bool), node_categorical=node_arr[:, 3].astype(bool),
        node_bitset=np.array(bitsets, dtype=np.uint32), path_node=path_node, path_left=path_left,
        path_share=path_share, path_local=path_local, leaf_value=leaf_value, shapley=shapley,
        in_subset=((np.arange(2 ** max_features)[:, None, None, None] >> np.maximum(path_local, 0)) & 1).astype(bool)
        & (path_local >= 0),
        tree_columns=tree_columns, calibrators=calibrators)
