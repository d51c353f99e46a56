"""The served model's hot path: the fitted scikit-learn Pipeline, compiled into lookups.

For one row, sklearn's ColumnTransformer costs ~10 ms and HistGradientBoostingRegressor.predict
~4 ms (a Python call per tree). Here the preprocessing becomes per-column tables read off the
fitted transformers, and the boosted trees flat node arrays walked by one numba-compiled loop:
about 20 us per row. Equivalence with `pipeline.predict` is checked at load time on the export's
reference rows and by the test suite on the whole test split.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from numba import njit
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

UNSEEN = "\x00unseen category\x00"  # a probe value no training category can equal


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

    def __init__(self, transformer: Pipeline):
        steps = [step for _, step in transformer.steps]
        if len(steps) != 2 or not isinstance(steps[0], SimpleImputer) or steps[0].strategy != "constant":
            raise UnsupportedPipeline(f"categorical steps {steps!r}")
        self.missing_value = steps[0].fill_value
        encoder = steps[1]
        known = [list(categories) for categories in encoder.categories_]
        base_row = np.array([[categories[0] for categories in known]], dtype=object)
        self.base = base = encoder.transform(base_row)[0]
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

    def fill_one(self, out: np.ndarray, values: Sequence[Any]) -> None:
        """fill() for one row (a 1-D view), without building arrays: the single-prediction path."""
        out[:] = self.base
        for (cells, index, table), value in zip(self.lookups, values):
            pick = index.get(self.missing_value if value is None else value, len(table) - 1)
            if len(cells) == 1:
                out[cells[0]] = table[pick, 0]
            else:
                out[cells] = table[pick]

    def fill(self, out: np.ndarray, rows: Sequence[Sequence[Any]]) -> None:
        """Write the encoding of rows (values per column, None for missing) into out."""
        out[:] = self.base
        for j, (cells, index, table) in enumerate(self.lookups):
            unseen = len(table) - 1
            picks = [index.get(self.missing_value if row[j] is None else row[j], unseen) for row in rows]
            out[:, cells] = table[picks]


def _compiled(function):
    """numba-compile, caching the machine code on disk where a writable location exists
    (NUMBA_CACHE_DIR in the image); elsewhere each process compiles once at load."""
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:
        return njit(nogil=True)(function)


@_compiled
def _walk_trees(X, roots, column, threshold, missing_left, categorical_row, categorical_left, left, right, is_leaf, value, baseline):  # pragma: no cover - compiled
    """sklearn's _predict_one_from_raw_data for every row and tree, summed tree by tree from the
    baseline in sklearn's order, so the raw prediction is bit-identical."""
    n_codes = categorical_left.shape[1] - 1  # last column: missing, negative or unseen
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        total = baseline
        for root in roots:
            node = root
            while not is_leaf[node]:
                x = X[i, column[node]]
                if np.isnan(x):
                    go_left = missing_left[node]
                elif categorical_row[node] >= 0:
                    code = int(x) if 0 <= x < n_codes else n_codes
                    go_left = categorical_left[categorical_row[node], code]
                else:
                    go_left = x <= threshold[node]
                node = left[node] if go_left else right[node]
            total += value[node]
        out[i] = total
    return out


