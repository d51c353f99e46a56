"""`make bench-pipeline`: full `dvc repro` from a clean repository, a no-op `dvc repro`, and the
train stage at 1x, 10x and 100x the training rows (resampled), to show how cost grows.
Prints figures and ratios; asserts nothing."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from src.common import load_params
from src.features import FeatureSpec
from src.prepare import prepare
from src.train import train
from utilities.workspace import ROOT, run, scratch_pipeline_repo

TARGET_FULL_S, TARGET_NOOP_S = 60.0, 3.0


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        repo = scratch_pipeline_repo(Path(scratch) / "project")
        full = timed(lambda: run("dvc", "repro", cwd=repo))
        noop = min(timed(lambda: run("dvc", "repro", cwd=repo)) for _ in range(3))

    params = load_params(ROOT / "params.yaml")
    spec = FeatureSpec.from_params(params["schema"])
    table = prepare(ROOT / params["data"]["source"], params)[0]
    scaling = []
    for factor in (1, 10, 100):
        rows = table.sample(len(table) * factor, replace=True, random_state=factor).reset_index(drop=True)
        # Resampled copies of a film keep its group key, so CV folds stay leak-free.
        scaling.append((factor, len(rows), timed(lambda: train(rows, spec, params["train"]))))

    print("\nPipeline benchmark\n")
    print(f"full dvc repro from clean   {full:7.1f} s   (target < {TARGET_FULL_S:.0f} s)")
    print(f"no-op dvc repro (best of 3) {noop:7.2f} s   (target < {TARGET_NOOP_S:.0f} s)")
    print(f"\ntrain stage ({params['train']['model']}, {params['train']['cv_folds']}-fold CV + final fit)")
    print(f"{'rows':>9} {'seconds':>9} {'x time':>8} {'us/row':>8}")
    base_rows, base_s = scaling[0][1], scaling[0][2]
    for factor, rows, seconds in scaling:
        print(f"{rows:9d} {seconds:9.2f} {seconds / base_s:8.1f} {seconds / rows * 1e6:8.1f}")
    growth = (scaling[-1][2] / base_s) / (scaling[-1][1] / base_rows)
    print(f"\ntime grows {growth:.2f}x as fast as rows from 1x to 100x (1.00 = linear)")


if __name__ == "__main__":
    main()
