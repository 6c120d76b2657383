"""train_dqn / test_dqn command lines: the seed README command, artefacts, resume, Ctrl+C."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rl_autoscaling import test_dqn, train_dqn

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]

# The seed README's train_dqn command, verbatim but for the module path.
README_TRAIN = """
  --episodes 120 --max-steps 30 --step-duration 8 --observation-window 8 --initial-workers 12
  --learning-rate 1e-3 --replay-capacity 50000 --batch-size 64 --target-update 500
  --target-tau 0.01 --epsilon-start 0.4 --epsilon-end 0.05 --epsilon-decay 0.995
  --eval-episodes 3
""".split()

EPISODE_KEYS = {"episode", "steps", "total_reward", "mean_qos", "final_qos", "processed_tasks",
                "epsilon", "scale_up_count", "scale_down_count", "noop_count", "max_workers",
                "mean_workers", "qos_violations", "unfinished_tasks"}


def _shorten(argv, **flags):
    argv = list(argv)
    for flag, value in flags.items():
        name = "--" + flag.replace("_", "-")
        if name in argv:
            argv[argv.index(name) + 1] = str(value)
        else:
            argv += [name, str(value)]
    return argv


def _run_dir(base: Path) -> Path:
    (run,) = list(base.glob("dqn_run_*"))
    return run


def test_seed_readme_command_runs_as_written(ray_local, tmp_path):
    argv = _shorten(README_TRAIN, episodes=2, output_dir=tmp_path)
    assert train_dqn.main(argv) == 0
    run = _run_dir(tmp_path)
    for rel in ("logs/training.log", "models/dqn_final.pt", "models/dqn_final_rllib",
                "training_metrics.json", "evaluation_metrics.json",
                "plots/training_curves.png"):
        assert (run / rel).exists(), rel
    episodes = json.loads((run / "training_metrics.json").read_text())["episodes"]
    assert [e["episode"] for e in episodes] == [1, 2]
    assert all(EPISODE_KEYS <= set(e) for e in episodes)
    assert episodes[0]["epsilon"] == pytest.approx(0.4)
    (final_eval,) = json.loads((run / "evaluation_metrics.json").read_text())["checkpoints"]
    assert final_eval["episode"] == 2 and final_eval["eval_episodes"] == 3
    model = torch.load(run / "models" / "dqn_final.pt", weights_only=True)
    assert model["hyperparams"]["learning_rate"] == 1e-3
    assert model["hyperparams"]["replay_capacity"] == 50000
    assert model["hyperparams"]["target_update"] == 500
    assert model["hidden_layers"] == [128, 64] and model["rllib_checkpoint"] == "dqn_final_rllib"
    log = (run / "logs" / "training.log").read_text()
    assert "Episode 1/2 " in log and "Final evaluation" in log


def test_training_learns_checkpoints_resumes_and_tests(ray_local, tmp_path, capsys):
    base = tmp_path / "first"
    argv = ["--episodes", "3", "--max-steps", "10", "--warmup-steps", "12", "--batch-size",
            "8", "--checkpoint-every", "2", "--eval-episodes", "1", "--hidden-layers", "32",
            "16", "--output-dir", str(base)]
    assert train_dqn.main(argv) == 0
    run = _run_dir(base)
    models = run / "models"
    assert sorted(p.name for p in models.glob("*.pt")) == ["dqn_best.pt", "dqn_ep0002.pt",
                                                            "dqn_final.pt"]
    episodes = json.loads((run / "training_metrics.json").read_text())["episodes"]
    assert "mean_loss" in episodes[-1] and episodes[-1]["mean_loss"] >= 0
    evals = json.loads((run / "evaluation_metrics.json").read_text())["checkpoints"]
    assert [e["episode"] for e in evals] == [2, 3]  # checkpoint, then the end

    # Resume from the .pt, trusting the RLlib checkpoint beside it: it restores the learner.
    base2 = tmp_path / "resumed"
    assert train_dqn.main(argv[:-1] + [str(base2), "--resume-model",
                                       str(models / "dqn_final.pt"), "--trust-checkpoint"]) == 0
    log = (_run_dir(base2) / "logs" / "training.log").read_text()
    assert "Resumed learner state" in log
    # ... and the replay buffer the checkpoint was saved with
    saved = re.search(r"dqn_final_rllib holds the replay buffer \((\d+) env steps\)",
                      (run / "logs" / "training.log").read_text())
    restored = re.search(r"Resumed the replay buffer \((\d+) env steps\)", log)
    assert saved and restored, log
    assert int(saved[1]) > 0 and restored[1] == saved[1]
    saved_eps = torch.load(models / "dqn_final.pt", weights_only=True)["epsilon"]
    first = json.loads((_run_dir(base2) / "training_metrics.json").read_text())["episodes"][0]
    assert first["epsilon"] == pytest.approx(saved_eps)

    # Greedy tests from the .pt (plain torch) and from the RLlib checkpoint agree.
    reports = {}
    for name, model in (("pt", models / "dqn_final.pt"), ("rllib", models / "dqn_final_rllib")):
        out = tmp_path / f"{name}.json"
        trust = ["--trust-checkpoint"] if name == "rllib" else []
        assert test_dqn.main(["--model", str(model), "--episodes", "2", "--max-steps", "10",
                              "--output", str(out), "--no-plots", *trust]) == 0
        reports[name] = json.loads(out.read_text())
    for key in ("episodes", "mean_reward", "mean_qos", "mean_workers", "mean_steps",
                "run_directory"):
        assert key in reports["pt"]
    assert reports["pt"]["episodes"] == reports["rllib"]["episodes"]
    assert "Episode 1:" in capsys.readouterr().out


def test_test_dqn_writes_plots_and_needs_no_ray(tmp_path):
    from rl_autoscaling.algorithms.dqn.model import build_q_network, save_dqn_model
    from rl_autoscaling.env import OpenFaaSAutoscalingEnv

    space = OpenFaaSAutoscalingEnv().observation_space
    model = save_dqn_model(tmp_path / "m.pt", state_dict=build_q_network(9, [8], 3).state_dict(),
                           obs_low=space.low, obs_high=space.high, hidden_layers=[8],
                           action_size=3)
    out = tmp_path / "r" / "dqn_eval_results.json"
    code = ("import sys; from rl_autoscaling import test_dqn; rc = test_dqn.main(sys.argv[1:]); "
            "assert 'ray' not in sys.modules; sys.exit(rc)")
    subprocess.run([sys.executable, "-c", code, "--model", str(model), "--episodes", "1",
                    "--max-steps", "5", "--output", str(out)], check=True, cwd=REPO,
                   capture_output=True)
    report = json.loads(out.read_text())
    run_dir = Path(report["run_directory"])
    assert (run_dir / "plots" / "episode_001.png").exists()
    # One per-step table row (episode 1, steps 1..5) per step.
    rows = re.findall(r"INFO +1 +(\d+) ", (run_dir / "logs" / "evaluation.log").read_text())
    assert rows == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize("argv, message", [
    (["--resume-model", "/nonexistent.pt"], "--resume-model not found"),
    (["--epsilon-start", "0.01", "--epsilon-end", "0.05", "--epsilon-decay", "1.5"],
     "epsilon_decay must be in (0, 1]"),
    (["--target-tau", "0"], "target_tau must be in (0, 1]"),
])
def test_invalid_flags_give_a_one_line_error(tmp_path, capsys, argv, message, ray_local):
    assert train_dqn.main(argv + ["--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not list(tmp_path.iterdir())  # nothing written for a rejected command


def test_out_of_range_counts_are_usage_errors(tmp_path, capsys):
    out = tmp_path / "runs"
    assert train_dqn.main(["--episodes", "0", "--output-dir", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "error: episodes must be >= 1, got 0"
    assert not out.exists()


def test_tampered_model_is_refused_by_test_dqn(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "rl_autoscaling.dqn", "obj": object()}, bad)
    assert test_dqn.main(["--model", str(bad), "--output", str(tmp_path / "o.json")]) == 2
    assert "refusing to load" in capsys.readouterr().err


def test_ctrl_c_saves_the_interrupt_model_and_exits_130(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rl_autoscaling.train_dqn", "--episodes", "500", "--max-steps",
         "10", "--warmup-steps", "10", "--batch-size", "8", "--eval-episodes", "0",
         "--output-dir", str(tmp_path)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        log = None
        while time.monotonic() < deadline:
            runs = list(tmp_path.glob("dqn_run_*/logs/training.log"))
            if runs and "Episode 2/500 " in runs[0].read_text():
                log = runs[0]
                break
            time.sleep(0.2)
        assert log is not None, "training did not reach episode 2"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    models = log.parent.parent / "models"
    assert (models / "dqn_interrupt.pt").exists()
    text = log.read_text()
    done = torch.load(models / "dqn_interrupt.pt", weights_only=True)["episode"]
    assert done >= 2 and re.search(rf"interrupted\D*\b{done} of 500\b", text, re.IGNORECASE)


def test_resume_refuses_a_model_with_other_inputs(tmp_path, capsys):
    """A 9-input model cannot continue with --load-input (nor a load model without it): one
    line, exit 2, before Ray starts."""
    from rl_autoscaling.algorithms.dqn.model import build_q_network, save_dqn_model
    from rl_autoscaling.env import OpenFaaSAutoscalingEnv

    space = OpenFaaSAutoscalingEnv().observation_space
    for size, derived, flag, reads in ((9, (), "--load-input", "['load']"),
                                       (10, ("load",), "--no-load-input", "none")):
        model = save_dqn_model(tmp_path / f"m{size}.pt",
                               state_dict=build_q_network(size, [128, 64], 3).state_dict(),
                               obs_low=space.low, obs_high=space.high, hidden_layers=[128, 64],
                               action_size=3, derived_inputs=derived)
        assert train_dqn.main(["--resume-model", str(model), flag,
                               "--output-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
        assert f"{flag} reads {reads}" in err
    assert not (tmp_path / "out").exists()
