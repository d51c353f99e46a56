"""Build and check the serving image with podman/buildah (no Docker engine needed).

    python -m utilities.image build   # the image, its model pulled by DVC from the remote in .dvc/config(.local)
    python -m utilities.image test    # a local S3 server, push, build, run, check /ready, a prediction, /v1/model

No base image can be pulled on some machines (this project's CI among them): with
BASE_IMAGE=debian (the default of `make image-test`) one is built from Debian packages with
debootstrap, as ../shared/CONTAINERS.md describes. Real users build FROM python:3.11-slim.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from utilities.bucket import dvc_remote_bucket
from utilities.ci import model_md5, remote_config, write_private
from utilities.s3_server import Credentials, LocalS3Server
from utilities.workspace import ROOT, free_port

DEBIAN_BASE = "localhost/python-base:3.11"
IMAGE = os.environ.get("IMAGE", "film-gross-api:latest")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def sh(*args: str, **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(args), flush=True)
    return subprocess.run(args, check=True, **kwargs)


def container_env() -> dict[str, str]:
    """The sandbox forbids raising rlimits: podman must not try to set default ulimits."""
    config = Path(tempfile.gettempdir()) / "film-gross-containers.conf"
    config.write_text("[containers]\ndefault_ulimits = []\n")
    return {**os.environ, "CONTAINERS_CONF": str(config)}


def ensure_tools() -> None:
    missing = [tool for tool in ("podman", "buildah", "runc", "debootstrap") if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(f"missing {', '.join(missing)}: install podman, buildah, runc and debootstrap")
    sh("apt-get", "update", "-qq")
    sh("apt-get", "install", "-y", "-qq", "podman", "buildah", "runc", "debootstrap", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def debian_mirror() -> str:
    """The mirror this machine's apt already uses (deb822 or one-line format)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not path.is_file() or path.suffix not in ("", ".list", ".sources"):
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(word for word in words[1:] if "://" in word)
    sys.exit("no Debian mirror found in /etc/apt")


def ensure_debian_base(env: dict[str, str]) -> str:
    if subprocess.run(["podman", "image", "exists", DEBIAN_BASE], env=env).returncode == 0:
        return DEBIAN_BASE
    with tempfile.TemporaryDirectory() as rootfs:
        sh("debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates,passwd", "bookworm", rootfs, debian_mirror(), stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        sh("podman", "import", "-", DEBIAN_BASE, stdin=tar.stdout, env=env, stdout=subprocess.DEVNULL)
        tar.wait()
    return DEBIAN_BASE


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def build(base_image: str, dvc_secret: Path, env: dict[str, str]) -> None:
    if not dvc_secret.is_file():
        sys.exit(f"{dvc_secret}: no DVC credentials to build with (run `make remote-up`, or write the remote's credentials there)")
    args = [
        "buildah", "bud", "--isolation", "chroot", "--network", "host", "--layers", "--format", "docker",
        "--secret", f"id=dvc_config,src={dvc_secret}",
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--build-arg", f"GIT_COMMIT={git_commit()}",
        "--build-arg", f"MODEL_MD5={model_md5(ROOT)}",
        "-t", IMAGE,
    ]
    if CA_BUNDLE.is_file():  # this machine reaches the package index through its own CA
        args += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "--build-arg", f"PIP_CERT={CA_BUNDLE}"]
    sh(*args, str(ROOT), env=env)


def push_model(server: LocalS3Server, workdir: Path) -> Path:
    """Push the exported model from this workspace's DVC cache to the test server, through a
    scratch DVC project so the developer's own .dvc/config.local is left alone. Returns the build
    secret: a DVC config with the server's endpoint and credentials."""
    project = workdir / "push"
    (project / ".dvc").mkdir(parents=True)
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copy(ROOT / ".dvc" / "config", project / ".dvc" / "config")
    remote = remote_config(server.credentials.access_key, server.credentials.secret_key, server.endpoint)
    local_settings = f"[core]\n    no_scm = true\n[cache]\n    dir = {ROOT / '.dvc' / 'cache'}\n"
    write_private(project / ".dvc" / "config.local", remote + local_settings)
    secret = workdir / "dvc_config"
    write_private(secret, remote)
    sh(str(Path(sys.executable).with_name("dvc")), "push", "export", cwd=project)
    return secret


def run_and_check(env: dict[str, str]) -> None:
    port = free_port()
    container = sh(
        "podman", "--runtime", "runc", "run", "-d", "--network", "host", "-e", f"PORT={port}", IMAGE,
        env=env, capture_output=True, text=True,
    ).stdout.strip()
    base = f"http://127.0.0.1:{port}"
    try:
        start = time.monotonic()
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            exited = subprocess.run(["podman", "inspect", "--format", "{{.State.Running}}", container], env=env, capture_output=True, text=True)
            if time.monotonic() - start > 90 or exited.stdout.strip() == "false":
                logs = subprocess.run(["podman", "logs", container], env=env, capture_output=True, text=True)
                sys.exit(f"container not ready:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.2)
        ready_s = time.monotonic() - start
        schema = httpx.get(f"{base}/v1/model", timeout=5).json()
        prediction = httpx.post(f"{base}/v1/predict", json=schema["example"], timeout=5).json()
        user = sh("podman", "exec", container, "id", "-u", env=env, capture_output=True, text=True).stdout.strip()
    finally:
        subprocess.run(["podman", "rm", "--force", "--time", "10", container], env=env, capture_output=True)
    inspect = json.loads(sh("podman", "image", "inspect", IMAGE, env=env, capture_output=True, text=True).stdout)[0]
    labels = inspect.get("Labels") or inspect.get("Config", {}).get("Labels") or {}
    problems = []
    if schema["model_md5"] != model_md5(ROOT):
        problems.append(f"/v1/model md5 {schema['model_md5']} != dvc.lock {model_md5(ROOT)}")
    if prediction.get("model_version") != model_md5(ROOT) or not prediction.get("prediction", 0) > 0:
        problems.append(f"bad prediction {prediction}")
    if labels.get("io.github.film-gross.model-md5") != model_md5(ROOT):
        problems.append(f"image label model-md5 is {labels.get('io.github.film-gross.model-md5')}")
    if user == "0":
        problems.append("the container runs as root")
    print(f"image {IMAGE}: {inspect['Size'] / 1e6:.0f} MB; ready in {ready_s:.1f} s; prediction {prediction.get('prediction'):.0f} $;"
          f" model {schema['model_md5']} (dvc.lock {model_md5(ROOT)}); uid {user}")
    if problems:
        sys.exit("image test failed: " + "; ".join(problems))
    print("image test passed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["build", "test"])
    parser.add_argument("--base-image", default=os.environ.get("BASE_IMAGE", "debian"),
                        help="'debian' builds one from Debian packages; else an image reference such as python:3.11-slim")
    args = parser.parse_args()
    ensure_tools()
    env = container_env()
    base = ensure_debian_base(env) if args.base_image == "debian" else args.base_image
    if args.action == "build":
        build(base, ROOT / ".dvc" / "config.local", env)
        return
    with tempfile.TemporaryDirectory() as scratch:
        bucket, _ = dvc_remote_bucket()
        server = LocalS3Server(Path(scratch) / "s3", free_port(), bucket, Credentials.generate())
        server.start()
        try:
            build(base, push_model(server, Path(scratch)), env)
            run_and_check(env)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
