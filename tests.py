"""The serving contract: FastAPI's TestClient for the API, a real gunicorn started by
initializer.sh, and a property-based schemathesis run over our own OpenAPI."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from api.main import create_app
from api.settings import Settings
from utilities.ci import model_md5
from utilities.workspace import ROOT, free_port, wait_ready
from src.features import model_frame

MODEL_DIR = ROOT / "model"
SCHEMA = json.loads((MODEL_DIR / "feature_schema.json").read_text())
EXAMPLE = SCHEMA["example"]
MAX_BATCH = 50


def lock_md5() -> str:
    return model_md5(ROOT)


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings(model_dir=MODEL_DIR, max_batch_size=MAX_BATCH, max_body_bytes=100_000))) as c:
        yield c


def nulls(frame):
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


# --- predictions -------------------------------------------------------------------------------


def test_single_prediction_reports_the_model_it_came_from(client):
    response = client.post("/v1/predict", json=EXAMPLE)
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == lock_md5()
    assert 1e5 < body["prediction"] < 1e10


def test_api_predictions_equal_the_sklearn_pipeline_on_the_test_split(client, exported_pipeline, prepared, spec):
    frame = model_frame(prepared[1], spec)
    required = [entry["name"] for entry in SCHEMA["features"] if not entry["nullable"]]
    servable = frame[required].notna().all(axis=1)  # the API refuses a row lacking what training never lacked
    assert servable.sum() >= len(frame) - 1
    frame = frame[servable]
    expected = exported_pipeline.predict(frame)
    instances = nulls(frame)
    got = []
    for start in range(0, len(instances), MAX_BATCH):
        response = client.post("/v1/predict/batch", json={"instances": instances[start : start + MAX_BATCH]})
        assert response.status_code == 200, response.text
        got += response.json()["predictions"]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    singles = [client.post("/v1/predict", json=instance).json()["prediction"] for instance in instances[:25]]
    np.testing.assert_allclose(singles, expected[:25], rtol=1e-6, atol=0)


def test_batch_keeps_request_order(client):
    instances = [{**EXAMPLE, "production_budget": budget} for budget in (1e6, 2e8, 3e7)]
    batch = client.post("/v1/predict/batch", json={"instances": instances}).json()["predictions"]
    singles = [client.post("/v1/predict", json=instance).json()["prediction"] for instance in instances]
    assert batch == singles and len(set(batch)) == 3


@pytest.mark.parametrize(
    "change",
    [
        {"production_budget": 1},  # the smallest allowed budget
        {"production_budget": 1e12},  # far beyond anything seen: extrapolated, not refused
        {"release_date_month": 12, "release_date_year": 1900},
        {"running_time_min": None, "mpaa_rating": None, "distributor": None},  # nullable in training
        {"distributor": "A Distributor Nobody Has Heard Of"},
        {"release_date_year": 2001.0},  # a whole float is an integer in JSON
    ],
    ids=["min-budget", "huge-budget", "date-edges", "nulls", "unknown-category", "whole-float-year"],
)
def test_edge_values_are_accepted_and_predicted_like_sklearn(client, exported_pipeline, spec, change):
    import pandas as pd

    instance = {**EXAMPLE, **change}
    response = client.post("/v1/predict", json=instance)
    assert response.status_code == 200, response.text
    expected = exported_pipeline.predict(model_frame(pd.DataFrame([instance]).fillna(np.nan), spec))[0]
    assert response.json()["prediction"] == pytest.approx(expected, rel=1e-6)


def test_optional_features_may_be_left_out(client):
    required = {entry["name"] for entry in SCHEMA["features"] if not entry["nullable"]}
    response = client.post("/v1/predict", json={name: EXAMPLE[name] for name in required})
    assert response.status_code == 200


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, field, kind",
    [
        ({**EXAMPLE, "production_budget": "a lot"}, "production_budget", "float_type"),
        ({**EXAMPLE, "production_budget": -1000}, "production_budget", "greater_than_equal"),
        ({**EXAMPLE, "release_date_month": 13}, "release_date_month", "less_than_equal"),
        ({**EXAMPLE, "release_date_year": 2001.5}, "release_date_year", "multiple_of"),
        ({**EXAMPLE, "release_date_year": "2001"}, "release_date_year", "float_type"),
        ({**EXAMPLE, "mpaa_rating": 17}, "mpaa_rating", "string_type"),
        ({**EXAMPLE, "mpaa_rating": ""}, "mpaa_rating", "string_too_short"),
        ({**EXAMPLE, "sequel": True}, "sequel", "extra_forbidden"),
        ({k: v for k, v in EXAMPLE.items() if k != "production_budget"}, "production_budget", "missing"),
        ({**EXAMPLE, "production_budget": None}, "production_budget", "float_type"),
    ],
    ids=["wrong-type", "negative-budget", "month-13", "fractional-year", "string-year", "number-as-category", "empty-category", "unknown-field", "missing-required", "null-required"],
)
def test_invalid_instances_get_422_naming_the_field(client, body, field, kind):
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(error["loc"][-1] == field and error["type"] == kind for error in errors), errors


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_get_422(client, literal):
    body = json.dumps(EXAMPLE).replace(str(EXAMPLE["production_budget"]), literal)
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "production_budget"]


@pytest.mark.parametrize("body", [b"", b"{not json", b"[]"], ids=["empty", "malformed", "not-an-object"])
def test_unusable_bodies_get_422(client, body):
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_batch_limits(client):
    too_many = client.post("/v1/predict/batch", json={"instances": [EXAMPLE] * (MAX_BATCH + 1)})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "instances"]
    empty = client.post("/v1/predict/batch", json={"instances": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "instances"]
    bad_row = client.post("/v1/predict/batch", json={"instances": [EXAMPLE, {**EXAMPLE, "production_budget": -1}]})
    assert bad_row.status_code == 422 and bad_row.json()["detail"][0]["loc"] == ["body", "instances", 1, "production_budget"]
    oversized = client.post("/v1/predict/batch", content=b" " * 100_001, headers={"content-type": "application/json"})
    assert oversized.status_code == 413


# --- provenance, readiness, metrics, docs ----------------------------------------------------


def test_model_endpoint_reports_provenance(client, params):
    info = client.get("/v1/model").json()
    assert info["model_md5"] == lock_md5() == hashlib.md5((MODEL_DIR / "model.pkl").read_bytes()).hexdigest()
    assert info["data"]["sha256"] == params["data"]["sha256"]
    assert info["params"]["train"] == params["train"]
    assert info["metrics"] == json.loads((ROOT / "reports/metrics.json").read_text())
    assert {"commit", "dirty"} <= set(info["git"]) and info["trained_at"]
    assert info["feature_schema"] == SCHEMA
    assert client.post("/v1/predict", json=info["example"]).status_code == 200


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "model_version": lock_md5()}


def broken_model_dir(tmp_path: Path, damage) -> Path:
    target = tmp_path / "model"
    shutil.copytree(MODEL_DIR, target)
    damage(target)
    return target


def corrupt_but_recorded(model_dir: Path) -> None:
    """A damaged pickle whose md5 is also written into provenance: only unpickling can catch it."""
    (model_dir / "model.pkl").write_bytes((model_dir / "model.pkl").read_bytes()[:5000])
    provenance = json.loads((model_dir / "provenance.json").read_text())
    provenance["model_md5"] = hashlib.md5((model_dir / "model.pkl").read_bytes()).hexdigest()
    (model_dir / "provenance.json").write_text(json.dumps(provenance))


def wrong_reference(model_dir: Path) -> None:
    provenance = json.loads((model_dir / "provenance.json").read_text())
    provenance["reference"]["predictions"][0] *= 1.01
    (model_dir / "provenance.json").write_text(json.dumps(provenance))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: (d / "model.pkl").write_bytes((d / "model.pkl").read_bytes() + b"\0"), "differs from"),
        (lambda d: (d / "model.pkl").unlink(), "cannot be read"),
        (corrupt_but_recorded, "cannot be loaded"),
        (wrong_reference, "fast path differs"),
        (lambda d: (d / "provenance.json").unlink(), "provenance.json: missing"),
        (lambda d: (d / "feature_schema.json").write_text("{"), "feature_schema.json: unreadable"),
    ],
    ids=["md5-mismatch", "missing-file", "corrupt-pickle", "fast-path-mismatch", "no-provenance", "corrupt-schema"],
)
def test_a_bad_model_keeps_the_api_alive_but_not_ready(tmp_path, damage, reason, caplog):
    app = create_app(Settings(model_dir=broken_model_dir(tmp_path, damage)))
    with TestClient(app) as broken:
        assert broken.get("/health").status_code == 200
        ready = broken.get("/ready")
        assert ready.status_code == 503 and reason in ready.json()["detail"]
        assert broken.get("/v1/model").status_code == 503
        predict = broken.post("/v1/predict", json=EXAMPLE)
        assert predict.status_code in (503, 404)  # 404: with no readable schema there is no predict route
    assert any(reason in record.getMessage() for record in caplog.records if record.levelname == "ERROR")


def metric_value(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{key}="{value}"' in line for key, value in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_predictions_and_name_the_model(client):
    before = client.get("/metrics").text
    for _ in range(3):
        client.post("/v1/predict", json=EXAMPLE)
    client.post("/v1/predict", json={**EXAMPLE, "production_budget": -1})
    after = client.get("/metrics").text
    ok = dict(route="/v1/predict", method="POST", status="200")
    assert metric_value(after, "http_requests_total", **ok) - metric_value(before, "http_requests_total", **ok) == 3
    bad = dict(route="/v1/predict", method="POST", status="422")
    assert metric_value(after, "http_requests_total", **bad) - metric_value(before, "http_requests_total", **bad) == 1
    assert metric_value(after, "predicted_gross_dollars_count") - metric_value(before, "predicted_gross_dollars_count") == 3
    assert metric_value(after, "http_request_duration_seconds_count", route="/v1/predict") >= 4
    assert metric_value(after, "model_info", model_md5=lock_md5()) == 1


def test_openapi_request_schema_is_the_exported_feature_schema(client):
    spec = client.get("/openapi.json").json()
    request = spec["components"]["schemas"]["FilmFeatures"]
    assert list(request["properties"]) == [entry["name"] for entry in SCHEMA["features"]]
    assert set(request["required"]) == {entry["name"] for entry in SCHEMA["features"] if not entry["nullable"]}
    assert request["additionalProperties"] is False
    assert request["examples"] == [EXAMPLE]
    assert client.get("/docs").status_code == 200


# --- the real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "2", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    process = subprocess.Popen([str(ROOT / "initializer.sh")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/ready", process, timeout=30)
    except RuntimeError as error:
        process.kill()
        pytest.fail(f"gunicorn not ready: {error}")
    yield base, process
    if process.poll() is None:
        process.kill()


def test_gunicorn_serves_predictions_and_aggregates_metrics_across_workers(server):
    base, _ = server
    with httpx.Client(base_url=base) as http:
        before = metric_value(http.get("/metrics").text, "http_requests_total", route="/v1/predict", status="200")
        for _ in range(40):  # new connections spread over both workers
            assert httpx.post(f"{base}/v1/predict", json=EXAMPLE).json()["model_version"] == lock_md5()
        after = http.get("/metrics").text
    assert metric_value(after, "http_requests_total", route="/v1/predict", status="200") - before == 40
    assert metric_value(after, "model_info", model_md5=lock_md5()) == 1


def test_deployment_smoke_test_passes_on_the_real_server_and_catches_a_wrong_model(server):
    base, _ = server
    script = [sys.executable, str(ROOT / "utilities" / "smoke_test.py"), base, "--wait", "10"]
    passed = subprocess.run([*script, "--expect-md5", lock_md5()], capture_output=True, text=True)
    assert passed.returncode == 0 and "smoke test passed" in passed.stdout
    wrong = subprocess.run([*script, "--expect-md5", "0" * 32], capture_output=True, text=True)
    assert wrong.returncode == 1 and f"/v1/model serves {lock_md5()}, expected {'0' * 32}" in wrong.stderr
    down = subprocess.run([sys.executable, str(ROOT / "utilities" / "smoke_test.py"), f"http://127.0.0.1:{free_port()}", "--wait", "1"], capture_output=True, text=True)
    assert down.returncode == 1 and "/ready answered nothing" in down.stderr


def test_gunicorn_shuts_down_gracefully_on_sigterm(server):
    _, process = server
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert "Shutting down: Master" in process.stdout.read()


# --- property-based: schemathesis from our own OpenAPI -----------------------------------------

fuzz_schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(model_dir=MODEL_DIR)))
FUZZ_CALLS: list[int] = []


@fuzz_schema.parametrize()
@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_generated_requests_never_get_a_server_error(case):
    response = case.call()
    FUZZ_CALLS.append(response.status_code)
    assert response.status_code < 500, f"{case.method} {case.path} {case.body!r} -> {response.status_code} {response.text}"
    case.validate_response(response)


def test_fuzzing_made_at_least_a_thousand_requests():
    assert len(FUZZ_CALLS) >= 1000, len(FUZZ_CALLS)
