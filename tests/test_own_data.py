"""The pipeline on a user's own table, chosen in params.yaml alone: a CSV of house sales with other
column names, no date column and no checksum, from load to a served model."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from conftest import run_stage
from src.common import load_params
from src.train import train
from utilities.workspace import ROOT

STAGES = ("load", "prepare", "train", "evaluate", "export")


def house_sales(rows: int = 1500, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 250, rows)
    rooms = rng.integers(1, 7, rows).astype(float)
    district = rng.choice(["North", "South", "Centre", "Harbour"], rows)
    uplift = pd.Series(district).map({"North": 1.0, "South": 0.8, "Centre": 1.6, "Harbour": 1.3}).to_numpy()
    price = 2500 * area * uplift * (1 + 0.05 * rooms) * rng.lognormal(0, 0.15, rows)
    rooms[rng.random(rows) < 0.1] = np.nan  # the model must cope with gaps
    return pd.DataFrame({"Listing": [f"L{i}" for i in range(rows)], "Floor Area": area.round(1), "Rooms": rooms, "District": district, "Sale Price": price.round()})


@pytest.fixture(scope="module")
def house_project(tmp_path_factory):
    project = tmp_path_factory.mktemp("houses")
    (project / "data").mkdir()
    house_sales().to_csv(project / "data" / "houses.csv", index=False)
    params = load_params(ROOT / "params.yaml")
    params["data"] = {"source": "data/houses.csv", "sha256": None, "raw": "dataset/raw/houses.csv"}
    params["schema"] = {
        "target": "Sale Price", "id": "Listing", "date": None, "date_format": None,
        "numeric": ["Floor Area", "Rooms"], "categorical": ["District"],
        "ranges": {"sale_price": {"min": 1}, "floor_area": {"min": 1}},
    }
    params["prepare"]["century_fix_after_year"] = None
    params["train"]["min_category_frequency"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in STAGES:
        result = run_stage(stage, project)
        assert result.returncode == 0, f"{stage}: {result.stderr}"
    return project


def test_own_table_trains_a_model_that_passes_the_gate(house_project):
    metrics = json.loads((house_project / "reports/metrics.json").read_text())
    assert metrics["r2_log"] > 0.8  # the synthetic price is mostly explained by area and district
    schema = json.loads((house_project / "model/feature_schema.json").read_text())
    assert [entry["name"] for entry in schema["features"]] == ["floor_area", "rooms", "district"]
    assert schema["target"]["source_column"] == "Sale Price"


def test_the_api_serves_the_own_table_model_with_its_own_schema(house_project):
    with TestClient(create_app(Settings(model_dir=house_project / "model"))) as client:
        assert client.get("/ready").status_code == 200
        small = client.post("/v1/predict", json={"floor_area": 40, "rooms": 1, "district": "South"}).json()["prediction"]
        large = client.post("/v1/predict", json={"floor_area": 200, "rooms": None, "district": "Centre"}).json()["prediction"]
        assert 0 < small < large
        assert client.post("/v1/predict", json={"production_budget": 1}).status_code == 422


def test_the_quality_gate_stops_a_model_below_its_threshold(house_project):
    params = yaml.safe_load((house_project / "params.yaml").read_text())
    params["evaluate"]["gate"] = {"r2_log_min": 0.999}
    (house_project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run_stage("evaluate", house_project)
    assert result.returncode == 1
    assert "quality gate failed (r2_log=" in result.stderr and "< r2_log_min=0.999" in result.stderr
    assert "the model is not exported" in result.stderr


def test_grid_search_picks_from_params_and_reports_its_choice(prepared, spec, params):
    settings = {**params["train"], "cv_folds": 3, "grid": {"learning_rate": [0.02, 0.1], "max_iter": [50]}}
    pipeline, report = train(prepared[0], spec, settings)
    assert report["grid_best_params"]["max_iter"] == 50
    assert report["grid_best_params"]["learning_rate"] in (0.02, 0.1)
    assert pipeline.named_steps["model"].regressor_.max_iter == 50
