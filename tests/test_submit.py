"""`python -m rl_autoscaling.submit` end to end: a real Ray head (started here with `ray start
--head` on free ports, dashboard on), a smoke experiment submitted as a Ray job, the job in the
dashboard's job list, the exported artefacts on disk; then that head (and only it) is stopped.

The head never touches Ray's default ports (6379 belongs to the machine's Redis) nor the
default temp dir: it gets its own short ``--temp-dir`` and every port is picked free here. It
runs with Ray's token authentication (the default of a new cluster in this Ray version) using a
token made for the test and handed to the head and the submitter through ``RAY_AUTH_TOKEN``;
``~/.ray/auth_token`` is neither read nor written.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from procs import free_ports, pids_using, stop_ray_head

ROOT = Path(__file__).resolve().parents[1]
HEAD_START_TIMEOUT = 180
JOB_TIMEOUT = 600


def _get_json(url: str, timeout: float = 10, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


class RayHead:
    """``ray start --head --block`` of this interpreter's environment, in its own session."""

    def __init__(self, num_cpus: int = 2) -> None:
        # Short path: Ray's unix sockets live under it (107-byte limit on socket paths).
        self.temp_dir = tempfile.mkdtemp(prefix="rlh", dir="/tmp")
        (gcs, self.dashboard_port, client, node_manager, object_manager, agent_http,
         agent_grpc, runtime_env_agent, metrics) = free_ports(9)
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.token = secrets.token_hex(32)
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        self.headers = {"Authorization": f"Bearer {self.token}"}
        bindir = str(Path(sys.executable).parent)
        # The job's entrypoint runs `python`: the head's workers inherit this PATH, so that is
        # this venv's python (with ray and torch), as on a cluster whose image has them.
        self.env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
                    "RAY_TMPDIR": self.temp_dir, "RAY_USAGE_STATS_ENABLED": "0",
                    **self.auth_env}
        self.env.pop("RAY_ADDRESS", None)
        self.env.pop("RAY_AUTH_TOKEN_PATH", None)
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
                _get_json(f"{self.dashboard}/api/jobs/", timeout=5, headers=self.headers)
                return
            except (OSError, ValueError):
                time.sleep(1)
        raise TimeoutError(f"Ray head not ready after {timeout}s:\n" + self.output())

    def stop(self) -> None:
        """This head only (see procs.stop_ray_head)."""
        stop_ray_head(self.proc, self.temp_dir)
        self.log.close()


@pytest.fixture
def ray_head():
    head = RayHead()
    try:
        head.wait_ready()
        yield head
    finally:
        head.stop()
    assert not pids_using(head.temp_dir), "processes of the test's Ray head survived"


@pytest.mark.ray
def test_submit_runs_a_smoke_experiment_as_a_ray_job(ray_head, tmp_path):
    job_id = f"rl-autoscaling-e2e-{uuid.uuid4().hex[:8]}"
    storage, output = tmp_path / "tune", tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0",
           **ray_head.auth_env}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    cmd = [sys.executable, "-m", "rl_autoscaling.submit", "--address", ray_head.dashboard,
           "--algo", "sarsa", "--job-id", job_id,
           # tune arguments, passed through to the job's `python -m rl_autoscaling.tune`
           "--smoke", "--storage-path", str(storage), "--output", str(output)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=JOB_TIMEOUT)
    detail = (f"submit stdout:\n{proc.stdout[-4000:]}\nsubmit stderr:\n{proc.stderr[-3000:]}"
              f"\nhead:\n{ray_head.output()}")
    assert proc.returncode == 0, detail
    assert f"submitted job {job_id}" in proc.stdout, detail
    assert f"job {job_id}: SUCCEEDED" in proc.stdout, detail
    # The job's logs were streamed back: the tune CLI's summary line is in them.
    assert "best trial run directory:" in proc.stdout, detail

    # The dashboard's job list knows the job, its entrypoint and metadata.
    jobs = _get_json(f"{ray_head.dashboard}/api/jobs/", headers=ray_head.headers)
    (job,) = [j for j in jobs if j.get("submission_id") == job_id]
    assert job["status"] == "SUCCEEDED"
    assert job["entrypoint"].startswith("python -m rl_autoscaling.tune --algo sarsa "
                                        "--address auto")
    assert "--smoke" in job["entrypoint"]
    assert job["metadata"] == {"app": "rl_autoscaling", "algo": "sarsa"}
    assert job["runtime_env"]["working_dir"].startswith(("gcs://", "_ray_pkg"))
    # ... and so does the Jobs SDK.
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray_head.dashboard, headers=ray_head.headers)
    assert client.get_job_status(job_id) == JobStatus.SUCCEEDED
    assert job_id in {j.submission_id for j in client.list_jobs()}
    # The head does require the token.
    with pytest.raises(urllib.error.HTTPError) as denied:
        _get_json(f"{ray_head.dashboard}/api/jobs/")
    assert denied.value.code in (401, 403)

    # The experiment's artefacts: a Tune trial with checkpoints and the exported run.
    (trial,) = [p for p in (storage / "sarsa").iterdir() if p.is_dir()]
    assert sorted(trial.glob("checkpoint_*")) and (trial / "result.json").exists()
    (run_dir,) = output.iterdir()
    assert run_dir.name.startswith("sarsa_run_")
    assert f"best trial run directory: {run_dir}" in proc.stdout
    training = json.loads((run_dir / "training_metrics.json").read_text())["episodes"]
    assert [r["episode"] for r in training] == list(range(1, len(training) + 1)) and training
    assert json.loads((run_dir / "evaluation_metrics.json").read_text())["checkpoints"]
    models = {p.name for p in (run_dir / "models").iterdir()}
    assert "sarsa_final.pkl" in models and any(m.startswith("sarsa_ep") for m in models)
    assert (run_dir / "plots" / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "logs" / "training.log").read_text().startswith("Episode 1/")
