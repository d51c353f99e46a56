"""The DVC remote as committed in .dvc/config, against a real S3 server (SeaweedFS) on loopback:
push from one clone, pull into a fresh one; and what happens when the server is gone."""
import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml

from utilities.bucket import S3Unavailable, dvc_remote_bucket, object_count, s3_client
from utilities.s3_server import Credentials, LocalS3Server, configure_dvc_remote
from utilities.workspace import ROOT, free_port, run, scratch_pipeline_repo



@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    bucket, _ = dvc_remote_bucket()
    server = LocalS3Server(tmp_path_factory.mktemp("s3"), free_port(), bucket, Credentials.generate())
    server.start()
    yield server
    server.stop()


def tracked_md5s(repo):
    """path -> md5 for every file output that dvc.lock records (directories expanded by DVC)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            path = repo / out["path"]
            if path.is_file():
                outs[out["path"]] = hashlib.md5(path.read_bytes()).hexdigest()
    return outs


@pytest.fixture(scope="module")
def pushed(s3, tmp_path_factory):
    source = scratch_pipeline_repo(tmp_path_factory.mktemp("source"))
    configure_dvc_remote(s3.endpoint, s3.credentials, cwd=source)
    run("dvc", "repro", cwd=source)
    run("git", "add", "-A", cwd=source)
    run("git", "commit", "-qm", "trained", cwd=source)
    run("dvc", "push", cwd=source)
    return source


def test_push_stores_every_output_in_the_bucket(s3, pushed):
    bucket, prefix = dvc_remote_bucket()
    client = s3_client(s3.endpoint, s3.credentials.access_key, s3.credentials.secret_key)
    stored = {item.object_name for item in client.list_objects(bucket, prefix=prefix, recursive=True)}
    lock = yaml.safe_load((pushed / "dvc.lock").read_text())
    outs = [out for stage in lock["stages"].values() for out in stage.get("outs", [])]
    recorded = [out["md5"] for out in outs if not out["path"].startswith("reports/")]  # reports/ lives in git
    assert len(recorded) == 7  # raw copy, prepared dir, candidate, four export files
    for md5 in recorded:
        assert f"{prefix}/files/md5/{md5[:2]}/{md5[2:]}" in stored
    assert object_count(client, bucket, prefix) == len(stored)
    assert not (pushed / ".dvc" / "config.local").read_text() in (pushed / ".dvc" / "config").read_text()
    assert "config.local" in (pushed / ".dvc" / ".gitignore").read_text()


def test_fresh_clone_pulls_identical_outputs_and_is_clean(s3, pushed, tmp_path):
    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(pushed), str(clone), cwd=tmp_path)
    assert not (clone / "model" / "model.pkl").exists()
    configure_dvc_remote(s3.endpoint, s3.credentials, cwd=clone)
    # The raw source lives in node_modules (npm ci), not in git: give the clone the same file.
    source = yaml.safe_load((clone / "params.yaml").read_text())["data"]["source"]
    (clone / source).parent.mkdir(parents=True)
    (clone / source).write_bytes((pushed / source).read_bytes())
    run("dvc", "pull", cwd=clone)
    assert tracked_md5s(clone) == tracked_md5s(pushed)
    assert "up to date" in run("dvc", "status", cwd=clone).stdout


def test_pull_of_only_the_served_model(s3, pushed, tmp_path):
    clone = tmp_path / "serving"
    run("git", "clone", "-q", str(pushed), str(clone), cwd=tmp_path)
    configure_dvc_remote(s3.endpoint, s3.credentials, cwd=clone)
    run("dvc", "pull", "export", cwd=clone)  # what the image build does
    provenance = json.loads((clone / "model" / "provenance.json").read_text())
    assert hashlib.md5((clone / "model" / "model.pkl").read_bytes()).hexdigest() == provenance["model_md5"]
    assert not (clone / "dataset" / "prepared").exists()


def test_with_the_server_stopped_everything_fails_fast_and_nothing_local_is_lost(s3, pushed):
    before = tracked_md5s(pushed)
    s3.stop()
    try:
        for command in (("dvc", "push"), ("dvc", "pull"), ("dvc", "fetch")):
            result = run(*command, cwd=pushed, check=False)
            assert result.returncode != 0, command
            assert "Could not connect to the endpoint URL" in result.stderr + result.stdout
        result = subprocess.run(
            [sys.executable, "-m", "utilities.bucket", "check", s3.endpoint, "dvc-store"],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
            env={**os.environ, "AWS_ACCESS_KEY_ID": s3.credentials.access_key, "AWS_SECRET_ACCESS_KEY": s3.credentials.secret_key},
        )
        assert result.returncode == 1 and "cannot connect" in result.stderr and "is the server running?" in result.stderr
        with pytest.raises(S3Unavailable, match="cannot connect"):
            object_count(s3_client(s3.endpoint, s3.credentials.access_key, s3.credentials.secret_key), "dvc-store")
        assert tracked_md5s(pushed) == before
        assert "up to date" in run("dvc", "status", cwd=pushed).stdout
    finally:
        s3.start()


def test_wrong_credentials_are_refused_with_the_reason(s3):
    client = s3_client(s3.endpoint, s3.credentials.access_key, "not-the-secret")
    with pytest.raises(S3Unavailable, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        object_count(client, "dvc-store")


def test_remote_up_and_down_commands(tmp_path):
    """`make remote-up`/`remote-down` as a developer runs them, on a scratch project and port."""
    project = scratch_pipeline_repo(tmp_path / "project")
    state, port = tmp_path / "state", free_port()
    command = [sys.executable, "-m", "utilities.s3_server"]
    where = ["--port", str(port), "--state-dir", str(state), "--project", str(project)]
    up = subprocess.run([*command, "up", *where], cwd=ROOT, capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        local = (project / ".dvc" / "config.local").read_text()
        credentials = json.loads((state / "credentials.json").read_text())
        assert f"endpointurl = http://127.0.0.1:{port}" in local and credentials["secret_key"] in local
        assert (state / "credentials.json").stat().st_mode & 0o777 == 0o600
        assert "config.local" in run("git", "check-ignore", ".dvc/config.local", cwd=project).stdout
        client = s3_client(f"http://127.0.0.1:{port}", credentials["access_key"], credentials["secret_key"])
        assert object_count(client, dvc_remote_bucket()[0]) == 0  # the bucket exists, empty
    finally:
        down = subprocess.run([*command, "down", *where], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0 and not (state / "weed.pid").exists()
    with pytest.raises(S3Unavailable, match="cannot connect"):
        object_count(client, dvc_remote_bucket()[0])
