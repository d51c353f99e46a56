"""Stage evaluate: test-set metrics, plots and the quality gate that keeps a worse model from
being exported."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import matplotlib

matplotlib.use("Agg")  # files only; no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.inspection import permutation_importance  # noqa: E402
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score  # noqa: E402

from src.common import StageError, atomic_write, load_params, run_stage, write_json  # noqa: E402
from src.features import FeatureSpec, model_frame  # noqa: E402
from src.train import CANDIDATE_FILE, CV_REPORT_FILE, log_space, r2_log  # noqa: E402

TEST_FILE = Path("dataset/prepared/test.parquet")
METRICS_FILE = Path("reports/metrics.json")
PLOTS_DIR = Path("reports/plots")


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    log_actual, log_predicted = log_space(actual), log_space(predicted)
    return {
        "r2": float(r2_score(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "rmse": float(np.sqrt(mean_squared_error(actual, predicted))),
        "r2_log": float(r2_score(log_actual, log_predicted)),
        "mae_log": float(mean_absolute_error(log_actual, log_predicted)),
        "rmse_log": float(np.sqrt(mean_squared_error(log_actual, log_predicted))),
    }


def gate_failures(metrics: dict[str, float], gate: dict[str, float]) -> list[str]:
    """Each threshold is <metric>_min or <metric>_max; returns the broken ones, readably."""
    failures = []
    for key, bound in gate.items():
        metric, kind = key.rsplit("_", 1)
        if metric not in metrics or kind not in ("min", "max"):
            raise StageError(f"params.yaml evaluate.gate.{key}: expected <metric>_min or <metric>_max of {sorted(metrics)}")
        value = metrics[metric]
        if (kind == "min" and value < bound) or (kind == "max" and value > bound):
            failures.append(f"{metric}={value:.4f} {'<' if kind == 'min' else '>'} {key}={bound}")
    return failures


def _save_figure(figure, path: Path) -> None:
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None}))
    plt.close(figure)


def write_plots(actual: np.ndarray, predicted: np.ndarray, importance: pd.DataFrame) -> None:
    log_actual, log_predicted = log_space(actual), log_space(predicted)
    rows = [
        {"actual_log": round(float(a), 6), "predicted_log": round(float(p), 6), "residual_log": round(float(a - p), 6)}
        for a, p in zip(log_actual, log_predicted)
    ]
    write_json(PLOTS_DIR / "predictions.json", rows)
    write_json(PLOTS_DIR / "feature_importance.json", importance.round(6).to_dict(orient="records"))

    figure, axis = plt.subplots(figsize=(6, 6))
    axis.scatter(log_actual, log_predicted, s=6, alpha=0.5)
    low, high = float(min(log_actual.min(), log_predicted.min())), float(max(log_actual.max(), log_predicted.max()))
    axis.plot([low, high], [low, high], color="black", linewidth=1)
    axis.set(xlabel="actual log1p(gross $)", ylabel="predicted log1p(gross $)", title="Predicted vs actual (test)")
    _save_figure(figure, PLOTS_DIR / "predicted_vs_actual.png")

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.scatter(log_predicted, log_actual - log_predicted, s=6, alpha=0.5)
    axis.axhline(0.0, color="black", linewidth=1)
    axis.set(xlabel="predicted log1p(gross $)", ylabel="residual (log)", title="Residuals (test)")
    _save_figure(figure, PLOTS_DIR / "residuals.png")

    figure, axis = plt.subplots(figsize=(6, 4))
    ordered = importance.sort_values("importance")
    axis.barh(ordered["feature"], ordered["importance"], xerr=ordered["std"])
    axis.set(xlabel="drop in test r2_log when shuffled", title="Permutation importance")
    figure.tight_layout()
    _save_figure(figure, PLOTS_DIR / "feature_importance.png")


def evaluate(pipeline, test: pd.DataFrame, spec: FeatureSpec, settings: dict[str, Any], seed: int):
    X, actual = model_frame(test, spec), test[spec.target].to_numpy(np.float64)
    predicted = pipeline.predict(X)
    metrics = regression_metrics(actual, predicted)
    result = permutation_importance(
        pipeline, X, actual, scoring=r2_log, n_repeats=settings["permutation_repeats"], random_state=seed
    )
    importance = pd.DataFrame(
        {"feature": list(X.columns), "importance": result.importances_mean, "std": result.importances_std}
    ).sort_values("importance", ascending=False, kind="stable")
    return metrics, predicted, importance


def main() -> None:
    params = load_params()
    spec = FeatureSpec.from_params(params["schema"])
    test = pd.read_parquet(TEST_FILE)
    metrics, predicted, importance = evaluate(
        joblib.load(CANDIDATE_FILE), test, spec, params["evaluate"], params["train"]["seed"]
    )
    cv = json.loads(CV_REPORT_FILE.read_text(encoding="utf-8"))
    metrics.update({k: v for k, v in cv.items() if k.startswith("cv_")}, rows_test=len(test))
    write_json(METRICS_FILE, metrics)
    write_plots(test[spec.target].to_numpy(np.float64), predicted, importance)
    failures = gate_failures(metrics, params["evaluate"]["gate"])
    summary = ", ".join(f"{k}={metrics[k]:.3f}" for k in ("r2", "r2_log", "mae_log"))
    if failures:
        raise StageError(f"quality gate failed ({'; '.join(failures)}); the model is not exported")
    print(f"[evaluate] {summary}; quality gate passed")


if __name__ == "__main__":
    run_stage("evaluate", main)
