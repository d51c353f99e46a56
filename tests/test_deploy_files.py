"""The deployment files, checked by real tools: hadolint for the Dockerfile, a Compose spec parser
for docker-compose.yml, promtool for Prometheus, and the dashboard against the API's own metrics."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from utilities.workspace import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_dockerfile_builds_a_lean_non_root_image_with_the_pulled_model():
    assert "ARG BASE_IMAGE=python:3.11-slim" in DOCKERFILE
    assert "--mount=type=secret,id=dvc_config" in DOCKERFILE and "dvc config core.no_scm true" in DOCKERFILE
    assert "dvc pull export" in DOCKERFILE
    runtime = DOCKERFILE.split("# --- stage 2")[1]
    assert "requirements_serve.txt" in runtime and "requirements_dvc.txt" not in runtime and "/opt/dvc" not in runtime
    assert re.search(r"^USER 10001$", runtime, re.M) and "HEALTHCHECK" in runtime and 'ENTRYPOINT ["./initializer.sh"]' in runtime
    assert "org.opencontainers.image.revision" in runtime and "model-md5" in runtime
    serve = (ROOT / "requirements_serve.txt").read_text()
    for training_only in ("pandas", "dvc", "matplotlib", "pyarrow", "pytest"):
        assert training_only not in serve


def test_build_context_leaves_out_data_credentials_and_git():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored  # everything is excluded unless listed
    allowed = {line[1:] for line in ignored if line.startswith("!")}
    assert ".dvc/config" in allowed and not any("config.local" in line or "model" in line or ".git" in line for line in allowed)


def test_compose_file_is_valid_and_wires_the_stack():
    compose = PyCompose.from_yaml((ROOT / "docker-compose.yml").read_text()).to_dict()
    services = compose["services"]
    assert set(services) == {"minio", "minio-init", "api", "prometheus", "grafana"}
    assert services["api"]["build"]["secrets"] == ["dvc_config"]
    assert compose["secrets"]["dvc_config"]["file"] == ".dvc/config.local"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert re.search(r"\$\{MINIO_ROOT_PASSWORD:\?", (ROOT / "docker-compose.yml").read_text())  # no default password


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is installed by `make system-deps`")
def test_prometheus_config_passes_promtool():
    result = subprocess.run(["promtool", "check", "config", str(ROOT / "monitoring/prometheus.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    targets = yaml.safe_load((ROOT / "monitoring/prometheus.yml").read_text())["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["api:8080"]


def test_dashboard_queries_metrics_the_api_exports():
    dashboard = json.loads((ROOT / "monitoring/grafana/dashboards/film-gross-api.json").read_text())
    datasource = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    provider = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/dashboards/film-gross.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    titles = " | ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for needed in ("request rate", "p50", "p99", "error rate", "predicted"):
        assert needed in titles
    with TestClient(create_app(Settings(model_dir=ROOT / "model"))) as client:
        client.post("/v1/predict", json=client.get("/v1/model").json()["example"])
        exported = {line.split("{")[0].split(" ")[0] for line in client.get("/metrics").text.splitlines() if line and not line.startswith("#")}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            metrics = set(re.findall(r"\b([a-z_]+(?:_total|_bucket|_info|_count|_sum))\b", target["expr"]))
            metrics |= {"model_info"} & set(re.findall(r"[a-z_]+", target["expr"]))
            assert metrics and metrics <= exported, (panel["title"], metrics - exported)
