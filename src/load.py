"""Stage load: copy the pinned raw table into dataset/, refusing any bytes but the expected ones."""
from __future__ import annotations

import hashlib
from pathlib import Path

from src.common import StageError, atomic_write, load_params, read_table, run_stage


def load(source: Path, expected_sha256: str | None, destination: Path) -> int:
    """Verify source and store a byte-exact copy at destination. Returns the row count."""
    if not source.is_file():
        hint = " (run `npm ci` to fetch the pinned vega-datasets)" if "node_modules" in source.parts else ""
        raise StageError(f"{source}: raw data file not found{hint}")
    if source.suffix.lower() != destination.suffix.lower():
        raise StageError(f"{destination}: must keep the extension of {source} ({source.suffix})")
    content = source.read_bytes()
    if expected_sha256:
        actual = hashlib.sha256(content).hexdigest()
        if actual != expected_sha256:
            raise StageError(
                f"{source}: sha256 is {actual}, params.yaml data.sha256 expects {expected_sha256};"
                " the file is corrupted or not the pinned version"
            )
    rows = len(read_table(source))  # a file that does not parse is refused here, not later
    if rows == 0:
        raise StageError(f"{source}: the table has no rows")
    atomic_write(destination, lambda tmp: tmp.write_bytes(content))
    return rows


def main() -> None:
    data = load_params()["data"]
    rows = load(Path(data["source"]), data.get("sha256"), Path(data["raw"]))
    checked = "sha256 verified" if data.get("sha256") else "no sha256 pinned in params.yaml"
    print(f"[load] {data['source']} -> {data['raw']}: {rows} rows, {checked}")


if __name__ == "__main__":
    run_stage("load", main)
