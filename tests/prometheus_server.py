"""A throwaway Prometheus server (Debian's ``prometheus``; CI installs it in ``.ci/run``) on a
free port, with its config, storage and log in a given directory, scraping given targets every
second; queried through its HTTP API. ``start()`` returns at once (so it can come up while the
scraped process does); ``wait_ready()`` and ``wait_scraped()`` wait. As a context manager:
started and ready, stopped on exit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
from pathlib import Path

from procs import free_ports, get_json

PROMETHEUS = shutil.which("prometheus", path=os.environ.get("PATH", "") + os.pathsep + "/usr/bin")


class PrometheusServer:
    """``prometheus`` scraping ``targets`` (``host:port``) every ``interval``, in ``root``."""

    def __init__(self, targets: list[str], root: Path, interval: str = "1s") -> None:
        if PROMETHEUS is None:
            raise RuntimeError("prometheus is not installed (apt-get install -y prometheus)")
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / "prometheus.log"
        (root / "prometheus.yml").write_text(json.dumps({  # YAML is a superset of JSON
            "global": {"scrape_interval": interval, "scrape_timeout": interval,
                       "evaluation_interval": interval},
            "scrape_configs": [{"job_name": "test", "static_configs": [{"targets": targets}]}],
        }))
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrometheusServer:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.root / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited ({self.proc.returncode}):\n{self.output()}")
            try:
                get_json(f"{self.url}/api/v1/status/buildinfo", timeout=2)
                return
            except (OSError, ValueError):
                time.sleep(0.2)
        raise TimeoutError(f"prometheus did not become ready:\n{self.output()}")

    def wait_scraped(self, timeout: float = 60) -> None:
        """Until every target has been scraped successfully."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            targets = self.get("targets")["activeTargets"]
            if targets and all(t["health"] == "up" for t in targets):
                return
            time.sleep(0.5)
        raise TimeoutError(f"the targets were never scraped: {self.get('targets')}")

    def get(self, path: str, **params) -> dict | list:
        """The ``data`` of ``/api/v1/<path>?<params>``."""
        query = urllib.parse.urlencode(params)
        try:
            answer = get_json(f"{self.url}/api/v1/{path}?{query}")
        except urllib.error.HTTPError as exc:  # a bad query: Prometheus says why
            raise AssertionError(f"{path} {params}: {exc.read().decode()}") from None
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, promql: str) -> list[dict]:
        """The ``result`` of an instant query (now)."""
        return self.get("query", query=promql)["result"]

    def query_range(self, promql: str, start: float, end: float, step: float = 1) -> list[dict]:
        """The ``result`` of a range query (as Grafana's panels ask)."""
        return self.get("query_range", query=promql, start=start, end=end, step=step)["result"]

    def output(self) -> str:
        """The end of Prometheus's log (for failure messages)."""
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> PrometheusServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
