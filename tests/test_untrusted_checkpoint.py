"""RLlib checkpoints are pickles: they are never loaded implicitly. A poisoned checkpoint (its
``.pkl`` files replaced by a payload that creates a marker file when unpickled) beside a
``.pt`` model runs no code on ``train_dqn --resume-model x.pt`` or ``test_dqn``; loading the
directory itself needs ``--trust-checkpoint`` and is refused in one line otherwise."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def poison(ckpt: Path, marker: Path) -> int:
    """Replace every ``.pkl`` under ``ckpt`` by the payload; returns how many."""
    files = list(ckpt.rglob("*.pkl"))
    for f in files:
        f.write_bytes(pickle.dumps(_Payload(marker)))
    return len(files)


def _assert_refused(proc: subprocess.CompletedProcess, path: Path) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert str(path) in lines[0] and "--trust-checkpoint" in lines[0]


@pytest.fixture
def fake_run(tmp_path):
    """A .pt model (right shapes, random weights) and a poisoned ``_rllib`` dir beside it."""
    from rl_autoscaling.algorithms.dqn.model import build_q_network, save_dqn_model
    from rl_autoscaling.env import OpenFaaSAutoscalingEnv

    env = OpenFaaSAutoscalingEnv.from_env_config({})
    low, high = env.observation_space.low, env.observation_space.high
    env.close()
    models = tmp_path / "models"
    net = build_q_network(len(low), [16], 3)
    pt = save_dqn_model(models / "dqn_final.pt", state_dict=net.state_dict(), obs_low=low,
                        obs_high=high, hidden_layers=[16], action_size=3,
                        rllib_checkpoint="dqn_final_rllib")
    ckpt = models / "dqn_final_rllib"
    for rel in ("algorithm_state.pkl", "class_and_ctor_args.pkl",
                "learner_group/learner/rl_module/default_policy/module_state.pkl"):
        (ckpt / rel).parent.mkdir(parents=True, exist_ok=True)
        (ckpt / rel).write_bytes(b"")
    marker = tmp_path / "PWNED"
    assert poison(ckpt, marker) == 3
    return pt, ckpt, marker


def test_test_dqn_reads_the_pt_and_never_the_checkpoint_beside_it(fake_run, tmp_path):
    pt, _, marker = fake_run
    proc = _cli("rl_autoscaling.test_dqn", "--model", str(pt), "--episodes", "1",
                "--max-steps", "3", "--no-plots", "--quiet", "--output", str(tmp_path / "o.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists()


def test_test_dqn_refuses_a_checkpoint_directory_without_trust(fake_run, tmp_path):
    _, ckpt, marker = fake_run
    proc = _cli("rl_autoscaling.test_dqn", "--model", str(ckpt), "--output",
                str(tmp_path / "o.json"))
    _assert_refused(proc, ckpt)
    assert not marker.exists()


def test_train_dqn_refuses_a_checkpoint_directory_without_trust(fake_run, tmp_path):
    _, ckpt, marker = fake_run
    proc = _cli("rl_autoscaling.train_dqn", "--resume-model", str(ckpt), "--output-dir",
                str(tmp_path / "runs"))
    _assert_refused(proc, ckpt)
    assert not marker.exists() and not (tmp_path / "runs").exists()  # before anything started


@pytest.mark.ray
def test_resume_from_a_pt_never_loads_the_poisoned_rllib_checkpoint(tmp_path):
    small = ["--max-steps", "5", "--warmup-steps", "5", "--batch-size", "4", "--eval-episodes",
             "0", "--hidden-layers", "8", "--checkpoint-every", "0"]
    first = _cli("rl_autoscaling.train_dqn", "--episodes", "1", *small, "--output-dir",
                 str(tmp_path / "r1"))
    assert first.returncode == 0, first.stderr[-2000:]
    (models,) = (tmp_path / "r1").glob("dqn_run_*/models")
    pt, ckpt = models / "dqn_final.pt", models / "dqn_final_rllib"
    marker = tmp_path / "PWNED"
    assert poison(ckpt, marker) > 0

    resumed = _cli("rl_autoscaling.train_dqn", "--episodes", "1", *small, "--output-dir",
                   str(tmp_path / "r2"), "--resume-model", str(pt))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not marker.exists()
    (log,) = (tmp_path / "r2").glob("dqn_run_*/logs/training.log")
    assert "Resumed online and target Q-network weights" in log.read_text()

    _assert_refused(_cli("rl_autoscaling.test_dqn", "--model", str(ckpt), "--output",
                         str(tmp_path / "o.json")), ckpt)
    assert not marker.exists()
