"""The real `dvc` commands on a copy of this project in a temporary git repository."""
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from utilities.workspace import run, scratch_pipeline_repo


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A fresh git + DVC repository holding the pipeline, after one full `dvc repro`."""
    repo = scratch_pipeline_repo(tmp_path_factory.mktemp("project"))
    run("dvc", "repro", cwd=repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "first run", cwd=repo)
    return repo


def test_repro_leaves_status_clean_and_a_second_repro_does_nothing(repo):
    assert "Data and pipelines are up to date" in run("dvc", "status", cwd=repo).stdout
    again = run("dvc", "repro", cwd=repo).stdout
    assert "Running stage" not in again
    for stage in ("load", "prepare", "train", "evaluate", "export"):
        assert f"Stage '{stage}' didn't change" in again


def test_lock_records_the_exported_model(repo):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert list(lock["stages"]) == ["load", "prepare", "train", "evaluate", "export"]
    outs = {out["path"]: out["md5"] for out in lock["stages"]["export"]["outs"]}
    assert outs["model/model.pkl"] == md5(repo / "model/model.pkl")
    assert json.loads((repo / "model/provenance.json").read_text())["model_md5"] == outs["model/model.pkl"]


def test_forced_repro_gives_a_bit_identical_model(repo):
    before = md5(repo / "model/model.pkl")
    run("dvc", "repro", "-f", cwd=repo)
    assert md5(repo / "model/model.pkl") == before
    run("dvc", "repro", "-f", "train", "evaluate", "export", cwd=repo)
    assert md5(repo / "model/model.pkl") == before


def test_a_param_change_reruns_only_the_stages_that_read_it(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["permutation_repeats"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = run("dvc", "repro", cwd=repo).stdout
        assert "Running stage 'evaluate'" in out and "Running stage 'train'" not in out
    finally:
        run("git", "checkout", "--", "params.yaml", cwd=repo)
        run("dvc", "repro", cwd=repo)


def test_experiment_run_with_a_set_param(repo):
    try:
        run("dvc", "exp", "run", "-S", "train.hist_gradient_boosting.learning_rate=0.1", "-n", "lr-0.1", cwd=repo)
        shown = json.dumps(json.loads(run("dvc", "exp", "show", "--json", cwd=repo).stdout))
        assert "lr-0.1" in shown and "r2_log" in shown
        diff = json.loads(run("dvc", "metrics", "diff", "HEAD", "--json", cwd=repo).stdout)
        assert diff["reports/metrics.json"]["r2"]["diff"] != 0
        params_diff = json.loads(run("dvc", "params", "diff", "HEAD", "--json", cwd=repo).stdout)
        assert params_diff["params.yaml"]["train.hist_gradient_boosting.learning_rate"]["new"] == 0.1
    finally:  # back to the committed run for the tests after this one
        run("git", "checkout", "--", ".", cwd=repo)
        run("dvc", "checkout", "--force", cwd=repo)


def test_metrics_and_plots_render(repo, tmp_path):
    metrics = run("dvc", "metrics", "show", cwd=repo).stdout
    assert "r2_log" in metrics and "cv_r2_log_mean" in metrics and "rows_dropped" in metrics
    run("dvc", "plots", "show", "-o", str(tmp_path / "plots"), cwd=repo)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "Predicted vs actual" in page and "Permutation importance" in page


def test_a_wrong_checksum_fails_the_pipeline_and_keeps_the_model(repo):
    model = md5(repo / "model/model.pkl")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["sha256"] = "0" * 64
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = run("dvc", "repro", cwd=repo, check=False)
        assert result.returncode != 0
        assert "sha256 is e63c4997" in result.stderr + result.stdout
        assert md5(repo / "model/model.pkl") == model
    finally:
        run("git", "checkout", "--", "params.yaml", cwd=repo)
        run("dvc", "checkout", cwd=repo)
    assert "Data and pipelines are up to date" in run("dvc", "status", cwd=repo).stdout
