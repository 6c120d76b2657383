"""`python -m rl_autoscaling.submit` end to end: a real Ray head (started here with `ray start
--head` on free ports, dashboard on), a smoke experiment submitted as a Ray job, the job in the
dashboard's job list, the results in the head's persistent default storage path (its user's
``~/ray_results/rl_autoscaling``; the head gets a home of its own here) and fetched back with
``--fetch``; then that head (and only it) is stopped. The fast tests at the end cover the
entrypoint's shell, the upload of an installed package and the fetch rules without Ray.

The head never touches Ray's default ports (6379 belongs to the machine's Redis) nor the
default temp dir: it gets its own short ``--temp-dir`` and every port is picked free here. It
runs with Ray's token authentication (the default of a new cluster in this Ray version) using a
token made for the test and handed to the head and the submitter through ``RAY_AUTH_TOKEN``;
``~/.ray/auth_token`` is neither read nor written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from procs import RayHead, get_json, pids_using

ROOT = Path(__file__).resolve().parents[1]
JOB_TIMEOUT = 600


@pytest.fixture
def ray_head(tmp_path):
    head = RayHead(home=tmp_path / "head_home")
    try:
        head.wait_ready()
        yield head
    finally:
        head.stop()
    assert not pids_using(head.temp_dir), "processes of the test's Ray head survived"


@pytest.mark.ray
@pytest.mark.slow
def test_submit_runs_a_smoke_experiment_as_a_ray_job(ray_head, tmp_path):
    job_id = f"rl-autoscaling-e2e-{uuid.uuid4().hex[:8]}"
    # README: without --storage-path, results go to ~/ray_results/rl_autoscaling on the head
    storage = ray_head.home / "ray_results" / "rl_autoscaling"
    fetched = tmp_path / "fetched"
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0",
           **ray_head.auth_env}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    cmd = [sys.executable, "-m", "rl_autoscaling.submit", "--address", ray_head.dashboard,
           "--algo", "sarsa", "--job-id", job_id, "--fetch", str(fetched),
           # tune arguments, passed through to the job's `python -m rl_autoscaling.tune`
           "--smoke"]
    proc = subprocess.run(cmd, cwd=client_dir, env=env, capture_output=True, text=True,
                          timeout=JOB_TIMEOUT)
    detail = (f"submit stdout:\n{proc.stdout[-4000:]}\nsubmit stderr:\n{proc.stderr[-3000:]}"
              f"\nhead:\n{ray_head.output()}")
    assert proc.returncode == 0, detail
    assert f"submitted job {job_id}" in proc.stdout, detail
    assert f"job {job_id}: SUCCEEDED" in proc.stdout, detail
    # The job's logs were streamed back: where the head put the results, the tune summary.
    assert f"rl_autoscaling storage path: {storage}" in proc.stdout, detail
    assert "best trial run directory:" in proc.stdout, detail

    # The dashboard's job list knows the job, its entrypoint and metadata.
    jobs = get_json(f"{ray_head.dashboard}/api/jobs/", headers=ray_head.headers)
    (job,) = [j for j in jobs if j.get("submission_id") == job_id]
    assert job["status"] == "SUCCEEDED"
    assert "exec python -m rl_autoscaling.tune --algo sarsa --address auto" in job["entrypoint"]
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
        get_json(f"{ray_head.dashboard}/api/jobs/")
    assert denied.value.code in (401, 403)

    # The experiment's artefacts, in the persistent storage path and not in the job's
    # working_dir cache (nor in the submitting directory): a Tune trial with checkpoints ...
    (trial,) = [p for p in (storage / "sarsa").iterdir() if p.is_dir()]
    assert sorted(trial.glob("checkpoint_*")) and (trial / "result.json").exists()
    assert not list(Path(ray_head.temp_dir).rglob("runtime_resources/**/runs"))
    assert not list(client_dir.iterdir())
    # ... and its exported run under <storage>/runs, named in submit's summary ...
    (run_dir,) = (storage / "runs").iterdir()
    assert run_dir.name.startswith("sarsa_run_")
    assert f"best trial run directory: {run_dir}" in proc.stdout
    assert f"exported run on the head: {run_dir}" in proc.stdout
    # ... fetched back to this machine by --fetch.
    (local,) = fetched.iterdir()
    assert local.name == run_dir.name and f"fetched {local}" in proc.stdout
    for tree in (run_dir, local):
        training = json.loads((tree / "training_metrics.json").read_text())["episodes"]
        assert [r["episode"] for r in training] == list(range(1, len(training) + 1))
        assert training
        assert json.loads((tree / "evaluation_metrics.json").read_text())["checkpoints"]
        models = {p.name for p in (tree / "models").iterdir()}
        assert "sarsa_final.pkl" in models and any(m.startswith("sarsa_ep") for m in models)
        assert (tree / "plots" / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tree / "logs" / "training.log").read_text().startswith("Episode 1/")


@pytest.mark.ray
@pytest.mark.slow
def test_submit_from_an_installed_wheel_uploads_the_package(ray_head, installed_wheel,
                                                            tmp_path):
    """No source tree: the installed package goes up as py_modules; an explicit storage path
    is used as given and --fetch brings the run back."""
    storage, fetched = tmp_path / "tune", tmp_path / "fetched"
    env = {**os.environ, "PYTHONPATH": str(installed_wheel), "RAY_USAGE_STATS_ENABLED": "0",
           **ray_head.auth_env}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    cmd = [sys.executable, "-m", "rl_autoscaling.submit", "--address", ray_head.dashboard,
           "--algo", "sarsa", "--job-id", "wheel-e2e", "--storage-path", str(storage),
           "--fetch", str(fetched), "--smoke"]
    proc = subprocess.run(cmd, cwd="/", env=env, capture_output=True, text=True,
                          timeout=JOB_TIMEOUT)
    detail = f"{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}\nhead:\n{ray_head.output()}"
    assert proc.returncode == 0 and "job wheel-e2e: SUCCEEDED" in proc.stdout, detail
    (job,) = [j for j in get_json(f"{ray_head.dashboard}/api/jobs/", headers=ray_head.headers)
              if j.get("submission_id") == "wheel-e2e"]
    assert "working_dir" not in job["runtime_env"]
    (module,) = job["runtime_env"]["py_modules"]
    assert module.startswith("gcs://")
    (run_dir,) = (storage / "runs").iterdir()
    (local,) = fetched.iterdir()
    assert local.name == run_dir.name and (local / "training_metrics.json").exists()
    assert not (ray_head.home / "ray_results").exists()
    # py_modules comes first on the job's path, ahead of the head's own install of the package
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head.dashboard, headers=ray_head.headers)
    probe = client.submit_job(
        entrypoint='python -c "import rl_autoscaling; print(rl_autoscaling.__file__)"',
        runtime_env={"py_modules": [str(installed_wheel / "rl_autoscaling")]})
    deadline = time.time() + 120
    while client.get_job_status(probe).value not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.time() < deadline
        time.sleep(1)
    printed = client.get_job_logs(probe).strip().splitlines()[-1]
    assert "runtime_resources/py_modules_files/" in printed, printed


# --------------------------------------------------------------------------- without Ray


def _fake_python(tmp_path: Path) -> dict:
    """An environment whose ``python`` prints its arguments, one per line."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "python"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "arg:$a"; done\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "RL_AUTOSCALING_STORAGE"}
    return {**env, "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}"}


