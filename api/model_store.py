"""Load the exported model only after proving it is the one the pipeline recorded, then compile
and self-check its fast path. Any failure leaves the API alive but not ready, with the reason."""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from api.fast_pipeline import FastPipeline, UnsupportedPipeline

log = logging.getLogger("api.model")
SCHEMA_FILE, PROVENANCE_FILE = "feature_schema.json", "provenance.json"
SELF_CHECK_RTOL = 1e-6


class ModelNotReady(Exception):
    """The model cannot be served; the message says why."""


@dataclass(frozen=True)
class ServedModel:
    md5: str
    schema: dict[str, Any]
    provenance: dict[str, Any]
    pipeline: FastPipeline

    @property
    def features(self) -> list[str]:
        return [entry["name"] for entry in self.schema["features"]]


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelNotReady(f"{path}: missing (run `dvc repro` or `dvc pull export`)") from error
    except (OSError, ValueError) as error:
        raise ModelNotReady(f"{path}: unreadable ({error})") from error


def load_model(model_dir: Path, schema: dict[str, Any]) -> ServedModel:
    provenance = read_json(model_dir / PROVENANCE_FILE)
    path = model_dir / provenance.get("model_file", "model.pkl")
    try:
        content = path.read_bytes()  # hash and unpickle the same bytes
    except OSError as error:
        raise ModelNotReady(f"{path}: cannot be read ({error.strerror})") from error
    md5 = hashlib.md5(content).hexdigest()
    if md5 != provenance.get("model_md5"):
        raise ModelNotReady(
            f"{path}: md5 {md5} differs from {model_dir / PROVENANCE_FILE} ({provenance.get('model_md5')});"
            " refusing to unpickle a model the pipeline did not produce"
        )
    try:
        pipeline = joblib.load(io.BytesIO(content))
        fast = FastPipeline(pipeline, [entry["name"] for entry in schema["features"]])
    except UnsupportedPipeline as error:
        raise ModelNotReady(f"{path}: cannot compile the served fast path ({error})") from error
    except Exception as error:  # unpickling raises anything a corrupt file makes it raise
        raise ModelNotReady(f"{path}: cannot be loaded ({type(error).__name__}: {error})") from error
    served = ServedModel(md5=md5, schema=schema, provenance=provenance, pipeline=fast)
    self_check(served)
    return served


def self_check(served: ServedModel) -> None:
    """The fast path must reproduce the predictions the export stage recorded with sklearn."""
    reference = served.provenance.get("reference") or {}
    instances, expected = reference.get("instances") or [], np.asarray(reference.get("predictions") or [])
    if not instances or len(instances) != len(expected):
        raise ModelNotReady("provenance.json has no reference predictions to verify the model against")
    rows = [[instance.get(name) for name in served.features] for instance in instances]
    single = np.concatenate([served.pipeline.predict([row]) for row in rows])
    batch = served.pipeline.predict(rows)
    for name, got in (("single-row", single), ("batch", batch)):
        if not np.allclose(got, expected, rtol=SELF_CHECK_RTOL, atol=0.0):
            worst = float(np.max(np.abs(got - expected) / np.abs(expected)))
            raise ModelNotReady(f"{name} fast path differs from the recorded predictions (relative error {worst:.2e})")
