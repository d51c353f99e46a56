"""Prometheus metrics. Under gunicorn every worker writes to PROMETHEUS_MULTIPROC_DIR and /metrics
aggregates them, so a scrape sees the whole server, not one worker."""
from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

REQUESTS = Counter("http_requests_total", "HTTP requests by route template, method and status", ["route", "method", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request start to end of response, by route template",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PREDICTED = Histogram(
    "predicted_gross_dollars",
    "Distribution of predicted worldwide gross (US dollars)",
    buckets=(1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9, 3e9),
)
MODEL_INFO = Gauge(
    "model_info", "1 for the model being served", ["model_md5", "git_commit"], multiprocess_mode="livemax"
)


def exposition() -> tuple[bytes, str]:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Plain ASGI (no BaseHTTPMiddleware) so it costs microseconds. Labels use the matched route
    template, never the raw path, to keep the label set bounded."""

    def __init__(self, app):
        self.app = app
        self._series: dict[tuple[str, str, str], tuple] = {}  # labels() takes a lock on every call

    def _record(self, route: str, method: str, status: str, seconds: float) -> None:
        series = self._series.get((route, method, status))
        if series is None:
            series = self._series[(route, method, status)] = (
                REQUESTS.labels(route, method, status),
                LATENCY.labels(route, method),
            )
        series[0].inc()
        series[1].observe(seconds)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_with_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self._record(route, scope["method"], str(status), time.perf_counter() - start)