class _CompiledTrees:
    """All trees of a fitted HistGradientBoostingRegressor as flat node arrays walked by one
    compiled loop: sklearn's own predict makes a Python call per tree (~4 ms for one row here).

    The estimator reorders its columns (categorical first) and re-encodes categories through an
    internal OrdinalEncoder; both are folded into the arrays at load time, as is each categorical
    split's bitset, so a categorical decision is a table look-up by the input code.
    """

    def __init__(self, model: HistGradientBoostingRegressor):
        trees = [predictor for (predictor,) in model._predictors]
        offsets = np.cumsum([0] + [len(tree.nodes) for tree in trees])
        nodes = np.concatenate([tree.nodes for tree in trees])
        self.roots = offsets[:-1].astype(np.int64)
        self.left = np.concatenate([t.nodes["left"].astype(np.int64) + o for t, o in zip(trees, offsets)])
        self.right = np.concatenate([t.nodes["right"].astype(np.int64) + o for t, o in zip(trees, offsets)])
        self.is_leaf = nodes["is_leaf"].astype(np.bool_)
        self.value = nodes["value"].astype(np.float64)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(np.bool_)
        self.baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
        self.link_inverse = model._loss.link.inverse

        source_column, recode = self._internal_encoding(model)
        internal_feature = nodes["feature_idx"].astype(np.intp)
        self.column = source_column[internal_feature].astype(np.int64)
        categorical = np.flatnonzero(nodes["is_categorical"].astype(bool) & ~self.is_leaf)
        self.categorical_row = np.full(len(nodes), -1, dtype=np.int64)
        self.categorical_row[categorical] = np.arange(len(categorical))
        n_codes = max((len(table) for table in recode.values()), default=0)
        self.categorical_left = np.empty((max(len(categorical), 1), n_codes + 1), dtype=np.bool_)
        known_bits, feature_to_known_row = model._bin_mapper.make_known_categories_bitsets()
        tree_of_node = np.searchsorted(offsets, np.arange(len(nodes)), side="right") - 1
        for row, node in enumerate(categorical):
            bitset = trees[tree_of_node[node]].raw_left_cat_bitsets[nodes["bitset_idx"][node]]
            known = known_bits[feature_to_known_row[internal_feature[node]]]
            table = recode[internal_feature[node]]
            self.categorical_left[row, :] = self.missing_left[node]  # unseen codes go the missing way
            for code, category in enumerate(table):
                if np.isnan(category):
                    continue
                category = int(category)
                if (bitset[category >> 5] >> (category & 31)) & 1:
                    self.categorical_left[row, code] = True
                elif (known[category >> 5] >> (category & 31)) & 1:
                    self.categorical_left[row, code] = False

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
        raw = _walk_trees(
            np.ascontiguousarray(X, dtype=np.float64), self.roots, self.column, self.threshold, self.missing_left,
            self.categorical_row, self.categorical_left, self.left, self.right, self.is_leaf, self.value, self.baseline,
        )
        return self.link_inverse(raw)


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
        self.fill = self.shift = self.scale = np.empty(0)
        for name, transformer, columns in preprocess.transformers_:
            if name == "remainder":
                if transformer != "drop":
                    raise UnsupportedPipeline("remainder columns")
                continue
            if name == "numeric":
                self.numeric_positions = [position[c] for c in columns]
                self.fill, self.shift, self.scale = _numeric_block(transformer, len(columns))
            elif name == "categorical":
                self.categorical_positions = [position[c] for c in columns]
                self.categorical = _CategoricalBlock(transformer)
            else:
                raise UnsupportedPipeline(f"transformer {name!r}")
        names = [name for name, *_ in preprocess.transformers_ if name != "remainder"]
        if names not in (["numeric", "categorical"], ["numeric"], ["categorical"]):
            raise UnsupportedPipeline(f"transformer order {names}")
        self._fill, self._shift, self._scale = self.fill.tolist(), self.shift.tolist(), self.scale.tolist()
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
            predict = _CompiledTrees(model).predict
        else:
            predict = model.predict  # linear models are already fast on numpy input
        if inverse is None:
            return predict
        return lambda X: inverse(predict(X))

    def _encode_one(self, row: Sequence[Any]) -> np.ndarray:
        out = np.empty((1, self.width), dtype=np.float64)
        encoded = out[0]
        for k, position in enumerate(self.numeric_positions):  # Python floats: same IEEE arithmetic
            value = row[position]
            encoded[k] = ((self._fill[k] if value is None else value) - self._shift[k]) / self._scale[k]
        if self.categorical is not None:
            self.categorical.fill_one(encoded[self.n_numeric :], [row[i] for i in self.categorical_positions])
        return out

    def encode(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        if len(rows) == 1:
            return self._encode_one(rows[0])
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
