"""Each stage on its own: what it writes, and how it refuses bad input without touching what a
previous successful run stored."""
import json

import numpy as np
import pytest
import yaml

from conftest import run_stage
from src.evaluate import gate_failures
from src.export import feature_schema
from utilities.workspace import ROOT


def set_params(workspace, **changes):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        params[section][key] = value
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))


def write_raw(workspace, params, records):
    """Replace the raw source with these records and skip the pin, as a user's own table would."""
    source = workspace / params["data"]["source"]
    source.write_text(json.dumps(records))
    set_params(workspace, **{"data.sha256": None})


def run_ok(stage, workspace):
    result = run_stage(stage, workspace)
    assert result.returncode == 0, result.stderr
    return result


def test_load_copies_the_verified_bytes(workspace, params):
    run_ok("load", workspace)
    assert (workspace / params["data"]["raw"]).read_bytes() == (workspace / params["data"]["source"]).read_bytes()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda path: path.unlink(), "raw data file not found"),
        (lambda path: path.write_bytes(path.read_bytes()[:-100]), "sha256 is"),
    ],
    ids=["missing", "truncated"],
)
def test_load_refuses_a_bad_source_and_keeps_the_previous_copy(workspace, params, damage, message):
    run_ok("load", workspace)
    stored = (workspace / params["data"]["raw"]).read_bytes()
    damage(workspace / params["data"]["source"])
    result = run_stage("load", workspace)
    assert result.returncode == 1
    assert message in result.stderr and params["data"]["source"] in result.stderr
    assert (workspace / params["data"]["raw"]).read_bytes() == stored


def test_load_refuses_an_unparseable_table_when_no_checksum_is_pinned(workspace, params):
    (workspace / params["data"]["source"]).write_text('[{"Title": "half a record"')
    set_params(workspace, **{"data.sha256": None})
    result = run_stage("load", workspace)
    assert result.returncode == 1 and "cannot be read as a json table" in result.stderr


def prepare_outputs(workspace):
    return {path.name: path.read_bytes() for path in [*(workspace / "dataset/prepared").glob("*"), workspace / "reports/validation.json"]}


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda rows: [{k: v for k, v in r.items() if k != "Production Budget"} for r in rows], "missing required columns: 'Production Budget'"),
        (lambda rows: [{**r, "Running Time min": "long"} if i % 100 == 0 else r for i, r in enumerate(rows)], "column 'Running Time min': 33 non-numeric values"),
        (lambda rows: [{**r, "Release Date": "2001-07-01"} if i < 3 else r for i, r in enumerate(rows)], "column 'Release Date': 3 values not in format"),
        (lambda rows: [], "the table has no rows"),
        (lambda rows: [{**r, "Worldwide Gross": None} for r in rows], "no row has a valid target value"),
        (lambda rows: [{**r, "Worldwide Gross": 0} if i % 5 == 0 else r for i, r in enumerate(rows)], "more than prepare.max_dropped_fraction"),
    ],
    ids=["missing-column", "non-numeric", "bad-dates", "empty", "no-target", "too-many-invalid"],
)
def test_prepare_names_what_is_wrong_and_keeps_previous_outputs(workspace, params, raw_table, corrupt, message):
    run_ok("load", workspace)
    run_ok("prepare", workspace)
    before = prepare_outputs(workspace)
    records = json.loads((workspace / params["data"]["source"]).read_text())
    write_raw(workspace, params, corrupt(records))
    load = run_stage("load", workspace)
    result = load if load.returncode else run_stage("prepare", workspace)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert prepare_outputs(workspace) == before


def test_prepare_reports_what_it_dropped(prepared):
    _, _, report = prepared
    assert report["rows_missing_target"] == 7
    assert report["rows_out_of_range"]["worldwide_gross"] == 47  # zero gross is no observation
    assert report["rows_missing_id"] == 1


def test_gate_lists_each_broken_threshold():
    metrics = {"r2_log": 0.4, "mae_log": 1.3}
    assert gate_failures(metrics, {"r2_log_min": 0.5, "mae_log_max": 1.2}) == [
        "r2_log=0.4000 < r2_log_min=0.5",
        "mae_log=1.3000 > mae_log_max=1.2",
    ]
    assert gate_failures(metrics, {"r2_log_min": 0.3}) == []


def test_feature_schema_describes_the_training_data(prepared, spec):
    train = prepared[0]
    schema = feature_schema(train, spec)
    entries = {entry["name"]: entry for entry in schema["features"]}
    assert list(entries) == list(spec.features)
    assert entries["running_time_min"]["nullable"] and not entries["release_date_year"]["nullable"]
    assert entries["release_date_month"]["type"] == "integer"
    assert entries["production_budget"]["minimum"] == 1
    assert entries["production_budget"]["observed_max"] == train["production_budget"].max()
    genres = entries["major_genre"]["categories"]
    assert set(genres) == set(train["major_genre"].dropna()) and genres[0] == train["major_genre"].mode()[0]
    for name, value in schema["example"].items():
        entry = entries[name]
        assert value in entry["categories"] if entry["type"] == "category" else entry["observed_min"] <= value <= entry["observed_max"]


def test_export_writes_what_serving_needs():
    provenance = json.loads((ROOT / "model/provenance.json").read_text())
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    outs = {out["path"]: out["md5"] for out in lock["stages"]["export"]["outs"]}
    assert provenance["model_md5"] == outs["model/model.pkl"]
    assert provenance["data"]["sha256"] == yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["sha256"]
    assert len(provenance["reference"]["instances"]) == len(provenance["reference"]["predictions"]) > 0
    card = (ROOT / "model/model_card.md").read_text()
    assert provenance["model_md5"] in card and "## Limits" in card and "r2_log" in card
    assert np.isclose(provenance["metrics"]["r2"], json.loads((ROOT / "reports/metrics.json").read_text())["r2"])
