"""gunicorn settings, all from the environment (Cloud Run sets PORT)."""
import os

from prometheus_client import multiprocess

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)  # CPU-bound: one per core
worker_class = "uvicorn_worker.UvicornWorker"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))  # a worker silent this long is replaced
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))  # in-flight requests finish on SIGTERM
keepalive = 5
accesslog = "-" if os.environ.get("ACCESS_LOG") == "1" else None  # /metrics counts requests already
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")


def child_exit(server, worker):
    # A dead worker's live gauges must leave the aggregated /metrics.
    multiprocess.mark_process_dead(worker.pid)

# The runtime control socket is one fixed path per user: two servers on a host (tests, benchmarks,
# a sidecar) would fight over it, and a container needs no remote control.
control_socket_disable = True
