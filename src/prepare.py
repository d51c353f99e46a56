"""Stage prepare: typed parsing, cleaning and validation of the raw table, then a seeded split
that keeps every film (rows sharing an id) on one side. Writes a validation report as metrics."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from src.common import StageError, atomic_write, load_params, read_table, run_stage, write_json
from src.features import GROUP_COLUMN, FeatureSpec

PREPARED_DIR = Path("dataset/prepared")
REPORT_FILE = Path("reports/validation.json")
EXAMPLE_ROWS = 5  # how many offending row numbers an error message quotes


def _rows(mask: pd.Series) -> str:
    rows = [str(i) for i in mask[mask].index[:EXAMPLE_ROWS]]
    more = ", ..." if int(mask.sum()) > EXAMPLE_ROWS else ""
    return f"rows {', '.join(rows)}{more}"


def parse_types(raw: pd.DataFrame, spec: FeatureSpec, date_format: str, century_fix_after: int | None):
    """Raw columns -> typed snake_case columns. Values of the wrong type are errors, not NaN."""
    missing = [name for name in spec.raw_names.values() if name not in raw.columns]
    if missing:
        raise StageError(f"missing required columns: {', '.join(map(repr, missing))}")
    if raw.empty:
        raise StageError("the table has no rows")
    table = raw[list(spec.raw_names.values())].rename(columns={v: k for k, v in spec.raw_names.items()})
    problems: list[str] = []
    raw_numeric = [c for c in spec.numeric if c in spec.raw_names] + [spec.target]
    for column in raw_numeric:
        present = table[column].notna()
        parsed = pd.to_numeric(table[column], errors="coerce").astype(float)
        bad = present & ~np.isfinite(parsed.fillna(0.0))
        bad |= present & parsed.isna()
        if bad.any():
            problems.append(f"column {spec.raw_names[column]!r}: {int(bad.sum())} non-numeric values ({_rows(bad)})")
        table[column] = parsed
    for column in (spec.id, *spec.categorical):  # JSON titles such as 1776 arrive as numbers
        values = table[column].map(lambda v: None if pd.isna(v) else str(v).strip() or None)
        table[column] = values.astype(object)
    fixed_centuries = 0
    if spec.date:
        present = table[spec.date].notna()
        dates = pd.to_datetime(table[spec.date], format=date_format, errors="coerce")
        bad = present & dates.isna()
        if bad.any():
            problems.append(
                f"column {spec.raw_names[spec.date]!r}: {int(bad.sum())} values not in format {date_format!r} ({_rows(bad)})"
            )
        year = dates.dt.year.astype(float)
        if century_fix_after is not None:
            future = year > century_fix_after
            fixed_centuries = int(future.sum())
            year = year.where(~future, year - 100)
        table[f"{spec.date}_year"] = year
        table[f"{spec.date}_month"] = dates.dt.month.astype(float)
        table = table.drop(columns=[spec.date])
    if problems:
        raise StageError("; ".join(problems))
    return table, fixed_centuries


def clean(table: pd.DataFrame, spec: FeatureSpec, max_dropped_fraction: float):
    """Drop rows that cannot be learned from, counting each reason. Returns (table, report)."""
    rows_in = len(table)
    ids = table[spec.id].map(lambda v: None if pd.isna(v) else " ".join(str(v).split()).lower() or None)
    table = table.assign(**{GROUP_COLUMN: ids})
    report: dict[str, Any] = {"rows_raw": rows_in}

    keep = table[GROUP_COLUMN].notna()
    report["rows_missing_id"] = int((~keep).sum())
    duplicated = table.duplicated(subset=[GROUP_COLUMN, *spec.features, spec.target], keep="first")
    report["rows_duplicate"] = int((duplicated & keep).sum())
    keep &= ~duplicated
    has_target = table[spec.target].notna()
    report["rows_missing_target"] = int((keep & ~has_target).sum())
    if not (keep & has_target).any():
        raise StageError(f"column {spec.raw_names[spec.target]!r}: no row has a valid target value")
    keep &= has_target
    out_of_range: dict[str, int] = {}
    for column, bounds in spec.ranges.items():
        if column not in table.columns:
            raise StageError(f"params.yaml schema.ranges names {column!r}, which is not a column of the model")
        values = table[column]
        outside = pd.Series(False, index=table.index)
        if bounds.get("min") is not None:
            outside |= values < bounds["min"]
        if bounds.get("max") is not None:
            outside |= values > bounds["max"]
        out_of_range[column] = int((keep & outside).sum())
        keep &= ~outside
    report["rows_out_of_range"] = out_of_range
    dropped = rows_in - int(keep.sum())
    report["rows_dropped"] = dropped
    report["dropped_fraction"] = round(dropped / rows_in, 6)
    if dropped / rows_in > max_dropped_fraction:
        raise StageError(
            f"{dropped} of {rows_in} rows are invalid ({dropped / rows_in:.1%}), more than"
            f" prepare.max_dropped_fraction={max_dropped_fraction:.1%}: "
            + ", ".join(f"{k}={v}" for k, v in report.items() if k.startswith("rows_") and k != "rows_raw")
        )
    if not keep.any():
        raise StageError("no valid rows remain after cleaning")
    return table[keep].reset_index(drop=True), report


def split_by_group(groups: pd.Series, test_fraction: float, seed: int) -> pd.Series:
    """True for test rows. A hash of (seed, group) decides, so a film's side never depends on
    the other rows: adding data does not reshuffle the existing split."""

    def unit_interval(key: str) -> float:
        digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    return groups.map(unit_interval) < test_fraction


def prepare(raw_path: Path, params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    spec = FeatureSpec.from_params(params["schema"])
    settings = params["prepare"]
    try:
        typed, fixed = parse_types(
            read_table(raw_path), spec, params["schema"]["date_format"], settings.get("century_fix_after_year")
        )
        table, report = clean(typed, spec, settings["max_dropped_fraction"])
    except StageError as error:
        raise StageError(f"{raw_path}: {error}") from error
    report["dates_century_fixed"] = fixed
    is_test = split_by_group(table[GROUP_COLUMN], settings["test_fraction"], settings["seed"])
    columns = [spec.id, GROUP_COLUMN, *spec.features, spec.target]
    train, test = table.loc[~is_test, columns], table.loc[is_test, columns]
    if train.empty or test.empty:
        raise StageError(f"{raw_path}: the split left an empty side ({len(train)} train, {len(test)} test rows)")
    report.update(
        rows_train=len(train),
        rows_test=len(test),
        groups_in_both_splits=len(set(train[GROUP_COLUMN]) & set(test[GROUP_COLUMN])),
        missing_fraction={c: round(float(table[c].isna().mean()), 6) for c in spec.features},
    )
    return train.reset_index(drop=True), test.reset_index(drop=True), report


def main() -> None:
    params = load_params()
    train, test, report = prepare(Path(params["data"]["raw"]), params)
    for name, frame in (("train", train), ("test", test)):
        atomic_write(PREPARED_DIR / f"{name}.parquet", lambda tmp, f=frame: f.to_parquet(tmp, index=False))
    write_json(REPORT_FILE, report)
    print(f"[prepare] {report['rows_train']} train / {report['rows_test']} test rows, {report['rows_dropped']} dropped")


if __name__ == "__main__":
    run_stage("prepare", main)
