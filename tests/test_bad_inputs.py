"""Every CLI, run as ``python -m rl_autoscaling.<name>``, answers bad input with exit code 2,
one ``error: ...`` line on stderr and no traceback: unwritable or file-as-directory outputs,
missing, truncated or wrong-kind model files, invalid flags and farm configs, and Tune specs
that fail validation (before Ray starts). No case starts Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: a directory nobody (root included) can create anything in
UNWRITABLE = "/sys/rl_autoscaling_no_such_dir"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /sys")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A directory with good and bad model files, configs and a plain file ``afile``."""
    from rl_autoscaling.algorithms.dqn.model import build_q_network, save_dqn_model
    from rl_autoscaling.algorithms.sarsa.tabular import SarsaLambdaLearner
    from rl_autoscaling.env import OpenFaaSAutoscalingEnv

    d = tmp_path_factory.mktemp("bad_inputs")
    (d / "afile").write_text("not a directory\n")
    SarsaLambdaLearner(seed=0).save(d / "sarsa.pkl")
    space = OpenFaaSAutoscalingEnv().observation_space
    net = build_q_network(space.shape[0], [8], 3)
    save_dqn_model(d / "dqn.pt", state_dict=net.state_dict(), obs_low=space.low,
                   obs_high=space.high, hidden_layers=[8], action_size=3)
    for name in ("sarsa.pkl", "dqn.pt"):
        data = (d / name).read_bytes()
        (d / f"trunc_{name}").write_bytes(data[: len(data) // 2])
    (d / "empty.pt").write_bytes(b"")
    (d / "bad.yml").write_text("base_rate: [1\n")
    (d / "badkey.yml").write_text("no_such_key: 1\n")
    (d / "badval.yml").write_text("base_rate: -5\n")
    (d / "notjson.json").write_text("{")
    (d / "plot").mkdir()
    return d


M = "rl_autoscaling."
SMALL = ["--episodes", "1", "--max-steps", "2"]
#: (case id, module, argv, a fragment the message must contain); ``{d}`` is the files dir.
CASES = [
    # ---- output directories
    ("train_sarsa-outdir-file", "train_sarsa", ["--output-dir", "{d}/afile"], "not a directory"),
    ("train_sarsa-outdir-unwritable", "train_sarsa", ["--output-dir", UNWRITABLE], UNWRITABLE),
    ("train_dqn-outdir-file", "train_dqn", ["--output-dir", "{d}/afile"], "not a directory"),
    ("train_dqn-outdir-unwritable", "train_dqn", ["--output-dir", UNWRITABLE], UNWRITABLE),
    ("test_sarsa-outdir-file", "test_sarsa",
     ["--model", "{d}/sarsa.pkl", *SMALL, "--output-dir", "{d}/afile"], "not a directory"),
    ("test_sarsa-output-in-file", "test_sarsa",
     ["--model", "{d}/sarsa.pkl", *SMALL, "--output", "{d}/afile/o.json"], "not a directory"),
    ("test_sarsa-output-unwritable", "test_sarsa",
     ["--model", "{d}/sarsa.pkl", *SMALL, "--output", f"{UNWRITABLE}/o.json"], UNWRITABLE),
    ("test_dqn-outdir-file", "test_dqn",
     ["--model", "{d}/dqn.pt", *SMALL, "--output-dir", "{d}/afile"], "not a directory"),
    ("test_dqn-outdir-unwritable", "test_dqn",
     ["--model", "{d}/dqn.pt", *SMALL, "--output-dir", UNWRITABLE], UNWRITABLE),
    ("compare-outdir-file", "compare_policies",
     ["--agents", "static", *SMALL, "--output-dir", "{d}/afile"], "not a directory"),
    ("compare-outdir-unwritable", "compare_policies",
     ["--agents", "static", *SMALL, "--output-dir", UNWRITABLE], UNWRITABLE),
    ("plot-dir-without-metrics", "plot_training",
     ["{d}/plot", "--output", "{d}/afile/c.png"], ""),
    ("export-not-a-tune-dir", "export", ["{d}/plot", "--output", "{d}/afile"], ""),
    # ---- model files
    ("test_dqn-truncated", "test_dqn", ["--model", "{d}/trunc_dqn.pt"], "trunc_dqn.pt"),
    ("test_dqn-empty", "test_dqn", ["--model", "{d}/empty.pt"], "empty.pt"),
    ("test_dqn-sarsa-pkl", "test_dqn", ["--model", "{d}/sarsa.pkl"],
     "expected a .pt written by train_dqn"),
    ("test_dqn-missing", "test_dqn", ["--model", "{d}/nope.pt"], "nope.pt"),
    ("train_dqn-resume-truncated", "train_dqn", ["--resume-model", "{d}/trunc_dqn.pt"],
     "trunc_dqn.pt"),
    ("train_dqn-resume-sarsa-pkl", "train_dqn", ["--resume-model", "{d}/sarsa.pkl"],
     "expected a .pt written by train_dqn"),
    ("test_sarsa-truncated", "test_sarsa", ["--model", "{d}/trunc_sarsa.pkl"],
     "trunc_sarsa.pkl"),
    ("test_sarsa-dqn-pt", "test_sarsa", ["--model", "{d}/dqn.pt"], "DQN .pt"),
    ("train_sarsa-resume-truncated", "train_sarsa", ["--resume-model", "{d}/trunc_sarsa.pkl"],
     "trunc_sarsa.pkl"),
    ("train_sarsa-resume-dqn-pt", "train_sarsa", ["--resume-model", "{d}/dqn.pt"], "DQN .pt"),
    ("compare-sarsa-model-pt", "compare_policies",
     ["--agents", "sarsa", "--model", "{d}/dqn.pt", *SMALL], "DQN .pt"),
    ("compare-dqn-model-pkl", "compare_policies",
     ["--agents", "dqn", "--dqn-model", "{d}/sarsa.pkl", *SMALL],
     "expected a .pt written by train_dqn"),
    # ---- flags and configs
    ("train_sarsa-initial-workers", "train_sarsa", ["--initial-workers", "0"], "initial_workers"),
    ("train_sarsa-alpha", "train_sarsa", ["--alpha", "-1"], "alpha"),
    ("train_dqn-gamma", "train_dqn", ["--gamma", "2"], "gamma"),
    ("train_sarsa-config-missing", "train_sarsa", ["--config", "{d}/nope.yml"], "nope.yml"),
    ("train_sarsa-config-yaml", "train_sarsa", ["--config", "{d}/bad.yml"], "bad.yml"),
    ("test_sarsa-config-key", "test_sarsa",
     ["--model", "{d}/sarsa.pkl", "--config", "{d}/badkey.yml"], "no_such_key"),
    ("compare-config-value", "compare_policies",
     ["--agents", "static", "--config", "{d}/badval.yml"], "base_rate"),
    ("compare-keda-target-0", "compare_policies",
     ["--agents", "keda", "--keda-target", "0", *SMALL], "--keda-target"),
    ("compare-keda-window-negative", "compare_policies",
     ["--agents", "keda", "--keda-window", "-1", *SMALL], "--keda-window"),
    ("compare-static-workers-0", "compare_policies",
     ["--agents", "static", "--static-workers", "0", *SMALL], "0 workers"),
    ("compare-static-too-many", "compare_policies", ["--agents", "static99", *SMALL],
     "99 workers"),
    ("compare-unknown-agent", "compare_policies", ["--agents", "nope", *SMALL], "nope"),
    ("compare-episodes-0", "compare_policies", ["--agents", "static", "--episodes", "0"],
     "--episodes"),
    ("plot-missing", "plot_training", ["{d}/nope.json"], "nope.json"),
    ("plot-not-json", "plot_training", ["{d}/notjson.json"], "notjson.json"),
    ("export-missing", "export", ["{d}/nope"], "nope"),
    ("farm.local-config", "farm.local",
     ["--redis-url", "redis://127.0.0.1:1/0", "--config", "{d}/badkey.yml"], "no_such_key"),
    ("farm.local-set", "farm.local", ["--redis-url", "redis://127.0.0.1:1/0", "--set", "x"],
     "KEY=VALUE"),
    # ---- Tune: the CLIs' validators, before Ray starts
    ("tune-initial-workers", "tune",
     ["--algo", "sarsa", "--smoke", "--set", "env_config.initial_workers=0"], "initial_workers"),
    ("tune-alpha", "tune", ["--algo", "sarsa", "--smoke", "--set", "training.alpha=-1"],
     "alpha"),
    ("tune-dqn-gamma", "tune", ["--algo", "dqn", "--smoke", "--set", "training.gamma=2"],
     "gamma"),
    ("tune-grid-option", "tune",
     ["--algo", "sarsa", "--smoke", "--set", "training.alpha={{grid: [0.1, 7]}}"], "alpha"),
    ("tune-spec-missing", "tune", ["--algo", "sarsa", "--config", "{d}/nope.yaml"], "nope.yaml"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(case, files, tmp_path):
    _, module, argv, fragment = case
    argv = [a.format(d=files) for a in argv]
    storage = ["--storage-path", str(tmp_path / "tune")] if module == "tune" else []
    proc = subprocess.run([sys.executable, "-m", M + module, *argv, *storage], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=180)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert fragment in lines[0]
    if module == "tune":
        assert not (tmp_path / "tune").exists()  # refused before Ray or Tune started
