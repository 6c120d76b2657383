"""The controller's Prometheus metrics and its ``/metrics`` + ``/healthz`` HTTP server.

Metrics (``prometheus_client``, installed with ``ray[default]``; one registry per controller;
counters carry Prometheus' ``_total`` suffix):

================================================  =====  ===========================================
``rl_autoscaler_workers``                         gauge  workers as observed at the last decision
``rl_autoscaler_desired_workers``                 gauge  the count the last decision asked for
``rl_autoscaler_worker_queue``                    gauge  tasks waiting for a worker
``rl_autoscaler_qos_window``                      gauge  QoS rate over the observation window
``rl_autoscaler_decisions_total{action}``         ctr    decisions by guarded delta ("+1", "0", ...)
``rl_autoscaler_fallbacks_total{reason}``         ctr    hold-the-count decisions (stale, model_error)
``rl_autoscaler_model_info{policy,source,sha256}``  gauge  1 for the served policy
``rl_autoscaler_model_loaded_timestamp``          gauge  when it was loaded (epoch seconds)
``rl_autoscaler_model_reloads_total``             ctr    model files swapped in
``rl_autoscaler_model_reload_refusals_total``     ctr    replaced model files refused (old kept)
``rl_autoscaler_redis_up``                        gauge  1 while the last observation succeeded
``rl_autoscaler_tasks_collected_total``           ctr    tasks the collector delivered since start
================================================  =====  ===========================================

``/healthz`` answers 200 while the last successful observation is younger than
``stale_after`` seconds, else 503.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..common.errors import UserError
from .policy_source import ModelIdentity

PREFIX = "rl_autoscaler"


class ControllerMetrics:
    """The controller's metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.workers = Gauge(f"{PREFIX}_workers", "Workers as observed", registry=r)
        self.desired = Gauge(f"{PREFIX}_desired_workers", "Workers the last decision asked for",
                             registry=r)
        self.worker_queue = Gauge(f"{PREFIX}_worker_queue", "Tasks waiting for a worker",
                                  registry=r)
        self.qos = Gauge(f"{PREFIX}_qos_window", "QoS rate over the observation window",
                         registry=r)
        self.decisions = Counter(f"{PREFIX}_decisions", "Decisions by guarded worker delta",
                                 ["action"], registry=r)
        self.fallbacks = Counter(f"{PREFIX}_fallbacks", "Hold-the-count fallbacks by reason",
                                 ["reason"], registry=r)
        self.model_info = Gauge(f"{PREFIX}_model_info", "The served policy (value 1)",
                                ["policy", "source", "sha256"], registry=r)
        self.model_loaded = Gauge(f"{PREFIX}_model_loaded_timestamp",
                                  "When the served model was loaded (epoch seconds)", registry=r)
        self.reloads = Counter(f"{PREFIX}_model_reloads", "Model files swapped in", registry=r)
        self.refusals = Counter(f"{PREFIX}_model_reload_refusals",
                                "Replaced model files refused", registry=r)
        self.redis_up = Gauge(f"{PREFIX}_redis_up", "1 while the farm is observed", registry=r)
        self.collected = Counter(f"{PREFIX}_tasks_collected", "Tasks collected since start",
                                 registry=r)
        self.last_ok = 0.0

    def serve_model(self, ident: ModelIdentity) -> None:
        self.model_info.clear()
        self.model_info.labels(ident.policy, ident.source, ident.sha256).set(1)
        self.model_loaded.set(ident.loaded_at)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A scraper that hung up (timeout) is not our error; nothing goes to stderr."""


class MetricsServer:
    """``/metrics`` and ``/healthz`` on ``host:port`` from a daemon thread.

    Binding happens in the constructor, so a port in use is a one-line UserError before the
    controller touches the farm.
    """

    def __init__(self, metrics: ControllerMetrics, port: int, host: str = "0.0.0.0",
                 stale_after: float = 60.0) -> None:
        self.metrics, self.stale_after = metrics, float(stale_after)

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, status, ctype = outer.metrics.render(), 200, CONTENT_TYPE_LATEST
                elif path == "/healthz":
                    age = time.time() - outer.metrics.last_ok
                    ok = age <= outer.stale_after
                    body = (b"ok\n" if ok else f"stale: last observation {age:.0f} s ago\n"
                            .encode())
                    status, ctype = (200 if ok else 503), "text/plain"
                else:
                    body, status, ctype = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        try:
            self.server = _QuietServer((host, int(port)), Handler)
        except OSError as exc:
            raise UserError(f"--metrics-port {port}: cannot listen ({exc.strerror or exc})") from None
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics",
                                        daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()


__all__ = ["ControllerMetrics", "MetricsServer", "PREFIX"]
