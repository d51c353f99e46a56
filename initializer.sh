#!/usr/bin/env bash
# Serve the exported model: gunicorn with uvicorn workers (settings in api/gunicorn_conf.py).
# Environment: PORT (8080), HOST (0.0.0.0), WEB_CONCURRENCY (CPU count), MODEL_DIR (model),
# MAX_BATCH_SIZE, MAX_BODY_BYTES, ACCESS_LOG=1, LOG_LEVEL.
set -euo pipefail
cd "$(dirname "$0")"

# Workers share Prometheus metrics through files; start from an empty directory every time.
PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/api-metrics-$$}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
export PROMETHEUS_MULTIPROC_DIR
# Parallelism comes from worker processes; native thread pools would only contend with them.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

exec gunicorn "api.main:serve()" --config api/gunicorn_conf.py
