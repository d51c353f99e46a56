"""`make report`: the CML report, locally. Metric and param differences against a base revision
as markdown tables (from `dvc metrics diff --md` and `dvc params diff --md`), the quality gate's
table, and the evaluation plots as images. Writes report.md; the workflows post it with CML.

    python -m utilities.report [--base REV] [--out report.md]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from utilities import gate

PLOTS = ("reports/plots/predicted_vs_actual.png", "reports/plots/residuals.png", "reports/plots/feature_importance.png")


def dvc(*args: str, cwd: Path) -> str:
    executable = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    result = subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"dvc {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def rows_or(table: str, empty: str) -> str:
    """A markdown table, or `empty` when it has no data rows (dvc prints the header regardless)."""
    return table if len(table.splitlines()) > 2 else empty


def build_report(repo: Path, base: str) -> str:
    metrics = dvc("metrics", "diff", base, "--md", "--all", "--precision", "4", "--targets", gate.METRICS_FILE, cwd=repo)
    data = dvc("metrics", "diff", base, "--md", "--precision", "4", "--targets", "reports/validation.json", cwd=repo)
    params = dvc("params", "diff", base, "--md", cwd=repo)
    gate_output = io.StringIO()
    with contextlib.redirect_stdout(gate_output), contextlib.redirect_stderr(gate_output):
        passed = gate.main(["--base", base, "--repo", str(repo)]) == 0
    card = repo / "model" / "provenance.json"
    sections = [
        "# Model report",
        f"Compared with `{base}`. Quality gate: **{'passed' if passed else 'FAILED'}**.",
        "## Test metrics",
        rows_or(metrics, "_no test metrics_"),
        "## Data validation (changes only)",
        rows_or(data, "_unchanged_"),
        "## Params",
        rows_or(params, "_no params changed_"),
        "## Gate",
        gate_output.getvalue().strip(),
        "## Plots",
        *(f"![{Path(plot).stem.replace('_', ' ')}]({plot})" for plot in PLOTS if (repo / plot).exists()),
    ]
    if card.exists():
        md5 = json.loads(card.read_text())["model_md5"]
        sections.insert(2, f"Model `model/model.pkl` md5 `{md5}`.")
    return "\n\n".join(sections) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None, help="git revision to compare with (default: params.yaml gate.base)")
    parser.add_argument("--out", type=Path, default=Path("report.md"))
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    base = args.base or yaml.safe_load((args.repo / "params.yaml").read_text())["gate"]["base"]
    report = build_report(args.repo, base)
    (args.repo / args.out).write_text(report)
    print(f"wrote {args.repo / args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
