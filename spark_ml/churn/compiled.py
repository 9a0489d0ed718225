"""The shipped churn model compiled into lookup tables: p(churn) and exact contributions, for one customer
in well under a millisecond and for a million in seconds.

explain.contributions evaluates every tree recursively in Python, once per feature subset: ~0.5 ms per
customer in a batch and ~500 ms for a single one, and predict_proba on a one-row DataFrame costs ~15 ms
of pandas and encoder overhead. The real-time service needs both per request and the batch needs both
for every live customer, so `compile()` does the tree work once per model:

- A tree has at most 5 splits (6 leaves). Which way a customer goes at each of them (a 5-bit code)
  decides everything the tree contributes: its leaf, and, for every subset S of its features, the
  path-dependent expectation E[f(x) | x_S] (follow x at splits on a feature in S, otherwise weigh both
  sides by their training rows: what explain._tree_shapley computes by recursion). So for each of the
  ≤ 32 codes of each tree, compile() computes the subset values, the exact Shapley values (a fixed
  linear map of them) and the tree's output, and keeps them in tables.
- Scoring is then: the model's encoding of the row (categories → codes, unknown → NaN), one comparison
  per split (NaN goes where the split sends missing values, a category goes left when its code is in
  the split's bitset), the code of each tree, table lookups and sums. p is the margin through the
  calibration (sigmoid per calibrated classifier, averaged, as CalibratedClassifierCV does).

The results equal explain.contributions and the model's predict_proba to rounding
(spark_ml/tests/test_churn_realtime.py checks both on a fitted model).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.special import expit

from spark_ml.churn import explain

CHUNK = 10_000   # rows per block when scoring many: the [splits, rows] comparisons stay in cache (50k: 1.5x slower)


@dataclass(frozen=True)
class CompiledModel:
    columns: tuple[str, ...]          # X's columns (training_set.FEATURES)
    order: np.ndarray                 # X column of each encoded column (categorical first, as the model encodes)
    categories: dict[str, dict]       # categorical column → {category: code}
    base: float                       # the model's baseline margin
    split_feature: np.ndarray         # per split of any tree: the encoded column it tests
    split_threshold: np.ndarray
    split_missing_left: np.ndarray
    split_categorical: np.ndarray
    categorical_splits: np.ndarray    # ids of the splits on a category
    category_left: np.ndarray         # [categorical splits, codes + 1]: the code goes left (last: none does)
    tree_splits: np.ndarray           # [trees, max splits]: split ids of each tree, bit k of its code (-1: none)
    margin_table: np.ndarray          # [trees, codes]: the tree's output
    phi_columns: np.ndarray           # [trees × codes, X columns]: the tree's Shapley values, by X column
    calibrators: tuple[tuple[float, float], ...]   # sigmoid (a, b) of each calibrated classifier (none: raw)

    def encode(self, row: dict) -> np.ndarray:
        """One customer's features (X's column → value, typed as training_set.features does) as the model's
        encoded row."""
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
        p, margin, phi = self.explain_many(xp[None, :])
        return float(p[0]), float(margin[0]), phi[0]

    def explain_many(self, Xp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """p(churn), margin and contributions [rows, X columns] of encoded rows (gbt._preprocess_X's output).
        Each row picks one table row per tree (tree × its code): a sparse 0/1 matrix times the tables."""
        n, trees = len(Xp), len(self.tree_splits)
        codes_per_tree = self.margin_table.shape[1]
        margin, phi = np.empty(n), np.empty((n, len(self.columns)))
        for start in range(0, n, CHUNK):
            block = Xp[start:start + CHUNK]
            picked = (self._codes(block) + (np.arange(trees) * codes_per_tree)[:, None]).T.ravel()
            rows = csr_matrix((np.ones(len(picked)), picked, np.arange(0, len(picked) + 1, trees)),
                              shape=(len(block), trees * codes_per_tree))
            margin[start:start + CHUNK] = self.base + rows @ self.margin_table.ravel()
            phi[start:start + CHUNK] = rows @ self.phi_columns
        return self.probability(margin), margin, phi

    def probability(self, margin: np.ndarray) -> np.ndarray:
        if not self.calibrators:
            return expit(margin)
        return np.mean([expit(-(a * margin + b)) for a, b in self.calibrators], axis=0)

    def _codes(self, Xp: np.ndarray) -> np.ndarray:
        """[trees, rows]: bit k set when the row goes left at the tree's k-th split (split-major: row gathers)."""
        x = np.ascontiguousarray(Xp.T)[self.split_feature]              # [splits, rows]
        missing = np.isnan(x)
        with np.errstate(invalid="ignore"):
            left = x <= self.split_threshold[:, None]
        if len(self.categorical_splits):  # a category goes left when its code's bit is set (unknown: NaN, missing)
            width = self.category_left.shape[1] - 1
            codes = np.nan_to_num(x[self.categorical_splits], nan=width).astype(np.int64)
            codes[(codes < 0) | (codes > width)] = width
            left[self.categorical_splits] = self.category_left[np.arange(len(self.categorical_splits))[:, None], codes]
        left = np.where(missing, self.split_missing_left[:, None], left)
        left = np.concatenate([left, np.zeros((1, len(Xp)), dtype=bool)])  # row −1: no split
        out = np.zeros((len(self.tree_splits), len(Xp)), dtype=np.int64)
        for k in range(self.tree_splits.shape[1]):
            out |= left[self.tree_splits[:, k]].astype(np.int64) << k
        return out


def _tree_tables(nodes, split_of: dict[int, int], features: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(outputs [codes], Shapley values [codes, features]) of one tree for every code of its splits."""
    local = {f: k for k, f in enumerate(features)}
    leaves = []  # (value, [(split bit, went left, share of rows, local feature)])
    stack = [(0, [])]
    while stack:
        node, path = stack.pop()
        n = nodes[node]
        if n["is_leaf"]:
            leaves.append((float(n["value"]), path))
            continue
        left, right = int(n["left"]), int(n["right"])
        wl, wr = float(nodes["count"][left]), float(nodes["count"][right])
        f = local[int(n["feature_idx"])]
        stack.append((left, [*path, (split_of[node], True, wl / (wl + wr), f)]))
        stack.append((right, [*path, (split_of[node], False, wr / (wl + wr), f)]))
    m, splits = len(features), len(split_of)
    codes = np.arange(2 ** splits)
    subsets = np.arange(2 ** m)
    values = np.zeros((len(codes), len(subsets)))
    for value, path in leaves:
        weight = np.ones((len(codes), len(subsets)))
        for bit, went_left, share, f in path:
            follows = (((codes >> bit) & 1) == 1) == went_left            # [codes]
            known = ((subsets >> f) & 1) == 1                              # [subsets]
            weight *= np.where(known[None, :], follows[:, None], share)
        values += value * weight
    shapley = np.zeros((m, len(subsets)))
    for j in range(m):
        others = [k for k in range(m) if k != j]
        for r in range(m):
            w = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
            for subset in itertools.combinations(others, r):
                s = sum(1 << k for k in subset)
                shapley[j, s | (1 << j)] += w
                shapley[j, s] -= w
    return values[:, -1], values @ shapley.T


def _category_left(bitsets: np.ndarray, words: int) -> np.ndarray:
    """Per categorical split, whether each category code goes left (its bit in the split's bitset), plus a
    last column (False) where missing, unknown and out-of-range codes are sent before `missing_left` applies."""
    codes = np.arange(32 * words)
    left = ((bitsets[:, codes // 32] >> (codes % 32).astype(np.uint32)) & 1) == 1
    return np.concatenate([left, np.zeros((len(bitsets), 1), dtype=bool)], axis=1)


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
    words = max((t.raw_left_cat_bitsets.shape[1] for t in trees if t.raw_left_cat_bitsets.size), default=1)
    splits, bitsets, per_tree = [], [], []
    for tree in trees:
        nodes = tree.nodes
        split_nodes = [int(i) for i in np.flatnonzero(~nodes["is_leaf"].astype(bool))]
        features = sorted({int(nodes["feature_idx"][i]) for i in split_nodes})
        split_of = {node: k for k, node in enumerate(split_nodes)}
        ids = []
        for node in split_nodes:
            n = nodes[node]
            ids.append(len(splits))
            splits.append((int(n["feature_idx"]), float(n["num_threshold"]), bool(n["missing_go_to_left"]),
                           bool(n["is_categorical"])))
            row = np.zeros(words, dtype=np.uint32)
            if n["is_categorical"]:
                row[:tree.raw_left_cat_bitsets.shape[1]] = tree.raw_left_cat_bitsets[int(n["bitset_idx"])]
            bitsets.append(row)
        per_tree.append((ids, features, *_tree_tables(nodes, split_of, features)))

    max_splits = max(len(t[0]) for t in per_tree)
    max_features = max(len(t[1]) for t in per_tree)
    tree_splits = np.full((len(trees), max_splits), -1, dtype=np.int64)
    margin_table = np.zeros((len(trees), 2 ** max_splits))
    phi_table = np.zeros((len(trees), 2 ** max_splits, max_features))
    to_columns = np.zeros((len(trees) * max_features, len(columns)))
    for t, (ids, features, outputs, phi) in enumerate(per_tree):
        tree_splits[t, :len(ids)] = ids
        margin_table[t, :len(outputs)] = outputs      # codes beyond the tree's splits never occur
        phi_table[t, :len(outputs), :len(features)] = phi
        for j, f in enumerate(features):
            to_columns[t * max_features + j, order[f]] = 1.0
    split_arr = np.array(splits, dtype=object)
    calibrators = tuple((float(c.calibrators[0].a_), float(c.calibrators[0].b_))
                        for c in getattr(fitted, "calibrated_classifiers_", ()))
    return CompiledModel(
        columns=columns, order=order, categories=categories, base=float(gbt._baseline_prediction.ravel()[0]),
        split_feature=split_arr[:, 0].astype(np.int64), split_threshold=split_arr[:, 1].astype(float),
        split_missing_left=split_arr[:, 2].astype(bool), split_categorical=split_arr[:, 3].astype(bool),
        categorical_splits=np.flatnonzero(split_arr[:, 3].astype(bool)),
        category_left=_category_left(np.array(bitsets, dtype=np.uint32)[split_arr[:, 3].astype(bool)], words),
        tree_splits=tree_splits, margin_table=margin_table,
        phi_columns=np.einsum("tcj,tjf->tcf", phi_table, to_columns.reshape(len(trees), max_features, -1))
        .reshape(len(trees) * 2 ** max_splits, len(columns)), calibrators=calibrators)
