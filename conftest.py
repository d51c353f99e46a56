"""Shared fixtures: the real params, the real raw data and the model the pipeline exported."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

from src.common import load_params, read_table
from src.features import FeatureSpec, model_frame
from src.prepare import prepare
from utilities.workspace import ROOT

def run_stage(stage: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run one stage module as dvc.yaml does, in another working directory."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", f"src.{stage}"], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def params() -> dict:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def spec(params) -> FeatureSpec:
    return FeatureSpec.from_params(params["schema"])


@pytest.fixture(scope="session")
def raw_path(params) -> Path:
    return ROOT / params["data"]["source"]


@pytest.fixture(scope="session")
def raw_table(raw_path):
    return read_table(raw_path)


@pytest.fixture(scope="session")
def prepared(raw_path, params):
    """(train, test, report) exactly as the prepare stage makes them."""
    return prepare(raw_path, params)


@pytest.fixture(scope="session")
def exported_pipeline():
    return joblib.load(ROOT / "model" / "model.pkl")


@pytest.fixture(scope="session")
def test_frame(prepared, spec):
    return model_frame(prepared[1], spec)


@pytest.fixture
def workspace(tmp_path, params, raw_path) -> Path:
    """A scratch project directory with params.yaml and the raw source, for running stages."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    source = tmp_path / params["data"]["source"]
    source.parent.mkdir(parents=True)
    shutil.copy(raw_path, source)
    return tmp_path
