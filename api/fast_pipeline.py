"""The served model's hot path: the fitted scikit-learn Pipeline, compiled into numpy lookups.

For one row, sklearn's ColumnTransformer costs ~10 ms and HistGradientBoostingRegressor.predict
~4 ms (a Python call per tree). Here the preprocessing becomes per-column lookup tables read off
the fitted transformers, and the boosted trees one flat node array walked for all trees at once.
Equivalence with `pipeline.predict` is checked at load time on the export's reference rows and by
the test suite on the whole test split.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

UNSEEN = "\x00unseen category\x00"  # a probe value no training category can equal
COMPILED_TREES_MAX_ROWS = 16  # above this, sklearn's multi-threaded Cython predict is faster


class UnsupportedPipeline(TypeError):
    """The pipeline has a step this module does not know how to compile."""


def _numeric_block(transformer: Any, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fill, shift, scale) such that out = (where(isnan(x), fill, x) - shift) / scale."""
    fill, shift, scale = np.full(width, np.nan), np.zeros(width), np.ones(width)
    steps = transformer.steps if isinstance(transformer, Pipeline) else [("only", transformer)]
    for _, step in steps:
        if step == "passthrough" or (isinstance(step, FunctionTransformer) and step.func is None):
            continue  # the fitted ColumnTransformer stores "passthrough" as an identity transformer
        if isinstance(step, SimpleImputer) and not step.add_indicator:
            if np.isnan(fill).all() and (shift == 0).all():  # an imputer after a scaler is not supported
                fill = np.asarray(step.statistics_, dtype=np.float64)
                continue
        elif isinstance(step, StandardScaler) and (shift == 0).all() and (scale == 1).all():
            shift = step.mean_ if step.with_mean else shift
            scale = step.scale_ if step.with_std else scale
            continue
        raise UnsupportedPipeline(f"numeric step {step!r}")
    return fill, np.asarray(shift, dtype=np.float64), np.asarray(scale, dtype=np.float64)


class _CategoricalBlock:
    """Per column: category -> the output cells it sets. Read off the fitted encoder by probing,
    so one-hot, ordinal, infrequent pooling and unknown handling are exactly sklearn's."""

    def __init__(self, transformer: Pipeline, columns: Sequence[str]):
        steps = [step for _, step in transformer.steps]
        if len(steps) != 2 or not isinstance(steps[0], SimpleImputer) or steps[0].strategy != "constant":
            raise UnsupportedPipeline(f"categorical steps {steps!r}")
        self.missing_value = steps[0].fill_value
        encoder = steps[1]
        known = [list(categories) for categories in encoder.categories_]
        base_row = np.array([[categories[0] for categories in known]], dtype=object)
        base = encoder.transform(base_row)[0]
        self.base = base
        self.columns = list(columns)
        self.lookups: list[tuple[np.ndarray, dict[str, int], np.ndarray]] = []
        for j, categories in enumerate(known):
            probes = [*categories, UNSEEN]
            grid = np.repeat(base_row, len(probes), axis=0)
            grid[:, j] = probes
            out = encoder.transform(grid)
            changed = ~((out == base) | (np.isnan(out) & np.isnan(base)))
            cells = np.flatnonzero(changed.any(axis=0))
            index = {category: i for i, category in enumerate(categories)}
            self.lookups.append((cells, index, out[:, cells]))  # last row: unseen categories

    def fill(self, out: np.ndarray, rows: Sequence[Sequence[Any]]) -> None:
        """Write the encoding of rows (values per column, None for missing) into out."""
        out[:] = self.base
        for j, (cells, index, table) in enumerate(self.lookups):
            unseen = len(table) - 1
            picks = [index.get(self.missing_value if row[j] is None else row[j], unseen) for row in rows]
            out[:, cells] = table[picks]


