"""Smoke test of a deployed API, standard library only (runs on any CI runner):
/ready, one prediction with the served example, and /v1/model's md5 against the one expected.

    python3 utilities/smoke_test.py https://SERVICE-URL --expect-md5 MD5 [--token IDENTITY_TOKEN]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def call(url: str, token: str | None, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def smoke(base: str, expected_md5: str | None, token: str | None, wait_s: float) -> list[str]:
    base = base.rstrip("/")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            status, _ = call(f"{base}/ready", token)
        except (urllib.error.URLError, OSError):
            status = 0
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(2)
    if status != 200:
        return [f"/ready answered {status or 'nothing'}"]
    problems = []
    _, info = call(f"{base}/v1/model", token)
    if expected_md5 and info.get("model_md5") != expected_md5:
        problems.append(f"/v1/model serves {info.get('model_md5')}, expected {expected_md5}")
    status, prediction = call(f"{base}/v1/predict", token, info.get("example") or {})
    if status != 200 or not prediction.get("prediction", 0) > 0:
        problems.append(f"/v1/predict answered {status} {prediction}")
    elif prediction.get("model_version") != info.get("model_md5"):
        problems.append("the prediction names another model than /v1/model")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--expect-md5")
    parser.add_argument("--token", help="identity token for a service that requires authentication")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for /ready")
    args = parser.parse_args()
    problems = smoke(args.url, args.expect_md5, args.token, args.wait)
    for problem in problems:
        print(f"smoke test: {problem}", file=sys.stderr)
    if not problems:
        print(f"smoke test passed: {args.url} serves {args.expect_md5 or 'a ready model'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
