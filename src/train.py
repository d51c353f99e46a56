"""Stage train: fit the scikit-learn Pipeline (preprocessing + regressor) chosen in params.yaml on
the training split, with group-aware cross-validation, and save it as the candidate model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from src.common import StageError, atomic_write, load_params, run_stage, write_json
from src.features import GROUP_COLUMN, FeatureSpec, model_frame

TRAIN_FILE = Path("dataset/prepared/train.parquet")
CANDIDATE_FILE = Path("model/candidate.pkl")
CV_REPORT_FILE = Path("reports/cv.json")
MISSING_CATEGORY = "(missing)"  # missing categories become a category of their own
TREE_MODELS = ("hist_gradient_boosting", "random_forest")


def build_pipeline(spec: FeatureSpec, settings: dict[str, Any]) -> Pipeline:
    family = settings["model"]
    if family not in (*TREE_MODELS, "ridge"):
        raise StageError(f"params.yaml train.model={family!r}: use one of {', '.join((*TREE_MODELS, 'ridge'))}")
    hyper = dict(settings.get(family) or {})
    seed = settings["seed"]
    min_frequency = settings["min_category_frequency"]
    impute_category = SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)
    if family in TREE_MODELS:
        numeric: Any = "passthrough"  # trees split on NaN natively
        encoder: Any = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=np.nan, min_frequency=min_frequency, dtype=np.float64
        )
    else:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=min_frequency, sparse_output=False, dtype=np.float64
        )
    blocks = [
        ("numeric", numeric, list(spec.numeric)),
        ("categorical", Pipeline([("impute", impute_category), ("encode", encoder)]), list(spec.categorical)),
    ]
    preprocess = ColumnTransformer([block for block in blocks if block[2]], verbose_feature_names_out=False)
    if family == "hist_gradient_boosting":
        is_categorical = [False] * len(spec.numeric) + [True] * len(spec.categorical)
        regressor: Any = HistGradientBoostingRegressor(categorical_features=is_categorical, random_state=seed, **hyper)
    elif family == "random_forest":
        regressor = RandomForestRegressor(random_state=seed, **hyper)
    else:
        regressor = Ridge(**hyper)
    if settings["log_target"]:
        regressor = TransformedTargetRegressor(regressor, func=np.log1p, inverse_func=np.expm1, check_inverse=False)
    return Pipeline([("preprocess", preprocess), ("model", regressor)])


def log_space(values) -> np.ndarray:
    """Gross spans five orders of magnitude: errors are judged on log1p(dollars)."""
    return np.log1p(np.clip(np.asarray(values, dtype=np.float64), 0.0, None))


def r2_log(estimator, X, y) -> float:
    return float(r2_score(log_space(y), log_space(estimator.predict(X))))


def neg_mae_log(estimator, X, y) -> float:
    return -float(mean_absolute_error(log_space(y), log_space(estimator.predict(X))))


def train(table: pd.DataFrame, spec: FeatureSpec, settings: dict[str, Any]) -> tuple[Pipeline, dict[str, Any]]:
    X, y, groups = model_frame(table, spec), table[spec.target].to_numpy(np.float64), table[GROUP_COLUMN]
    folds = GroupKFold(n_splits=settings["cv_folds"])
    pipeline = build_pipeline(spec, settings)
    report: dict[str, Any] = {"rows": len(table), "folds": settings["cv_folds"]}
    grid = settings.get("grid") or {}
    if grid:
        prefix = "model__regressor__" if settings["log_target"] else "model__"
        search = GridSearchCV(
            pipeline, {prefix + name: values for name, values in grid.items()}, cv=folds, scoring=r2_log, refit=False
        )
        search.fit(X, y, groups=groups)
        best = {name[len(prefix):]: value for name, value in search.best_params_.items()}
        report["grid_best_params"] = best
        pipeline = build_pipeline(spec, {**settings, settings["model"]: {**settings[settings["model"]], **best}})
    scores = cross_validate(pipeline, X, y, groups=groups, cv=folds, scoring={"r2_log": r2_log, "mae_log": neg_mae_log})
    report.update(
        cv_r2_log_mean=float(np.mean(scores["test_r2_log"])),
        cv_r2_log_std=float(np.std(scores["test_r2_log"])),
        cv_mae_log_mean=float(-np.mean(scores["test_mae_log"])),
        cv_mae_log_std=float(np.std(scores["test_mae_log"])),
    )
    pipeline.fit(X, y)
    return pipeline, report


def main() -> None:
    params = load_params()
    spec = FeatureSpec.from_params(params["schema"])
    table = pd.read_parquet(TRAIN_FILE)
    pipeline, report = train(table, spec, params["train"])
    atomic_write(CANDIDATE_FILE, lambda tmp: joblib.dump(pipeline, tmp))
    write_json(CV_REPORT_FILE, report)
    print(f"[train] {params['train']['model']}: CV r2_log {report['cv_r2_log_mean']:.3f} ± {report['cv_r2_log_std']:.3f}")


if __name__ == "__main__":
    run_stage("train", main)