class _CompiledTrees:
    """All trees of a fitted HistGradientBoostingRegressor as one node array: for a few rows, every
    node's decision is computed in one vectorised pass, then all trees are walked together.

    Mirrors sklearn's _predict_one_from_raw_data (NaN and unknown categories follow the node's
    missing-value direction). The estimator reorders its columns and re-encodes categories through
    an internal OrdinalEncoder; both are folded into per-node tables here, at load time.
    """

    def __init__(self, model: HistGradientBoostingRegressor):
        trees = [predictor for (predictor,) in model._predictors]
        offsets = np.cumsum([0] + [len(tree.nodes) for tree in trees])
        nodes = np.concatenate([tree.nodes for tree in trees])
        leaves = nodes["is_leaf"].astype(bool)
        self.left = np.concatenate([t.nodes["left"].astype(np.intp) + o for t, o in zip(trees, offsets)])
        self.right = np.concatenate([t.nodes["right"].astype(np.intp) + o for t, o in zip(trees, offsets)])
        self.left[leaves] = self.right[leaves] = np.flatnonzero(leaves)  # leaves are fixed points
        self.roots = offsets[:-1].astype(np.intp)
        self.depth = int(max(tree.get_max_depth() for tree in trees))
        self.value = nodes["value"].astype(np.float64)
        self.baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
        self.link_inverse = model._loss.link.inverse

        source_column, recode = self._internal_encoding(model)
        feature = nodes["feature_idx"].astype(np.intp)
        categorical = nodes["is_categorical"].astype(bool) & ~leaves
        missing_left = nodes["missing_go_to_left"].astype(bool)
        self.numeric_nodes = np.flatnonzero(~categorical & ~leaves)
        self.numeric_column = source_column[feature[self.numeric_nodes]]
        self.numeric_threshold = nodes["num_threshold"][self.numeric_nodes]
        self.numeric_missing_left = missing_left[self.numeric_nodes]

        # Categorical nodes: a row per node, a column per input code (0..max), then one for
        # missing, negative or unseen values; True where the row goes left.
        known_bits, feature_to_known_row = model._bin_mapper.make_known_categories_bitsets()
        self.categorical_nodes = np.flatnonzero(categorical)
        self.categorical_column = source_column[feature[self.categorical_nodes]]
        self.other_code = max((len(table) for table in recode.values()), default=0)
        width = self.other_code + 1
        self.categorical_rows = np.arange(len(self.categorical_nodes))
        self.categorical_left = np.empty((len(self.categorical_nodes), width), dtype=bool)
        raw_bitsets = np.concatenate([tree.raw_left_cat_bitsets for tree in trees] + [np.zeros((1, 8), np.uint32)])
        bitset_offsets = np.cumsum([0] + [len(tree.raw_left_cat_bitsets) for tree in trees])
        tree_of_node = np.searchsorted(offsets, np.arange(len(nodes)), side="right") - 1
        for row, node in enumerate(self.categorical_nodes):
            internal_feature = feature[node]
            table = recode[internal_feature]
            bitset = raw_bitsets[bitset_offsets[tree_of_node[node]] + nodes["bitset_idx"][node]]
            known = known_bits[feature_to_known_row[internal_feature]]
            for code in range(width):
                category = table[code] if code < len(table) else np.nan
                if np.isnan(category):
                    self.categorical_left[row, code] = missing_left[node]
                    continue
                category = int(category)
                if (bitset[category >> 5] >> (category & 31)) & 1:
                    self.categorical_left[row, code] = True
                elif (known[category >> 5] >> (category & 31)) & 1:
                    self.categorical_left[row, code] = False
                else:
                    self.categorical_left[row, code] = missing_left[node]

    @staticmethod
    def _internal_encoding(model: HistGradientBoostingRegressor) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Internal feature -> input column, and per internal categorical feature a table
        input code -> internal category (NaN: unseen, routed as missing)."""
        pre = model._preprocessor
        if pre is None:
            return np.arange(model.n_features_in_), {}
        masks = {name: np.flatnonzero(mask) for name, _, mask in pre.transformers_ if name != "remainder"}
        source_column = np.concatenate([masks["encoder"], masks["numerical"]])
        recode = {}
        for k, categories in enumerate(pre.named_transformers_["encoder"].categories_):
            known = np.asarray(categories, dtype=np.float64)
            known = known[~np.isnan(known)].astype(np.intp)  # input codes are small whole numbers
            table = np.full(int(known.max(initial=0)) + 1, np.nan)
            table[known] = np.arange(len(known), dtype=np.float64)
            recode[k] = table
        return source_column, recode

    def predict(self, X: np.ndarray) -> np.ndarray:
        go_left = np.zeros((len(X), len(self.value)), dtype=bool)
        value = X[:, self.numeric_column]
        with np.errstate(invalid="ignore"):
            numeric_left = value <= self.numeric_threshold
        go_left[:, self.numeric_nodes] = np.where(np.isnan(value), self.numeric_missing_left, numeric_left)
        value = X[:, self.categorical_column]
        with np.errstate(invalid="ignore"):
            other = np.isnan(value) | (value < 0) | (value >= self.other_code)
        code = np.where(other, self.other_code, value).astype(np.intp)
        go_left[:, self.categorical_nodes] = self.categorical_left[self.categorical_rows, code]
        step = np.where(go_left, self.left, self.right)
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots)))
        for _ in range(self.depth):
            node = step[rows, node]
        return self.link_inverse(self.baseline + self.value[node].sum(axis=1))


class FastPipeline:
    """predict(rows) == pipeline.predict(DataFrame(rows)) for rows given as value sequences in
    `features` order, None for missing."""

    def __init__(self, pipeline: Pipeline, features: Sequence[str]):
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            raise UnsupportedPipeline("expected Pipeline([preprocess, model])")
        preprocess, model = pipeline.steps[0][1], pipeline.steps[1][1]
        if not isinstance(preprocess, ColumnTransformer):
            raise UnsupportedPipeline(f"preprocess step {preprocess!r}")
        position = {name: i for i, name in enumerate(features)}
        self.features = list(features)
        self.numeric_positions: list[int] = []
        self.categorical_positions: list[int] = []
        self.categorical: _CategoricalBlock | None = None
        numeric_parts = []
        for name, transformer, columns in preprocess.transformers_:
            if name == "remainder":
                if transformer != "drop":
                    raise UnsupportedPipeline("remainder columns")
                continue
            if name == "numeric":
                self.numeric_positions = [position[c] for c in columns]
                numeric_parts.append(_numeric_block(transformer, len(columns)))
            elif name == "categorical":
                self.categorical_positions = [position[c] for c in columns]
                self.categorical = _CategoricalBlock(transformer, columns)
            else:
                raise UnsupportedPipeline(f"transformer {name!r}")
        names = [name for name, *_ in preprocess.transformers_ if name != "remainder"]
        if names != ["numeric", "categorical"]:
            raise UnsupportedPipeline(f"transformer order {names}")
        self.fill, self.shift, self.scale = numeric_parts[0]
        self.n_numeric = len(self.numeric_positions)
        self.width = self.n_numeric + (len(self.categorical.base) if self.categorical else 0)
        self.predict_encoded = self._compile_model(model)

    @staticmethod
    def _compile_model(model: Any) -> Callable[[np.ndarray], np.ndarray]:
        inverse: Callable[[np.ndarray], np.ndarray] | None = None
        if isinstance(model, TransformedTargetRegressor):
            if model.transformer_ is not None and model.func is None:
                raise UnsupportedPipeline("target transformer objects")
            inverse, model = model.inverse_func, model.regressor_
        if isinstance(model, HistGradientBoostingRegressor):
            trees = _CompiledTrees(model)

            def predict(X: np.ndarray) -> np.ndarray:
                return trees.predict(X) if len(X) <= COMPILED_TREES_MAX_ROWS else model.predict(X)
        else:
            predict = model.predict  # linear models are already fast on numpy input
        if inverse is None:
            return predict
        return lambda X: inverse(predict(X))

    def encode(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        out = np.empty((len(rows), self.width), dtype=np.float64)
        numeric = np.array(
            [[row[i] for i in self.numeric_positions] for row in rows], dtype=np.float64
        ).reshape(len(rows), self.n_numeric)  # None -> nan
        numeric = np.where(np.isnan(numeric), self.fill, numeric)
        out[:, : self.n_numeric] = (numeric - self.shift) / self.scale
        if self.categorical is not None:
            self.categorical.fill(
                out[:, self.n_numeric :], [[row[i] for i in self.categorical_positions] for row in rows]
            )
        return out

    def predict(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        return self.predict_encoded(self.encode(rows))
