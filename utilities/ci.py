"""Small steps of the GitHub workflows, kept here so they run and are tested on any machine.

    python -m utilities.ci model-md5             # md5 of model/model.pkl recorded in dvc.lock
    python -m utilities.ci changed [--base REV]   # did dvc.lock's data or model change? (also to $GITHUB_OUTPUT)
    python -m utilities.ci dvc-secret PATH        # DVC config with the remote's credentials, from the environment
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

LOCK = "dvc.lock"
DATA_STAGES = ("load", "prepare")  # their outputs are "the data"
MODEL_OUT = "model/model.pkl"


def outputs(lock_text: str) -> dict[str, dict[str, str]]:
    """stage -> {path: md5} of the cached outputs in a dvc.lock."""
    lock = yaml.safe_load(lock_text) or {}
    return {stage: {out["path"]: out["md5"] for out in body.get("outs", [])} for stage, body in lock.get("stages", {}).items()}


def model_md5(repo: Path) -> str:
    return outputs((repo / LOCK).read_text())["export"][MODEL_OUT]


def changes(repo: Path, base: str) -> dict[str, bool]:
    old_text = subprocess.run(["git", "show", f"{base}:{LOCK}"], cwd=repo, capture_output=True, text=True).stdout
    old, new = outputs(old_text), outputs((repo / LOCK).read_text())
    data = any(old.get(stage) != new.get(stage) for stage in DATA_STAGES)
    model = old.get("export", {}).get(MODEL_OUT) != new.get("export", {}).get(MODEL_OUT)
    return {"data": data, "model": model}


def remote_config(access_key: str, secret_key: str, endpoint: str | None = None, remote: str = "storage") -> str:
    """A DVC config section with the remote's credentials (and endpoint, when it differs from .dvc/config)."""
    lines = [f"['remote \"{remote}\"']", f"    access_key_id = {access_key}", f"    secret_access_key = {secret_key}"]
    if endpoint:
        lines.append(f"    endpointurl = {endpoint}")
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)  # before the secret goes in
    path.write_text(text)


def dvc_secret(path: Path) -> None:
    """The image build secret, from the environment only."""
    try:
        text = remote_config(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ.get("DVC_REMOTE_ENDPOINT"))
    except KeyError as missing:
        sys.exit(f"dvc-secret: {missing.args[0]} is not set")
    write_private(path, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["model-md5", "changed", "dvc-secret"])
    parser.add_argument("path", nargs="?", type=Path)
    parser.add_argument("--base", default="HEAD")
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    if args.command == "model-md5":
        print(model_md5(args.repo))
    elif args.command == "dvc-secret":
        if args.path is None:
            parser.error("dvc-secret needs the file to write")
        dvc_secret(args.path)
    else:
        changed = changes(args.repo, args.base)
        summary = ", ".join(f"{what} {'changed' if flag else 'unchanged'}" for what, flag in changed.items())
        print(f"against {args.base}: {summary}")
        if os.environ.get("GITHUB_OUTPUT"):
            with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as output:
                output.write(f"changed={'true' if any(changed.values()) else 'false'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
