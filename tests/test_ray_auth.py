"""Token authentication of ``tune --address`` and ``submit`` (rl_autoscaling.service.ray_auth).

The token lookup is checked against Ray's own ``AuthenticationTokenLoader``. The end-to-end
tests start a head the way the README does (``ray start --head`` with nothing but a token in
``~/.ray/auth_token``, so Ray turns token authentication on by itself) on free ports, with
``HOME`` pointing at a temporary directory: the user's real ``~/.ray/auth_token`` is neither
read nor written. Clients get nothing but a ``HOME`` (a good, a wrong or no token file).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from procs import AUTH_VARS, RayHead, pids_using

from rl_autoscaling.service import ray_auth

ROOT = Path(__file__).resolve().parents[1]


def _home_with_token(root: Path, name: str, token: str | None) -> Path:
    home = root / name
    (home / ".ray").mkdir(parents=True)
    if token is not None:
        (home / ".ray" / "auth_token").write_text(token + "\n")
    return home


# --------------------------------------------------------------------------- lookup rule


@pytest.fixture
def clean_auth_env(monkeypatch, tmp_path):
    for var in AUTH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def _ray_loader_token():
    from ray._raylet import AuthenticationTokenLoader

    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()
    try:
        if not loader.has_token(ignore_auth_mode=True):
            return None
        return loader.get_raw_token(ignore_auth_mode=True)
    finally:
        loader.reset_cache()


def test_token_lookup_follows_rays_loader(clean_auth_env, monkeypatch):
    tmp = clean_auth_env
    assert ray_auth.find_token() is None and _ray_loader_token() is None
    # 4. ~/.ray/auth_token (first line, trimmed)
    home = _home_with_token(tmp, "home", "  file-token  \nsecond line")
    assert ray_auth.find_token() == ray_auth.Token("file-token", str(home / ".ray/auth_token"))
    assert _ray_loader_token() == "file-token"
    # 2. RAY_AUTH_TOKEN_PATH beats the default file
    other = tmp / "elsewhere"
    other.write_text("path-token\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(other))
    assert ray_auth.find_token().value == "path-token" == _ray_loader_token()
    # 1. RAY_AUTH_TOKEN beats both
    monkeypatch.setenv("RAY_AUTH_TOKEN", " env-token ")
    token = ray_auth.find_token()
    assert token.value == "env-token" == _ray_loader_token()
    assert token.source == "$RAY_AUTH_TOKEN" and "env-token" not in token.source
    # RAY_AUTH_TOKEN_PATH set to a missing file is an error (Ray refuses it too)
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp / "missing"))
    with pytest.raises(ray_auth.RayAuthError, match="RAY_AUTH_TOKEN_PATH"):
        ray_auth.find_token()


# --------------------------------------------------------------------------- a token-auth head


def dashboard_status(head: RayHead, headers: dict | None = None) -> int:
    request = urllib.request.Request(f"{head.dashboard}/api/version", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def token_head(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    token = secrets.token_hex(32)
    homes = {"good": _home_with_token(root, "good", token),
             "wrong": _home_with_token(root, "wrong", secrets.token_hex(32)),
             "none": _home_with_token(root, "none", None)}
    # as the README starts it: a token in ~/.ray only
    head = RayHead(home=homes["good"], env={"PYTHONPATH": str(ROOT)}, token=token,
                   token_in_env=False)
    try:
        head.wait_ready()
        # Ray turned token auth on by itself (a token was found): the REST API wants it.
        assert dashboard_status(head) == 401, head.output()
        yield head, homes, token
    finally:
        head.stop()
    assert not pids_using(head.temp_dir), "processes of the test's Ray head survived"


def _run(module: str, args: list[str], home: Path, cwd: Path, timeout: float = 600):
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    env.update({"HOME": str(home), "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr[-3000:])
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.ray
def test_tune_and_submit_refuse_a_missing_or_wrong_token_in_one_line(token_head, tmp_path):
    head, homes, token = token_head
    tune = ["--algo", "sarsa", "--smoke", "--address", head.gcs,
            "--storage-path", str(tmp_path / "tune"), "--output", str(tmp_path / "runs")]
    submit = ["--algo", "sarsa", "--address", head.dashboard, "--smoke"]
    for module, args in (("rl_autoscaling.tune", tune), ("rl_autoscaling.submit", submit)):
        line = _one_error_line(_run(module, args, homes["none"], tmp_path))
        assert "requires an auth token and none was found" in line and "RAY_AUTH_TOKEN" in line
        line = _one_error_line(_run(module, args, homes["wrong"], tmp_path))
        assert "rejected the auth token from" in line
        assert str(homes["wrong"] / ".ray" / "auth_token") in line
        assert token not in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.ray
def test_tune_address_runs_against_a_token_auth_head(token_head, tmp_path):
    head, homes, _ = token_head
    proc = _run("rl_autoscaling.tune",
                ["--algo", "sarsa", "--smoke", "--address", head.gcs,
                 "--storage-path", str(tmp_path / "tune"), "--output", str(tmp_path / "runs")],
                homes["good"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + head.output()
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"best trial run directory: {run_dir}" in proc.stdout


@pytest.mark.ray
def test_submit_runs_a_job_on_a_token_auth_head(token_head, tmp_path):
    head, homes, _ = token_head
    proc = _run("rl_autoscaling.submit",
                ["--algo", "sarsa", "--address", head.dashboard, "--job-id", "auth-e2e",
                 "--smoke", "--storage-path", str(tmp_path / "tune"),
                 "--output", str(tmp_path / "runs")],
                homes["good"], tmp_path)
    detail = proc.stdout[-3000:] + proc.stderr[-3000:] + head.output()
    assert proc.returncode == 0, detail
    assert "job auth-e2e: SUCCEEDED" in proc.stdout, detail
    assert "best trial run directory:" in proc.stdout, detail  # the streamed job logs
