"""What every stage shares: params, table I/O, atomic writes and the bad-input contract."""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

PARAMS_FILE = Path("params.yaml")


class StageError(Exception):
    """Bad input. The message names the file, column or rows at fault."""


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def file_digest(path: Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) then rename tmp over path, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, payload: Any) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays appear in metrics; json does not know them.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_table(path: Path):
    """Read a CSV, JSON (array of records) or Parquet table, chosen by extension."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            table = pd.read_csv(path)
        elif suffix == ".json":
            table = pd.read_json(path, orient="records", dtype=False)
        elif suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            raise StageError(f"{path}: unsupported table format {suffix!r} (use .csv, .json or .parquet)")
    except StageError:
        raise
    except Exception as error:  # pandas raises many types for a corrupt file
        raise StageError(f"{path}: cannot be read as a {suffix[1:]} table ({error})") from error
    return table


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Entry point of a stage: bad input ends it with one clear line and exit status 1."""
    try:
        main()
    except StageError as error:
        print(f"[{name}] failed: {error}", file=sys.stderr)
        sys.exit(1)
