"""A throwaway Prometheus server (Debian's ``/usr/bin/prometheus``) on a free port with a temp
config and storage directory, scraping given targets every second; queried through its HTTP
API. Use as a context manager."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from redis_server import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


class PrometheusServer:
    """``prometheus`` scraping ``targets`` (``host:port``) every ``interval``."""

    def __init__(self, targets: list[str], interval: str = "1s") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="rl_prom_"))
        (self.dir / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": interval, "scrape_timeout": interval},
            "scrape_configs": [{"job_name": "serve", "static_configs": [{"targets": targets}]}],
        }))
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrometheusServer:
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "wb"),
            start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError as exc:
                if self.proc.poll() is not None:
                    log = (self.dir / "log").read_text()[-500:]
                    raise RuntimeError(f"prometheus exited: {log}") from exc
                time.sleep(0.1)
        raise RuntimeError("prometheus did not become ready")

    def query(self, promql: str) -> list[dict]:
        """The ``result`` of an instant query."""
        q = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5) as resp:
            data = json.loads(resp.read())
        assert data["status"] == "success", data
        return data["data"]["result"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
