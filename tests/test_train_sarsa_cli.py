"""train_sarsa / test_sarsa CLIs (the seed README's commands) and the shared harness (runs.py)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rl_autoscaling.algorithms.sarsa.tabular import SarsaLambdaLearner
from rl_autoscaling.common import rollout
from rl_autoscaling.common.rundir import utc_timestamp
from rl_autoscaling.reporting.curves import load_training_metrics
from rl_autoscaling.training import harness as runs
from rl_autoscaling.training.cli import run_guarded

ROOT = Path(__file__).resolve().parents[1]
RECORD_KEYS = {"episode", "steps", "total_reward", "mean_qos", "final_qos", "processed_tasks",
               "epsilon", "scale_up_count", "scale_down_count", "noop_count", "max_workers",
               "mean_workers", "qos_violations", "unfinished_tasks"}
# The seed README's training command, verbatim apart from --episodes.
README_TRAIN = ["--episodes", "3", "--max-steps", "30", "--step-duration", "8",
                "--observation-window", "8", "--initial-workers", "12",
                "--bins", "4", "30", "4", "40", "16", "18", "18", "15", "20",
                "--alpha", "0.03", "--trace-lambda", "0.6", "--eval-episodes", "3",
                "--phase-shuffle", "--phase-shuffle-seed", "42"]


def cli(module: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=300)


def only_run(out: Path) -> Path:
    found = sorted(out.glob("sarsa_run_*"))
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------- the CLIs

@pytest.mark.slow
def test_readme_commands_train_then_test(tmp_path):
    out = tmp_path / "runs"
    proc = cli("rl_autoscaling.train_sarsa", *README_TRAIN, "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = only_run(out)
    assert run.name[len("sarsa_run_"):].replace("_", "").isdigit()
    for rel in ("logs/training.log", "models/sarsa_final.pkl", "training_metrics.json",
                "evaluation_metrics.json", "plots/training_curves.png"):
        assert (run / rel).is_file(), rel
    episodes = json.loads((run / "training_metrics.json").read_text())["episodes"]
    assert [e["episode"] for e in episodes] == [1, 2, 3]
    assert all(set(e) == RECORD_KEYS for e in episodes)
    assert episodes[1]["epsilon"] == pytest.approx(0.4 * 0.999)  # the twin default decay
    # --checkpoint-every 10 > 3 episodes: no epNNNN model, one evaluation at the end.
    assert not list((run / "models").glob("sarsa_ep*.pkl"))
    checkpoints = json.loads((run / "evaluation_metrics.json").read_text())["checkpoints"]
    assert [(c["episode"], c["eval_episodes"]) for c in checkpoints] == [(3, 3)]
    log = (run / "logs" / "training.log").read_text()
    assert log.count("Episode ") >= 3 and "Final evaluation" in log
    # the console: a summary per tenth of the run (here each episode), not the episode lines
    assert " Episode " not in proc.stdout and proc.stdout.count(" INFO Episodes ") == 3
    model = SarsaLambdaLearner.load(run / "models" / "sarsa_final.pkl")
    assert model.discretiser.bins == (4, 30, 4, 40, 16, 18, 18, 15, 20)
    assert model.hp.alpha == 0.03 and model.hp.trace_lambda == 0.6
    assert model.epsilon == pytest.approx(0.4 * 0.999 ** 3)  # the twin default decay

    # The seed README's test command on that model (+ --output in tmp).
    results = tmp_path / "eval_results.json"
    proc = cli("rl_autoscaling.test_sarsa", "--model", str(run / "models" / "sarsa_final.pkl"),
               "--episodes", "2", "--max-steps", "30", "--step-duration", "8",
               "--observation-window", "8", "--initial-workers", "12",
               "--output", str(results))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(results.read_text())
    assert {"episodes", "mean_reward", "mean_qos", "mean_workers", "mean_steps",
            "run_directory"} <= set(summary)
    assert [e["episode"] for e in summary["episodes"]] == [1, 2]
    assert set(summary["episodes"][0]) == {
        "episode", "steps", "total_reward", "mean_reward", "mean_qos", "final_qos",
        "mean_workers", "max_workers", "scaling_actions", "noop_actions"}
    eval_dir = Path(summary["run_directory"])
    assert (eval_dir / "plots" / "episode_001.png").is_file()
    assert (eval_dir / "logs" / "evaluation.log").is_file()
    assert "step" in proc.stdout and "Episode 2:" in proc.stdout  # per-step table + summary


def test_test_sarsa_default_output_is_runs_eval_results(tmp_path):
    lrn = SarsaLambdaLearner(seed=1)
    model = lrn.save(tmp_path / "m.pkl")
    proc = cli("rl_autoscaling.test_sarsa", "--model", str(model), "--episodes", "1",
               "--max-steps", "3", "--no-plots", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "eval_results.json").is_file()


def test_spec_defaults():
    from rl_autoscaling.training.sarsa import build_parser

    # The twin recipe (the seed's values: --recipe seed, tests/test_recipes.py).
    a = build_parser().parse_args([])
    # max_steps None: the workload's length, 30 steps on the default workload
    assert (a.episodes, a.max_steps, a.step_duration, a.observation_window,
            a.initial_workers, a.output_dir) == (5000, None, 8.0, 8.0, 12, "runs")
    assert (a.epsilon, a.epsilon_min, a.epsilon_decay, a.alpha, a.gamma) == (
        0.40, 0.02, 0.999, 0.02, 0.985)
    assert (a.trace_lambda, a.trace_threshold, a.checkpoint_every, a.eval_episodes) == (
        0.5, 1e-5, 250, 100)
    assert (a.tie_action, a.reward_profile, a.miss_penalty, a.state) == (1, "slo_cost", 0.0, "auto")
    assert (a.explore_starts, a.explore_start_range) == (0.5, [6, 26])
    assert (a.seed, a.task_seed, a.phase_shuffle, a.phase_shuffle_seed) == (42, 42, False, None)
    assert (a.resume_model, a.resume_reset_hyperparams, a.resume_reset_epsilon) == (
        None, False, False)
    assert a.bins is None and a.config is None and a.backend == "simulated"


def test_checkpoints_evaluations_and_resume(tmp_path, capsys):
    from rl_autoscaling.training.sarsa import main

    common = ["--max-steps", "5", "--checkpoint-every", "2", "--eval-episodes", "2",
              "--log-interval", "1"]
    assert main(["--episodes", "5", "--output-dir", str(tmp_path / "a"), *common]) == 0
    run = only_run(tmp_path / "a")
    assert sorted(p.name for p in (run / "models").iterdir()) == [
        "sarsa_best.pkl", "sarsa_ep0002.pkl", "sarsa_ep0004.pkl", "sarsa_final.pkl"]
    checkpoints = json.loads((run / "evaluation_metrics.json").read_text())["checkpoints"]
    assert [c["episode"] for c in checkpoints] == [2, 4, 5]  # + once at the end
    # the best model is one of the evaluated ones (SLO met first, then fewest workers)
    best = (run / "models" / "sarsa_best.pkl").read_bytes()
    assert best in {(run / "models" / n).read_bytes()
                    for n in ("sarsa_ep0002.pkl", "sarsa_ep0004.pkl", "sarsa_final.pkl")}
    # ... the one the policy report names, confirmed on fresh episodes beside the frontier
    report = json.loads((run / "policy_report.json").read_text())
    assert (run / "models" / Path(report["source"]).name).read_bytes() == best
    assert report["episodes"] == 100 and report["confirm_seeds"] == [80_000_000, 80_000_099]
    assert report["tried"][0]["candidate"] in ("sarsa_ep0002", "sarsa_ep0004", "sarsa_final")
    assert report["slo_met"] == (report["final_qos_lower_bound"] >= report["slo"])
    assert len(report["frontier"]) >= 2 and (run / "policy_report.png").stat().st_size > 0
    assert "Best model: " in (run / "logs/training.log").read_text()
    assert "DEBUG Episode 3 summary: q_table_states=" in (run / "logs/training.log").read_text()
    final = SarsaLambdaLearner.load(run / "models" / "sarsa_final.pkl")

    # Resume: the Q-table and epsilon continue.
    assert main(["--episodes", "1", "--output-dir", str(tmp_path / "b"), *common,
                 "--resume-model", str(run / "models" / "sarsa_final.pkl")]) == 0
    rec, = json.loads((only_run(tmp_path / "b") / "training_metrics.json").read_text())[
        "episodes"]
    assert rec["epsilon"] == pytest.approx(final.epsilon)
    resumed = SarsaLambdaLearner.load(only_run(tmp_path / "b") / "models" / "sarsa_final.pkl")
    assert set(final.q) <= set(resumed.q)

    # ... unless reset: epsilon restarts from --epsilon, hyperparameters from the flags.
    assert main(["--episodes", "1", "--output-dir", str(tmp_path / "c"), *common,
                 "--resume-model", str(run / "models" / "sarsa_final.pkl"),
                 "--resume-reset-epsilon", "--resume-reset-hyperparams", "--epsilon", "0.7",
                 "--alpha", "0.2"]) == 0
    run_c = only_run(tmp_path / "c")
    rec, = json.loads((run_c / "training_metrics.json").read_text())["episodes"]
    assert rec["epsilon"] == pytest.approx(0.7)
    assert SarsaLambdaLearner.load(run_c / "models" / "sarsa_final.pkl").hp.alpha == 0.2
    capsys.readouterr()


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize("args,match", [
    (["--config", "missing.yml"], "missing.yml"),
    (["--alpha", "0"], "alpha must be in"),
    (["--initial-workers", "0"], "initial_workers"),
    (["--resume-reset-epsilon"], "need --resume-model"),
    (["--resume-model", "EVIL"], "refused global"),
    (["--resume-model", "nope.pkl"], "not found"),
])
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, capsys, args, match):
    from rl_autoscaling.training.sarsa import main

    (tmp_path / "EVIL").write_bytes(pickle.dumps({"q_table": _Evil()}))
    args = [str(tmp_path / a) if a in ("EVIL", "nope.pkl", "missing.yml") else a for a in args]
    out = tmp_path / "out"
    assert main(["--episodes", "1", "--output-dir", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err
    assert not out.exists()  # nothing is created for a refused command


def test_bad_bins_is_an_argparse_error(tmp_path):
    out = tmp_path / "runs"
    proc = cli("rl_autoscaling.train_sarsa", "--bins", "1", "2", "3", "--output-dir", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: bins needs 9 integers (one per observation), got 3"]
    assert not out.exists()  # refused before the run directory was made


@pytest.mark.slow
def test_ctrl_c_saves_the_interrupt_model_and_exits_130(tmp_path):
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rl_autoscaling.train_sarsa", "--episodes", "1000000",
         "--checkpoint-every", "0", "--eval-episodes", "0", "--output-dir", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            logs = list(out.glob("sarsa_run_*/logs/training.log"))
            if logs and "Episode 3/" in logs[0].read_text():
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    run = only_run(out)
    model = SarsaLambdaLearner.load(run / "models" / "sarsa_interrupt.pkl")
    assert model.q
    episodes = json.loads((run / "training_metrics.json").read_text())["episodes"]
    log = (run / "logs" / "training.log").read_text()
    assert f"interrupted: {len(episodes)} of 1000000 episodes completed" in log
    assert len(episodes) >= 3 and not (run / "models" / "sarsa_final.pkl").exists()
    assert (run / "plots" / "training_curves.png").is_file()


# ---------------------------------------------------------------------------- the harness

def fake_record(ep: int) -> dict:
    return {"episode": ep, "steps": 30, "total_reward": 100.0 + ep, "mean_qos": 1.0,
            "final_qos": 0.99, "processed_tasks": 1140, "epsilon": 0.4, "scale_up_count": 1,
            "scale_down_count": 2, "noop_count": 27, "max_workers": 14.0,
            "mean_workers": 12.5, "qos_violations": 3, "unfinished_tasks": 0}


def test_run_directory_layout_and_names(tmp_path):
    run = runs.RunDirectory.create(tmp_path, "dqn", timestamp="20250101_000000")
    again = runs.RunDirectory.create(tmp_path, "dqn", timestamp="20250101_000000")
    assert run.root.name == "dqn_run_20250101_000000"
    assert again.root.name == "dqn_run_20250101_000000_2"
    assert all((run.root / d).is_dir() for d in ("logs", "models", "plots"))
    assert run.model_path(7, ".pt").name == "dqn_ep0007.pt"
    assert run.model_path("interrupt", ".pt").name == "dqn_interrupt.pt"
    assert len(utc_timestamp()) == 15


def test_harness_rewrites_metrics_every_episode_and_handles_ctrl_c(tmp_path):
    run = runs.RunDirectory.create(tmp_path, "algo")
    log = runs.setup_run_logger(run, console=False)
    saved, seen = [], []

    def train_episode(ep):
        if ep == 4:
            # Everything finished so far is already on disk when the interrupt arrives.
            seen.append(len(json.loads(run.training_metrics.read_text())["episodes"]))
            raise KeyboardInterrupt
        return fake_record(ep)

    outcome = runs.run_training(
        run, log, episodes=10, train_episode=train_episode,
        save_model=lambda path, n: saved.append((path.name, n)),
        evaluate=lambda ep: {"episode": ep, "eval_episodes": 1, "mean_total_reward": 1.0,
                             "std_total_reward": 0.0},
        checkpoint_every=2, model_suffix=".bin")
    runs.close_logger(log)
    assert outcome.interrupted and outcome.exit_code == 130 and outcome.completed == 3
    assert seen == [3]
    assert saved == [("algo_ep0002.bin", 2), ("algo_interrupt.bin", 3)]
    assert [c["episode"] for c in json.loads(run.evaluation_metrics.read_text())[
        "checkpoints"]] == [2]
    text = run.training_log.read_text()
    assert "Training interrupted: 3 of 10 episodes completed" in text
    assert [r["episode"] for r in load_training_metrics(run.training_log)] == [1, 2, 3]


def test_harness_final_evaluation_only_when_the_last_checkpoint_was_earlier(tmp_path):
    for episodes, expected in ((4, [2, 4]), (5, [2, 4, 5])):
        run = runs.RunDirectory.create(tmp_path, f"x{episodes}")
        log = runs.setup_run_logger(run, console=False)
        outcome = runs.run_training(
            run, log, episodes=episodes, train_episode=fake_record,
            save_model=lambda path, n: path.write_text(str(n)),
            evaluate=lambda ep: {"episode": ep, "eval_episodes": 2}, checkpoint_every=2,
            plot=False)
        runs.close_logger(log)
        assert outcome.exit_code == 0 and outcome.final_model.read_text() == str(episodes)
        assert [c["episode"] for c in outcome_checkpoints(run)] == expected


def outcome_checkpoints(run):
    return json.loads(run.evaluation_metrics.read_text())["checkpoints"]


def test_evaluation_seeds_and_unshuffled_env():
    cfg = rollout.evaluation_env_config({"phase_shuffle": True, "phase_shuffle_seed": 3,
                                      "max_steps": 4})
    assert cfg == {"phase_shuffle": False, "max_steps": 4}
    assert rollout.evaluation_seed(42, 20, 2) == 42 + 20_000 + 2

    from rl_autoscaling.env import OpenFaaSAutoscalingEnv

    env = OpenFaaSAutoscalingEnv.from_env_config(cfg)
    seeds = []
    real_reset = env.reset
    env.reset = lambda seed=None, **kw: (seeds.append(seed), real_reset(seed=seed, **kw))[1]
    record = rollout.evaluate_checkpoint(env, lambda o, i: 1, 3, 2, seed=42)
    assert seeds == [3042, 3043] and record["episode"] == 3 and record["eval_episodes"] == 2


def test_run_guarded_turns_user_errors_into_one_line(capsys):
    from rl_autoscaling.config import ConfigError

    assert run_guarded(lambda: 0) == 0
    for exc in (ConfigError("reward.target_qos must be <= 1\nmore"), ValueError("bad"),
                FileNotFoundError(2, "No such file", "x.yml")):
        def boom(exc=exc):
            raise exc
        assert run_guarded(boom) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
    with pytest.raises(RuntimeError):
        run_guarded(lambda: (_ for _ in ()).throw(RuntimeError("a bug stays a bug")))
