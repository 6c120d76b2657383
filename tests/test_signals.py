"""SIGTERM and SIGHUP behave like Ctrl+C in every CLI (common.errors.signals_interrupt): a
trainer saves its interrupt model and exits non-zero, and the run can be resumed from it; a
program driving a live local farm stops the farm's processes before it exits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rl_autoscaling.common.errors import EXIT_INTERRUPTED, run_guarded, signals_interrupt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    return env


# ---------------------------------------------------------------------------- the mechanism


@pytest.fixture(autouse=True)
def default_sigint():
    """Python's own SIGINT handler for each test: a Tune run earlier in this pytest process
    may have left its graceful-stop handler, which signals_interrupt() would defer to."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signals_raise_keyboard_interrupt_and_handlers_are_restored(sig):
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt):
        with signals_interrupt():
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler interrupts this
    assert signal.getsignal(sig) is before


def test_run_guarded_turns_a_signal_into_exit_130(capsys):
    def work() -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0

    assert run_guarded(work) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "interrupted"


def test_a_second_signal_does_not_cut_the_clean_up_short():
    cleaned = False
    with pytest.raises(KeyboardInterrupt):
        with signals_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                os.kill(os.getpid(), signal.SIGHUP)  # ignored while unwinding
                time.sleep(0.05)
                cleaned = True
    assert cleaned


# ---------------------------------------------------------------------------- trainers


def _run_until(cmd: list[str], log_glob: str, base: Path, marker: str,
               timeout: float) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = list(base.glob(log_glob))
        if logs and marker in logs[0].read_text():
            return proc, logs[0]
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read()[-2000:])
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no {marker!r} within {timeout} s")


def test_sigterm_to_train_sarsa_saves_the_interrupt_model_and_it_resumes(tmp_path):
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "rl_autoscaling.train_sarsa", "--episodes", "1000000",
           "--checkpoint-every", "0", "--eval-episodes", "0", "--output-dir", str(out)]
    proc, log = _run_until(cmd, "sarsa_run_*/logs/training.log", out, "Episode 2/", 240)
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
    model = log.parent.parent / "models" / "sarsa_interrupt.pkl"
    assert model.is_file()
    assert "Training interrupted" in log.read_text()

    again = subprocess.run(
        [sys.executable, "-m", "rl_autoscaling.train_sarsa", "--episodes", "1",
         "--checkpoint-every", "0", "--eval-episodes", "0", "--output-dir", str(tmp_path / "r2"),
         "--resume-model", str(model)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-2000:]
    (log2,) = (tmp_path / "r2").glob("sarsa_run_*/logs/training.log")
    assert f"Resumed {model}" in log2.read_text()


@pytest.mark.ray
def test_sigterm_to_train_dqn_saves_the_interrupt_model_and_it_resumes(tmp_path):
    import torch

    small = ["--max-steps", "10", "--warmup-steps", "10", "--batch-size", "8",
             "--eval-episodes", "0", "--hidden-layers", "16"]
    cmd = [sys.executable, "-m", "rl_autoscaling.train_dqn", "--episodes", "500", *small,
           "--output-dir", str(tmp_path / "r1")]
    proc, log = _run_until(cmd, "dqn_run_*/logs/training.log", tmp_path / "r1", "Episode 2/500 ",
                           240)
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
    model = log.parent.parent / "models" / "dqn_interrupt.pt"
    saved = torch.load(model, weights_only=True)
    assert saved["episode"] >= 2

    again = subprocess.run(
        [sys.executable, "-m", "rl_autoscaling.train_dqn", "--episodes", "1", *small,
         "--checkpoint-every", "0", "--output-dir", str(tmp_path / "r2"),
         "--resume-model", str(model)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    (log2,) = (tmp_path / "r2").glob("dqn_run_*/logs/training.log")
    assert f"Resumed online and target Q-network weights from {model}" in log2.read_text()


# ---------------------------------------------------------------------------- live farm


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_test_sarsa_on_a_live_local_farm_stops_the_farm(tmp_path, sig):
    from procs import pids_using
    from redis_server import RedisServer

    from rl_autoscaling.algorithms.sarsa.tabular import SarsaLambdaLearner

    model = SarsaLambdaLearner(seed=0).save(tmp_path / "sarsa.pkl")
    prefix = f"sigtest-{os.getpid()}-{sig}:"
    srv = RedisServer().start()
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rl_autoscaling.test_sarsa", "--model", str(model),
             "--episodes", "1", "--max-steps", "200", "--initial-workers", "2", "--no-plots",
             "--quiet", "--backend", "live", "--scaler", "local", "--redis-url", srv.url,
             "--key-prefix", prefix, "--time-scale", "0.2",
             "--output", str(tmp_path / "out.json")],
            cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while len(set(pids_using(prefix)) - {proc.pid}) < 3:  # collector, emitter, workers
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the live farm did not start"
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
        assert "Traceback" not in err
        time.sleep(5.0)
        assert pids_using(prefix) == []
        assert not (tmp_path / "out.json").exists()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        for pid in pids_using(prefix):
            os.kill(pid, signal.SIGKILL)
        srv.stop()


def test_sigterm_to_farm_local_stops_the_farm(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    from procs import pids_using
    from redis_server import RedisServer

    prefix = f"sigfarm-{os.getpid()}:"
    srv = RedisServer().start()
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rl_autoscaling.farm.local", "--redis-url", srv.url,
             "--workers", "2", "--time-scale", "0.2", "--key-prefix", prefix],
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(set(pids_using(prefix)) - {proc.pid}) < 3:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
        assert json.loads(out or "null") is None  # no summary of an unfinished episode
        time.sleep(5.0)
        assert pids_using(prefix) == []
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        for pid in pids_using(prefix):
            os.kill(pid, signal.SIGKILL)
        srv.stop()
