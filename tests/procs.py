"""Process and port helpers for tests that start their own Ray heads / clusters."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

HEAD_START_TIMEOUT = 180
#: Ray's client/auth variables, never inherited from the user's environment
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free right now (held open together, then released)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def pids_using(temp_dir: str) -> list[int]:
    """Processes whose command line mentions ``temp_dir`` (a test head's raylet, GCS, workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmdline:
            pids.append(int(entry.name))
    return pids


def kill_pids_using(temp_dir: str, timeout: float = 30.0) -> None:
    """SIGKILL every process whose command line names ``temp_dir`` until none is left."""
    deadline = time.time() + timeout
    while (left := pids_using(temp_dir)) and time.time() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


def stop_ray_head(proc: subprocess.Popen, temp_dir: str) -> None:
    """Stop one test head only: SIGTERM its ``ray start --block`` (which shuts its processes
    down; signalling the whole group at once makes that shutdown hang for a minute), then
    kill its process group and any process still naming its temp dir, and remove the dir."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=30)
    kill_pids_using(temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)


def get_json(url: str, timeout: float = 10, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


class RayHead:
    """``ray start --head --block`` of this interpreter's environment (plus ``env``), in its
    own session, on free ports, with token authentication: ``token`` (default: a new one)
    given to the head in ``RAY_AUTH_TOKEN`` (``auth_env``, for its clients too), or with
    ``token_in_env=False`` only what the head finds itself (e.g. ``home``'s
    ``~/.ray/auth_token``)."""

    def __init__(self, num_cpus: int = 2, home: Path | None = None,
                 env: dict[str, str] | None = None, token: str | None = None,
                 token_in_env: bool = True) -> None:
        # Short path: Ray's unix sockets live under it (107-byte limit on socket paths).
        self.temp_dir = tempfile.mkdtemp(prefix="rlh", dir="/tmp")
        #: the HOME of the head's processes (and so of its jobs); default: this user's
        self.home = home
        (gcs, self.dashboard_port, client, node_manager, object_manager, agent_http,
         agent_grpc, runtime_env_agent, metrics) = free_ports(9)
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.gcs, self.metrics_port = f"127.0.0.1:{gcs}", metrics
        self.token = token or secrets.token_hex(32)
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        self.headers = {"Authorization": f"Bearer {self.token}"}
        bindir = str(Path(sys.executable).parent)
        # The job's entrypoint runs `python`: the head's workers inherit this PATH, so that is
        # this venv's python (with ray and torch), as on a cluster whose image has them.
        self.env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
        self.env.update({"PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
                         "RAY_TMPDIR": self.temp_dir, "RAY_USAGE_STATS_ENABLED": "0",
                         **(self.auth_env if token_in_env else {})})
        self.env.pop("RL_AUTOSCALING_STORAGE", None)
        if home is not None:
            self.env["HOME"] = str(home)
        self.env.update(env or {})
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
               "--disable-usage-stats", f"--num-cpus={num_cpus}", "--num-gpus=0",
               f"--temp-dir={self.temp_dir}", "--node-ip-address=127.0.0.1",
               f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
               f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={client}",
               f"--node-manager-port={node_manager}",
               f"--object-manager-port={object_manager}",
               f"--dashboard-agent-listen-port={agent_http}",
               f"--dashboard-agent-grpc-port={agent_grpc}",
               f"--runtime-env-agent-port={runtime_env_agent}",
               f"--metrics-export-port={metrics}",
               f"--object-store-memory={200 * 1024 * 1024}"]
        self.log = open(Path(self.temp_dir) / "ray_start.out", "w+")
        self.proc = subprocess.Popen(cmd, cwd=self.temp_dir, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        return (Path(self.temp_dir) / "ray_start.out").read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = HEAD_START_TIMEOUT) -> None:
        """Until the Jobs API answers (the dashboard is up and the head node is alive)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}:\n"
                                   + self.output())
            try:
                get_json(f"{self.dashboard}/api/jobs/", timeout=5, headers=self.headers)
                return
            except (OSError, ValueError):
                time.sleep(1)
        raise TimeoutError(f"Ray head not ready after {timeout}s:\n" + self.output())

    def stop(self) -> None:
        """This head only (see procs.stop_ray_head)."""
        stop_ray_head(self.proc, self.temp_dir)
        self.log.close()
