"""The GitHub workflows: linted by actionlint and zizmor, pinned and least-privileged; and the
steps they delegate (report, gate, change detection, build secret) run here on real pipeline runs."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from utilities.workspace import ROOT, run, scratch_pipeline_repo

WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def all_steps():
    for path in [*WORKFLOWS.glob("*.yaml"), ROOT / ".github/actions/setup/action.yml"]:
        document = yaml.safe_load(path.read_text())
        jobs = document.get("jobs", {"composite": document.get("runs", {})})
        for job in jobs.values():
            for step in job.get("steps", []):
                yield path.name, step


def test_actionlint_reports_nothing():
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck missing: `make system-deps` installs it, and actionlint needs it to check run: scripts")
    result = subprocess.run([str(BIN / "actionlint"), "-no-color"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_zizmor_reports_nothing_of_medium_severity_or_above():
    result = subprocess.run([str(BIN / "zizmor"), "--offline", "--min-severity", "medium", ".github"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_third_party_actions_are_pinned_to_full_commit_shas():
    used = [(name, step["uses"]) for name, step in all_steps() if "uses" in step]
    assert used
    for name, action in used:
        if action.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), f"{name}: {action}"


def test_every_workflow_starts_without_permissions_and_grants_per_job():
    for path in WORKFLOWS.glob("*.yaml"):
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {}, path.name
        for job_name, job in workflow["jobs"].items():
            assert "permissions" in job, f"{path.name}:{job_name}"
            assert "write-all" not in json.dumps(job["permissions"])


def test_no_secret_is_echoed_or_interpolated_into_a_script():
    for name, step in all_steps():
        script = step.get("run", "")
        assert "secrets." not in script, f"{name}: a secret inside run:"
        assert "${{" not in script, f"{name}: expression interpolated into a script: {script[:80]}"


def test_testing_runs_what_ci_runs():
    workflow = load("testing.yaml")
    assert set(workflow[True]) == {"push", "pull_request"}  # YAML reads `on` as True
    commands = [step.get("run") for step in workflow["jobs"]["test"]["steps"]]
    assert "make test" in commands and "make test" in (ROOT / ".ci/run").read_text()
    setup = yaml.safe_load((ROOT / ".github/actions/setup/action.yml").read_text())
    assert {"3.11"} == {s["with"]["python-version"] for s in setup["runs"]["steps"] if "setup-python" in s.get("uses", "")}
    assert all(s["with"].get("cache") for s in setup["runs"]["steps"] if "uses" in s)


def test_continuous_training_runs_every_six_hours_and_only_proposes_changes():
    workflow = load("continuous_training.yaml")
    triggers = workflow[True]
    assert "workflow_dispatch" in triggers
    minute, hour, *_ = triggers["schedule"][0]["cron"].split()
    assert hour == "*/6"
    text = (WORKFLOWS / "continuous_training.yaml").read_text()
    assert "git push --force origin \"${TRAINING_BRANCH}\"" in text and "push origin main" not in text
    assert "gh pr create --base main" in text
    assert "comment update" in text and "--publish=\"${CML_PUBLISH}\"" in text
    assert "vars.CML_PUBLISH_IMAGES == 'true'" in text  # images leave only on opt-in
    steps = workflow["jobs"]["train"]["steps"]
    gated = [step for step in steps if step.get("name", "").startswith(("Quality gate", "Push data", "Report", "Open or update", "CML"))]
    assert len(gated) == 5 and all(step["if"] == "steps.lock.outputs.changed == 'true'" for step in gated)


def test_ci_cd_deploys_through_workload_identity_and_smoke_tests():
    workflow = load("ci_cd.yaml")
    job = workflow["jobs"]["deploy"]
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    auth = next(step for step in job["steps"] if "google-github-actions/auth" in step.get("uses", ""))
    assert set(auth["with"]) == {"workload_identity_provider", "service_account"}  # no JSON key
    text = (WORKFLOWS / "ci_cd.yaml").read_text()
    assert "--secret \"id=dvc_config" in text and "--tag \"model-${MODEL_MD5:0:12}\"" in text
    assert "utilities/smoke_test.py" in text and "--expect-md5" in text


# --- the delegated steps, on two real pipeline runs --------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """main holds a first run; the workspace holds a second, worse one (fewer boosting rounds)."""
    repo = scratch_pipeline_repo(tmp_path_factory.mktemp("runs"))
    run("git", "branch", "-M", "main", cwd=repo)
    run("dvc", "repro", cwd=repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "first run", cwd=repo)
    run("dvc", "exp", "run", "-S", "train.hist_gradient_boosting.max_iter=40", cwd=repo)
    return repo


def python(*args, cwd, env=None):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_report_has_metric_and_param_tables_and_plots(two_runs):
    result = python("-m", "utilities.report", "--base", "main", cwd=two_runs)
    assert result.returncode == 0, result.stderr
    report = (two_runs / "report.md").read_text()
    r2_row = next(line for line in report.splitlines() if "| r2_log " in line)
    cells = [cell.strip() for cell in r2_row.strip("|").split("|")]
    assert float(cells[2]) != float(cells[3]) and float(cells[4]) < 0  # main, workspace, change
    assert re.search(r"train\.hist_gradient_boosting\.max_iter\s*\|\s*300\s*\|\s*40", report)
    assert "Quality gate: **FAILED**" in report
    for plot in ("predicted_vs_actual", "residuals", "feature_importance"):
        assert f"(reports/plots/{plot}.png)" in report and (two_runs / "reports/plots" / f"{plot}.png").exists()


def test_gate_fails_on_a_regression_with_a_readable_table(two_runs):
    result = python("-m", "utilities.gate", "--base", "main", cwd=two_runs)
    assert result.returncode == 1
    assert "| r2_log |" in result.stdout and "REGRESSED" in result.stdout
    assert "regressed against main beyond the tolerance in params.yaml" in result.stderr


def test_gate_passes_against_itself_and_without_a_base(two_runs):
    run("git", "stash", "--include-untracked", cwd=two_runs)
    try:
        run("dvc", "checkout", "--force", cwd=two_runs)
        same = python("-m", "utilities.gate", "--base", "main", cwd=two_runs)
        assert same.returncode == 0 and "no metric regressed" in same.stdout
        missing = python("-m", "utilities.gate", "--base", "main~1", cwd=two_runs)  # before any metrics
        assert missing.returncode == 0 and "nothing to compare with" in missing.stdout
    finally:
        run("git", "stash", "pop", cwd=two_runs)
        run("dvc", "checkout", "--force", cwd=two_runs)


def test_change_detection_reports_a_new_model_on_the_same_data(two_runs, tmp_path):
    output = tmp_path / "github_output"
    result = python("-m", "utilities.ci", "changed", "--base", "main", cwd=two_runs, env={"GITHUB_OUTPUT": str(output)})
    assert result.returncode == 0 and "data unchanged, model changed" in result.stdout
    assert output.read_text() == "changed=true\n"
    quiet = python("-m", "utilities.ci", "changed", "--base", "HEAD", cwd=ROOT, env={"GITHUB_OUTPUT": str(output)})
    assert "data unchanged, model unchanged" in quiet.stdout and output.read_text().endswith("changed=false\n")


def test_build_secret_comes_from_the_environment_only(tmp_path):
    secret = tmp_path / "dvc_config"
    env = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "DVC_REMOTE_ENDPOINT": "https://s3.example.internal"}
    assert python("-m", "utilities.ci", "dvc-secret", str(secret), cwd=ROOT, env=env).returncode == 0
    assert secret.stat().st_mode & 0o777 == 0o600
    text = secret.read_text()
    assert "secret_access_key = s3cr3t" in text and "endpointurl = https://s3.example.internal" in text
    bare = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    missing = subprocess.run([sys.executable, "-m", "utilities.ci", "dvc-secret", str(tmp_path / "other")], cwd=ROOT, env=bare, capture_output=True, text=True)
    assert missing.returncode == 1 and "AWS_ACCESS_KEY_ID is not set" in missing.stderr
    assert not (tmp_path / "other").exists()
