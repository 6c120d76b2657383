"""OpenFaaS entry points for the farm's functions.

One image serves the three functions; ``FARM_ROLE`` (``emitter``, ``worker``, ``collector``)
picks the role, ``REDIS_URL``, ``TIME_SCALE``, ``FARM_KEY_PREFIX`` (the farm's Redis key
namespace, default none) and ``FARM_CONFIG_FILE`` configure it, and the
pod name (``$HOSTNAME`` on Kubernetes) is the worker's ``pod_name`` in START and ACK messages,
which is what ``KubernetesScaler`` annotates.

Two ways to run it:

* ``python -m rl_autoscaling.farm.functions.handler`` (the image's default): the of-watchdog
  ``http`` mode upstream. It starts the role's loop in a background thread at once (every
  replica of the worker Deployment is one worker) and serves ``GET /`` (status JSON, also used
  as the health check) and ``POST /`` (``{"action": "start"}`` restarts a stopped loop) on
  ``$PORT`` (5000).
* ``handle(body)``: the classic ``python3`` template signature; runs the role given in the
  JSON body (or ``FARM_ROLE``) until it stops and returns a JSON summary - meant for
  ``/async-function/<name>`` invocations.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import collector, emitter, worker
from .lifecycle import registered
from .protocol import FunctionContext, LiveFarmError

RUNNERS = {"emitter": emitter.run, "worker": worker.run, "collector": collector.run}


def _role(requested: str | None = None) -> str:
    role = (requested or os.environ.get("FARM_ROLE", "worker")).strip().lower()
    if role not in RUNNERS:
        raise ValueError(f"FARM_ROLE must be one of {', '.join(RUNNERS)}, got {role!r}")
    return role


def handle(req: str | bytes = "") -> str:
    """Run one role's loop until TERMINATE / SCALE_DOWN; returns ``{"role", "pod", "outcome"}``."""
    body = json.loads(req) if req and str(req).strip() else {}
    role = _role(body.get("role"))
    ctx = FunctionContext.from_env(role, body.get("redis_url"), body.get("pod_name"),
                                   body.get("time_scale"), body.get("key_prefix"))
    try:
        with registered(ctx, role):
            outcome = RUNNERS[role](ctx)
    except LiveFarmError as exc:
        outcome = f"error: {exc}"
    return json.dumps({"role": role, "pod": ctx.name, "outcome": outcome})


class _Loop:
    """The role's loop in a background thread; restartable after it stopped."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.ctx = FunctionContext.from_env(role)
        self.outcome: str | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> bool:
        if self.thread is not None and self.thread.is_alive():
            return False
        self.outcome = None

        def run() -> None:
            try:
                with registered(self.ctx, self.role):
                    self.outcome = RUNNERS[self.role](self.ctx)
            except Exception as exc:  # noqa: BLE001 - report it on GET /
                self.outcome = f"error: {exc}"

        self.thread = threading.Thread(target=run, name=f"farm-{self.role}", daemon=True)
        self.thread.start()
        return True

    def status(self) -> dict:
        running = self.thread is not None and self.thread.is_alive()
        return {"role": self.role, "pod": self.ctx.name, "running": running,
                "outcome": self.outcome}


def serve(port: int | None = None) -> None:
    """The of-watchdog upstream: start the loop, then serve status/start requests."""
    loop = _Loop(_role())
    loop.start()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, payload: dict, status: int = 200) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._reply(loop.status())

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            started = loop.start() if body.get("action", "start") == "start" else False
            self._reply({**loop.status(), "started": started})

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", int(port or os.environ.get("PORT", "5000"))), Handler)
    server.serve_forever()


if __name__ == "__main__":
    serve()
