"""Stage export: publish the evaluated candidate as model/model.pkl with what serving needs beside it:
the feature schema (the API's single source of truth), provenance and a model card."""
from __future__ import annotations

import json
import math
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn

from src.common import atomic_write, file_digest, load_params, run_stage, write_json
from src.evaluate import METRICS_FILE, TEST_FILE
from src.features import FeatureSpec, model_frame
from src.prepare import PREPARED_DIR
from src.train import CANDIDATE_FILE, CV_REPORT_FILE

MODEL_DIR = Path("model")
MODEL_FILE = MODEL_DIR / "model.pkl"
SCHEMA_FILE = MODEL_DIR / "feature_schema.json"
PROVENANCE_FILE = MODEL_DIR / "provenance.json"
CARD_FILE = MODEL_DIR / "model_card.md"
REFERENCE_ROWS = 20  # test rows whose predictions the API must reproduce before it is ready
SCHEMA_VERSION = 1


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def feature_schema(train: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    frame = model_frame(train, spec)
    features = []
    for name in spec.features:
        column = frame[name]
        entry: dict[str, Any] = {
            "name": name,
            "source_column": spec.raw_names.get(name, spec.raw_names.get(spec.date or "", name)),
            # A feature the training data never lacked must be sent; the others may be null.
            "nullable": bool(column.isna().any()),
        }
        if name in spec.numeric:
            is_date_part = spec.date is not None and name.startswith(f"{spec.date}_")
            bounds = spec.ranges.get(name, {})
            entry.update(
                type="integer" if is_date_part else "number",
                minimum=bounds.get("min"),
                maximum=bounds.get("max"),
                observed_min=_json_value(column.min()),
                observed_max=_json_value(column.max()),
                median=_json_value(column.median()),
            )
        else:
            counts = column.dropna().value_counts(sort=False)
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            entry.update(type="category", categories=[category for category, _ in ordered])
        features.append(entry)
    example = {}
    for entry in features:
        if entry["type"] == "category":
            example[entry["name"]] = entry["categories"][0]
        else:
            median = entry["median"]
            example[entry["name"]] = int(round(median)) if entry["type"] == "integer" else median
    return {
        "schema_version": SCHEMA_VERSION,
        "target": {"name": spec.target, "source_column": spec.raw_names[spec.target]},
        "features": features,
        "example": example,
    }


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        # Outputs of this very run are not "dirty source": only tracked files count.
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def reference_predictions(pipeline, test: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    rows = test.head(REFERENCE_ROWS)
    frame = model_frame(rows, spec)
    instances = [{name: _json_value(value) for name, value in record.items()} for record in frame.to_dict("records")]
    return {"instances": instances, "predictions": [float(p) for p in pipeline.predict(frame)]}


def provenance(params: dict[str, Any], model_md5: str, reference: dict[str, Any]) -> dict[str, Any]:
    raw = Path(params["data"]["raw"])
    return {
        "model_file": MODEL_FILE.name,
        "model_md5": model_md5,  # DVC 3 hashes files by plain md5, so this equals dvc.lock's record
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "data": {
            "source": params["data"]["source"],
            "sha256": file_digest(raw, "sha256"),
            "raw_md5": file_digest(raw),
            "prepared_md5": {path.name: file_digest(path) for path in sorted(PREPARED_DIR.glob("*.parquet"))},
        },
        "params": {section: params[section] for section in ("schema", "prepare", "train")},
        "metrics": json.loads(METRICS_FILE.read_text(encoding="utf-8")),
        "cv": json.loads(CV_REPORT_FILE.read_text(encoding="utf-8")),
        "runtime": {
            "python": platform.python_version(),
            "scikit_learn": sklearn.__version__,
            "numpy": np.__version__,
            "joblib": joblib.__version__,
        },
        "reference": reference,
    }


def model_card(schema: dict[str, Any], record: dict[str, Any]) -> str:
    metrics, train = record["metrics"], record["params"]["train"]
    lines = [
        "# Model card: worldwide gross of a film",
        "",
        f"- Model file: `{record['model_file']}` (md5 `{record['model_md5']}`), exported {record['trained_at']}",
        f"- Code: git commit `{record['git']['commit']}`" + (" (with uncommitted changes)" if record["git"]["dirty"] else ""),
        f"- Data: `{record['data']['source']}` (sha256 `{record['data']['sha256']}`)",
        f"- Estimator: `{train['model']}` with {json.dumps(train.get(train['model']) or {}, sort_keys=True)},"
        f" log target: {train['log_target']}, seed {train['seed']}",
        "",
        "## Intended use",
        "",
        f"Estimate `{schema['target']['name']}` (US dollars) of a film from facts known before release:"
        " budget, running time, release date, rating, distributor, source, genre and creative type."
        " A planning aid for comparing scenarios, not a forecast to book revenue against.",
        "",
        "## Metrics (held-out test split, films never seen in training)",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {name} | {value:.4g} |" for name, value in sorted(metrics.items())),
        "",
        "## Features",
        "",
        "| feature | type | nullable | allowed range / known categories |",
        "| --- | --- | --- | --- |",
    ]
    for entry in schema["features"]:
        if entry["type"] == "category":
            detail = f"{len(entry['categories'])} known; unknown values are accepted"
        else:
            detail = f"[{entry['minimum']}, {entry['maximum']}], seen {entry['observed_min']}..{entry['observed_max']}"
        lines.append(f"| {entry['name']} | {entry['type']} | {entry['nullable']} | {detail} |")
    lines += [
        "",
        "## Limits",
        "",
        "- Trained on about 3,000 mostly US-distributed films released up to 2010; the error is large"
        f" (mean absolute error {metrics['mae_log']:.2f} in log space, about a factor of"
        f" {math.exp(metrics['mae_log']):.1f}), so read a prediction as an order of magnitude.",
        "- Budgets and grosses are nominal dollars, not adjusted for inflation.",
        "- Values outside the observed ranges are accepted but extrapolated; rare categories are pooled.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    params = load_params()
    spec = FeatureSpec.from_params(params["schema"])
    schema = feature_schema(pd.read_parquet(PREPARED_DIR / "train.parquet"), spec)
    pipeline = joblib.load(CANDIDATE_FILE)
    reference = reference_predictions(pipeline, pd.read_parquet(TEST_FILE), spec)
    model_bytes = CANDIDATE_FILE.read_bytes()
    atomic_write(MODEL_FILE, lambda tmp: tmp.write_bytes(model_bytes))
    record = provenance(params, file_digest(MODEL_FILE), reference)
    write_json(SCHEMA_FILE, schema)
    write_json(PROVENANCE_FILE, record)
    atomic_write(CARD_FILE, lambda tmp: tmp.write_text(model_card(schema, record), encoding="utf-8"))
    print(f"[export] {MODEL_FILE} md5 {record['model_md5']}")


if __name__ == "__main__":
    run_stage("export", main)
