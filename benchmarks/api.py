"""`make bench-api`: our /v1/predict against a naive endpoint and a bare echo endpoint, all under
gunicorn with the same workers, loaded by wrk at 10 connections; batch against in-process predict;
cold start to ready. Prints figures and ratios; asserts nothing."""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd

from utilities.workspace import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "model"
DURATION_S = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS, WORKERS, BATCH_ROWS, BATCH_REPEATS = 10, 2, 1000, 20


def server_env(port: int) -> dict[str, str]:
    return {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(WORKERS),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-metrics-"),
    }


@contextmanager
def serving(command: list[str], ready_path: str):
    port = free_port()
    process = subprocess.Popen(command, cwd=ROOT, env=server_env(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = wait_ready(f"http://127.0.0.1:{port}{ready_path}", process)
        yield f"http://127.0.0.1:{port}", started
    finally:
        process.terminate()
        process.wait(timeout=30)


def gunicorn(app: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", app, "--config", "api/gunicorn_conf.py"]


def wrk(url: str, body: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {json.dumps(body)}\n')
    subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", "-d2s", "-s", script.name, url], capture_output=True, check=True)  # warm-up
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--latency", "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load:\n{out}")

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": latency("50"), "p99_ms": latency("99")}


def batch_rows() -> list[dict]:
    test = pd.read_parquet(ROOT / "dataset/prepared/test.parquet")
    schema = json.loads((MODEL_DIR / "feature_schema.json").read_text())
    required = [entry["name"] for entry in schema["features"] if not entry["nullable"]]
    names = [entry["name"] for entry in schema["features"]]
    rows = test[names].dropna(subset=required).sample(BATCH_ROWS, replace=True, random_state=0)
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()} for row in rows.to_dict("records")]


def main() -> None:
    example = json.loads((MODEL_DIR / "feature_schema.json").read_text())["example"]
    body = json.dumps(example)
    results: dict[str, dict[str, float]] = {}
    with serving(gunicorn("benchmarks.baseline_app:naive"), "/docs") as (url, _):
        results["a naive (DataFrame per request)"] = wrk(f"{url}/v1/predict", body)
    with serving(gunicorn("benchmarks.baseline_app:echo"), "/docs") as (url, _):
        results["b echo (framework ceiling)"] = wrk(f"{url}/v1/predict", body)
    cold_starts = []
    for _ in range(3):
        with serving([str(ROOT / "initializer.sh")], "/ready") as (url, started):
            cold_starts.append(started)
    with serving([str(ROOT / "initializer.sh")], "/ready") as (url, _):
        results["c ours /v1/predict"] = wrk(f"{url}/v1/predict", body)
        rows = batch_rows()
        with httpx.Client(base_url=url, timeout=30) as http:
            http.post("/v1/predict/batch", json={"instances": rows})
            start = time.perf_counter()
            for _ in range(BATCH_REPEATS):
                assert http.post("/v1/predict/batch", json={"instances": rows}).status_code == 200
            api_batch_s = (time.perf_counter() - start) / BATCH_REPEATS
    pipeline = joblib.load(MODEL_DIR / "model.pkl")
    frame = pd.DataFrame(rows).fillna(np.nan)
    pipeline.predict(frame)
    start = time.perf_counter()
    for _ in range(BATCH_REPEATS):
        pipeline.predict(pd.DataFrame(rows).fillna(np.nan))
    in_process_s = (time.perf_counter() - start) / BATCH_REPEATS

    naive, echo, ours = (results[k] for k in sorted(results))
    print(f"\nAPI benchmark: gunicorn, {WORKERS} uvicorn workers, wrk {CONNECTIONS} connections, {DURATION_S} s each, {os.cpu_count()} cores\n")
    print(f"{'endpoint':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name in sorted(results):
        r = results[name]
        print(f"{name:34} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
    print()
    print(f"ours / naive          {ours['rps'] / naive['rps']:6.1f}x   (target >= 20x)")
    print(f"ours / echo           {ours['rps'] / echo['rps']:6.1%}   (target >= 60 %)")
    print(f"ours p99              {ours['p99_ms']:6.2f} ms (target < 20 ms)")
    print(f"batch of {BATCH_ROWS} over HTTP {api_batch_s * 1e3:7.1f} ms = {BATCH_ROWS / api_batch_s:8.0f} rows/s")
    print(f"in-process predict    {in_process_s * 1e3:7.1f} ms = {BATCH_ROWS / in_process_s:8.0f} rows/s")
    print(f"batch / in-process    {in_process_s / api_batch_s:6.1%}   (target >= 50 %)")
    print(f"cold start to ready   {statistics.median(cold_starts):6.2f} s  (median of 3; target < 3 s)")


if __name__ == "__main__":
    main()