def _run_entrypoint(entrypoint: str, env: dict) -> tuple[str, list[str]]:
    """Run a job entrypoint as Ray's job supervisor does (``shell=True``)."""
    out = subprocess.run(entrypoint, shell=True, env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    storage = [line for line in out if not line.startswith("arg:")]
    return "\n".join(storage), [line[4:] for line in out if line.startswith("arg:")]


def test_entrypoint_default_storage_is_the_heads_env_var_or_its_home(tmp_path):
    from rl_autoscaling.service.submit import STORAGE_ENV, build_entrypoint

    entry = build_entrypoint("sarsa", ["--smoke", "--set", "training.alpha=0.1 ; rm x"])
    env = {**_fake_python(tmp_path), "HOME": "/home/someone"}
    echoed, args = _run_entrypoint(entry, env)
    default = "/home/someone/ray_results/rl_autoscaling"
    assert echoed == f"rl_autoscaling storage path: {default}"
    assert args == ["-m", "rl_autoscaling.tune", "--algo", "sarsa", "--address", "auto",
                    "--storage-path", default, "--output", f"{default}/runs",
                    "--smoke", "--set", "training.alpha=0.1 ; rm x"]
    echoed, args = _run_entrypoint(entry, {**env, STORAGE_ENV: "/data/tune"})
    assert echoed.endswith(": /data/tune")
    assert args[6:10] == ["--storage-path", "/data/tune", "--output", "/data/tune/runs"]
    # An explicit path is used as given, with no shell expansion.
    entry = build_entrypoint("dqn", [], "/srv/$USER tune", None)
    assert entry.startswith("python -m rl_autoscaling.tune --algo dqn --address auto")
    echoed, args = _run_entrypoint(entry, env)
    assert args[6:10] == ["--storage-path", "/srv/$USER tune", "--output", "/srv/$USER tune/runs"]


def test_an_installed_package_is_uploaded_as_py_modules():
    from rl_autoscaling.service import submit

    assert submit.build_runtime_env(True, None)["py_modules"] == [str(submit.PACKAGE_DIR)]
    assert (submit.PACKAGE_DIR / "__init__.py").is_file()
    env = submit.build_runtime_env(True, ROOT)
    assert env["working_dir"] == str(ROOT) and "py_modules" not in env
    assert submit.is_source_checkout(ROOT)
    assert not submit.is_source_checkout(submit.PACKAGE_DIR)  # e.g. site-packages/..
    assert set(submit.build_runtime_env(False, ROOT)) == {"env_vars"}


def test_fetch_copies_reachable_runs_and_names_unreachable_ones(tmp_path):
    from rl_autoscaling.service.submit import exported_runs, fetch_runs

    run, trial = tmp_path / "head" / "runs" / "sarsa_run_1", tmp_path / "head" / "sarsa" / "T_0"
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "tune_trial.txt").write_text(f"{trial}\n")
    (run / "training_metrics.json").write_text("{}")
    logs = f"noise\nexported {trial} -> {run}\nbest trial run directory: {run}\n"
    assert exported_runs(logs) == {str(run): str(trial)}
    (copied,) = fetch_runs(exported_runs(logs), tmp_path / "dest")
    assert copied == tmp_path / "dest" / "sarsa_run_1"
    assert (copied / "training_metrics.json").read_text() == "{}"
    # a run directory of another trial (or none at all) is not fetched
    with pytest.raises(FileNotFoundError):
        fetch_runs({str(run): "/elsewhere/T_9"}, tmp_path / "dest2")
    with pytest.raises(FileNotFoundError):
        fetch_runs({"/nonexistent/sarsa_run_2": str(trial)}, tmp_path / "dest2")
    assert not (tmp_path / "dest2").exists()


@pytest.mark.parametrize("args, message", [
    (["--storage-path", "runs/tune"], "must be absolute"),
    (["--output", "runs"], "must be an absolute path on the head"),
    (["--storage-path", "s3://bucket/tune"], "give --output"),
    (["--fetch", "x", "--no-wait"], "drop --no-wait"),
])
def test_bad_path_options_are_one_line_errors(args, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rl_autoscaling.submit", "--address",
                           "http://127.0.0.1:9", "--algo", "sarsa", *args], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
