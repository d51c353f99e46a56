"""`make gate`: the workspace's test metrics against a base revision's, with the tolerances of
params.yaml `gate`. Prints a table; exits 1 when a metric got worse by more than allowed.

    python -m utilities.gate [--base REV]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

METRICS_FILE = "reports/metrics.json"


def metrics_at(revision: str, cwd: Path) -> dict[str, float] | None:
    result = subprocess.run(["git", "show", f"{revision}:{METRICS_FILE}"], cwd=cwd, capture_output=True, text=True)
    return json.loads(result.stdout) if result.returncode == 0 else None


def compare(base: dict[str, float], new: dict[str, float], tolerance: dict[str, dict[str, float]]):
    """Rows (metric, base, new, change, allowed, ok) for every metric with a tolerance."""
    rows = []
    for metric, rule in tolerance.items():
        if metric not in new:
            raise KeyError(f"params.yaml gate.tolerance names {metric!r}, which {METRICS_FILE} does not have")
        old, value = base.get(metric), new[metric]
        if "max_drop" in rule:
            allowed, ok = f"drop <= {rule['max_drop']}", old is None or value >= old - rule["max_drop"]
        elif "max_rise" in rule:
            allowed, ok = f"rise <= {rule['max_rise']}", old is None or value <= old + rule["max_rise"]
        else:
            raise KeyError(f"params.yaml gate.tolerance.{metric}: use max_drop (higher is better) or max_rise (lower is better)")
        rows.append((metric, old, value, None if old is None else value - old, allowed, ok))
    return rows


def table(rows, base_revision: str) -> str:
    def number(value):
        return "n/a" if value is None else f"{value:.4f}"

    lines = [f"| metric | {base_revision} | workspace | change | allowed | |", "| --- | ---: | ---: | ---: | --- | --- |"]
    for metric, old, value, change, allowed, ok in rows:
        change_text = "n/a" if change is None else f"{change:+.4f}"
        lines.append(f"| {metric} | {number(old)} | {number(value)} | {change_text} | {allowed} | {'ok' if ok else 'REGRESSED'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="git revision to compare with (default: params.yaml gate.base)")
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    settings = yaml.safe_load((args.repo / "params.yaml").read_text())["gate"]
    base_revision = args.base or settings["base"]
    new = json.loads((args.repo / METRICS_FILE).read_text())
    base = metrics_at(base_revision, args.repo)
    if base is None:
        print(f"gate: {base_revision} has no {METRICS_FILE}; nothing to compare with, passing")
        return 0
    rows = compare(base, new, settings["tolerance"])
    print(table(rows, base_revision))
    regressed = [row[0] for row in rows if not row[5]]
    if regressed:
        print(f"\ngate: {', '.join(regressed)} regressed against {base_revision} beyond the tolerance in params.yaml", file=sys.stderr)
        return 1
    print(f"\ngate: no metric regressed against {base_revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
