"""Scratch copies of the project and free ports, for tests and benchmarks that run real tools."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_FILES = ("dvc.yaml", "params.yaml", "src", ".dvcignore")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60.0) -> float:
    """Poll url until it answers 200; seconds it took. Fails as soon as process exits."""
    import time

    import httpx

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return time.perf_counter() - start
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's venv first on PATH (so `dvc` is ours)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def scratch_pipeline_repo(dest: Path) -> Path:
    """A fresh git + DVC repository holding the pipeline and its raw source, committed, not run."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, dest / name)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["source"]
    (dest / raw).parent.mkdir(parents=True)
    shutil.copy(ROOT / raw, dest / raw)
    (dest / ".gitignore").write_text("node_modules/\n__pycache__/\n")
    run("git", "init", "-q", cwd=dest)
    run("git", "config", "user.email", "ci@example.invalid", cwd=dest)
    run("git", "config", "user.name", "CI", cwd=dest)
    run("dvc", "init", "-q", cwd=dest)
    shutil.copy(ROOT / ".dvc" / "config", dest / ".dvc" / "config")  # the committed remote declaration
    run("git", "add", "-A", cwd=dest)
    run("git", "commit", "-qm", "pipeline", cwd=dest)
    return dest
