"""The training service: specs, `tune --smoke` end to end for both algorithms, auto-resume after
an interrupt, the exporter's layout, and the KPI metrics in the node's Prometheus export."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from procs import kill_pids_using

from rl_autoscaling.config import ConfigError
from rl_autoscaling.service.specs import TUNE_CONFIG_DIR, load_spec, parse_set, to_tune_space

ROOT = Path(__file__).resolve().parents[1]
TRAINING_KEYS = {"episode", "steps", "total_reward", "mean_qos", "final_qos", "processed_tasks",
                 "epsilon", "scale_up_count", "scale_down_count", "noop_count", "max_workers",
                 "mean_workers", "qos_violations", "unfinished_tasks"}
EVAL_METRICS = ("total_reward", "mean_reward", "final_qos", "mean_qos", "scaling_actions",
                "noop_actions", "max_workers", "mean_workers")


def run_tune(*args, timeout=400, ray_tmp: str | None = None, **popen):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    if ray_tmp:  # a Ray temp dir of its own, so the test can remove what a kill -9 leaves
        env["RAY_TMPDIR"] = ray_tmp
    cmd = [sys.executable, "-m", "rl_autoscaling.tune", "--num-cpus", "2", *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def result_rows(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()
            if line.strip()]


# --------------------------------------------------------------------------- specs


@pytest.mark.parametrize("algo", ["sarsa", "dqn"])
def test_packaged_specs_load_with_and_without_smoke(algo):
    from rl_autoscaling.service.tune import load_experiment

    spec = load_experiment(algo)
    assert spec.name == algo and spec.env_config["max_steps"] == 30 and spec.seeds == 3
    # the twin recipe's episodes: SARSA 5000 in batches of 50 (which divide its checkpoints
    # every 250), DQN 720 (one per iteration)
    assert spec.stop["training_iteration"] == {"sarsa": 100, "dqn": 720}[algo]
    assert spec.evaluation["duration"] == 100
    smoke = load_experiment(algo, smoke=True, overrides={"training.gamma": 0.9})
    assert smoke.stop["training_iteration"] < 5 and smoke.training["gamma"] == 0.9
    assert smoke.seeds == 1


def test_spec_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: sarsa\nstop: {training_iteration: 3}\ncheckpont: {frequency: 1}\n")
    with pytest.raises(ConfigError, match="unknown key checkpont"):
        load_spec(bad, "sarsa")
    bad.write_text("algo: sarsa\nevaluation: {intervall: 3}\n")
    with pytest.raises(ConfigError, match="unknown key evaluation.intervall"):
        load_spec(bad, "sarsa")
    bad.write_text("algo: sarsa\ntraining: {alhpa: 0.1}\n")
    with pytest.raises(ConfigError, match="unknown key training.alhpa"):
        load_spec(bad, "sarsa", training_keys={"alpha"})
    bad.write_text("algo: sarsa\ntraining: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(bad, "sarsa")
    with pytest.raises(ConfigError, match="is for algo 'sarsa', not 'dqn'"):
        load_spec(TUNE_CONFIG_DIR / "sarsa.yaml", "dqn")
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["training.alpha"])


#: every key of the numeric sections and the top level: a value at its bound (accepted) and
#: values past it or of the wrong kind (refused with a message naming the key)
BOUNDS = {
    "stop.training_iteration": (1, [0, -1, 2.5, None, True]),
    "stop.time_total_s": (0.5, [0, -3.0, float("inf"), "soon", True]),
    "stop.timesteps_total": (1, [0, -10]),
    "stop.env_runners/episode_return_mean": (-50.0, [float("nan"), "high"]),
    "stop.env_runners/num_env_steps_sampled_lifetime": (1, [0, -1]),
    "checkpoint.frequency": (0, [-1, 1.5]),
    "checkpoint.num_to_keep": (None, [0, -1]),
    "checkpoint.at_end": (False, ["sometimes", 2]),
    "evaluation.interval": (0, [-1]),
    "evaluation.duration": (1, [0, -2]),
    "resources.num_env_runners": (0, [-1, 0.5]),
    "resources.num_cpus_per_env_runner": (0.0, [-0.5, float("inf")]),
    "resources.num_envs_per_env_runner": (1, [0]),
    "failure.max_failures": (-1, [-2, None, False]),
    "scheduler.type": ("asha", ["hyperband"]),
    "scheduler.grace_period": (1, [0]),
    "scheduler.max_t": (1, [0, -5]),
    "scheduler.reduction_factor": (1.5, [1, 0.5]),
    "search.type": ("basic", ["hyperopt"]),
    "search.max_concurrent": (1, [0]),
    "num_samples": (1, [0, -3, 1.5, True]),
    "seeds": (2, [0, -1, 1.5, True]),
    "metric": ("eval_final_qos", [""]),
    "mode": ("min", ["up"]),
    "name": ("x", [""]),
}


def test_spec_bounds_are_checked_for_every_key():
    from rl_autoscaling.service.specs import SECTION_KEYS

    covered = {k for k in BOUNDS if "." in k}
    assert covered == {f"{s}.{k}" for s, keys in SECTION_KEYS.items() for k in keys}
    path = TUNE_CONFIG_DIR / "sarsa.yaml"
    for key, (good, bads) in BOUNDS.items():
        section, _, field = key.rpartition(".")
        spec = load_spec(path, "sarsa", overrides={key: good})
        value = getattr(spec, section)[field] if section else getattr(spec, field)
        assert value == good and type(value) is type(good), key
        for bad in bads:
            with pytest.raises(ConfigError, match=f"^{re.escape(key)}: ") as refused:
                load_spec(path, "sarsa", overrides={key: bad})
            assert "\n" not in str(refused.value) and repr(bad) in str(refused.value), key
    # values are coerced to their type (a --set of 1e3 is read as a float)
    assert load_spec(path, "sarsa", overrides=parse_set(
        ["stop.training_iteration=1e3"])).stop["training_iteration"] == 1000


def test_tune_cli_refuses_an_out_of_bounds_spec_value_in_one_line(tmp_path, capsys):
    from rl_autoscaling.service.tune import main

    storage = tmp_path / "tune"
    assert main(["--algo", "sarsa", "--set", "stop.training_iteration=-1",
                 "--storage-path", str(storage)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: stop.training_iteration: input should be greater than 0 (given: -1)"]
    assert not storage.exists()  # refused before Ray or Tune started


def test_search_spaces_become_tune_domains():
    from ray.tune.search.sample import Categorical, Float, Integer

    space = to_tune_space({"lr": {"loguniform": [1e-4, 1e-2]}, "tau": {"grid": [0.01, 1.0]},
                           "g": {"uniform": [0.9, 0.99]}, "c": {"choice": [1, 2]},
                           "n": {"randint": [1, 5]}, "fixed": 3}, "training")
    assert isinstance(space["lr"], Float) and isinstance(space["g"], Float)
    assert space["tau"] == {"grid_search": [0.01, 1.0]}
    assert isinstance(space["c"], Categorical) and isinstance(space["n"], Integer)
    assert space["fixed"] == 3
    with pytest.raises(ConfigError, match=r"training.lr.uniform: bad bounds"):
        to_tune_space({"lr": {"uniform": [1]}}, "training")
    assert parse_set(["a.b=1e-3", "c=[1, 2]"]) == {"a.b": 1e-3, "c": [1, 2]}


def test_bad_spec_gives_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: dqn\ntraining: {learnig_rate: 0.1}\n")
    proc = run_tune("--algo", "dqn", "--config", bad, "--storage-path", tmp_path / "t")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        proc.stderr.strip().splitlines()[0]] and "unknown key training.learnig_rate" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- end to end


def check_exported_run(run_dir: Path, algo: str, episodes: int) -> None:
    training = json.loads((run_dir / "training_metrics.json").read_text())["episodes"]
    assert [r["episode"] for r in training] == list(range(1, episodes + 1))
    for rec in training:
        assert TRAINING_KEYS <= set(rec)
        assert 0 <= rec["final_qos"] <= 1 and rec["steps"] >= 1
    if algo == "dqn":
        assert all("mean_loss" in r for r in training[1:])
    checkpoints = json.loads((run_dir / "evaluation_metrics.json").read_text())["checkpoints"]
    assert checkpoints and all(c["eval_episodes"] == 1 for c in checkpoints)
    for c in checkpoints:
        for key in EVAL_METRICS:
            assert f"mean_{key}" in c and f"std_{key}" in c
    suffix = ".pkl" if algo == "sarsa" else ".pt"
    models = sorted(p.name for p in (run_dir / "models").iterdir())
    assert f"{algo}_final{suffix}" in models and f"{algo}_ep0002{suffix}" in models
    png = (run_dir / "plots" / "training_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    log = (run_dir / "logs" / "training.log").read_text().splitlines()
    assert len(log) == episodes and log[0].startswith("Episode 1/")


@pytest.mark.ray
@pytest.mark.parametrize("algo, episodes", [("sarsa", 4), ("dqn", 3)])
def test_smoke_run_leaves_checkpoints_and_an_exported_run(tmp_path, algo, episodes):
    proc = run_tune("--algo", algo, "--smoke", "--storage-path", tmp_path / "tune",
                    "--output", tmp_path / "runs")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (trial,) = [p for p in (tmp_path / "tune" / algo).iterdir() if p.is_dir()]
    assert sorted(p.name for p in trial.glob("checkpoint_*"))
    assert (trial / "progress.csv").exists() and list(trial.glob("events.out.tfevents.*"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith(f"{algo}_run_")
    assert f"best trial run directory: {run_dir} (models/{algo}_best" in proc.stdout
    check_exported_run(run_dir, algo, episodes)
    # the delivered policy: the ranking rule's choice among the evaluated checkpoints,
    # confirmed on the smoke budget's 10 fresh episodes, with its report
    report = json.loads((run_dir / "policy_report.json").read_text())
    suffix = ".pkl" if algo == "sarsa" else ".pt"
    best = (run_dir / "models" / f"{algo}_best{suffix}").read_bytes()
    assert best == (run_dir / "models" / (Path(report["source"]).name)).read_bytes()
    assert report["episodes"] == 10 and report["frontier"] and "x_frontier" in report
    rows = result_rows(trial)
    assert all("autoscaling" in r and "final_qos_mean" in r["autoscaling"] for r in rows)
    header = (trial / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"eval_score", "eval_final_qos", "eval_mean_workers"} <= set(header)
    assert all("eval_score" in r for r in rows)  # from iteration 1 (NaN before evaluating)

    # The exporter also runs on its own and refreshes the same run directory.
    from rl_autoscaling.service.export import main as export_main

    assert export_main([str(tmp_path / "tune" / algo), "--output", str(tmp_path / "runs")]) == 0
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]


@pytest.mark.ray
def test_interrupted_experiment_resumes_from_its_checkpoint(tmp_path):
    args = ["--algo", "sarsa", "--storage-path", tmp_path / "tune", "--output", tmp_path / "runs",
            "--set", "stop.time_total_s=8", "--set", "stop.training_iteration=1000000",
            "--set", "checkpoint.frequency=100", "--set", "evaluation.interval=0",
            "--set", "seeds=1", "--set", "training.episodes_per_iteration=1"]
    first = run_tune(*args, popen=True)
    exp = tmp_path / "tune" / "sarsa"
    deadline = time.time() + 240
    while time.time() < deadline and not list(exp.glob("*/checkpoint_*")):
        time.sleep(0.5)
    assert list(exp.glob("*/checkpoint_*")), first.communicate(timeout=60)[0][-3000:]
    os.killpg(first.pid, signal.SIGINT)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 130, out[-3000:]
    assert "re-run the same command to resume" in out
    (trial,) = [p for p in exp.iterdir() if p.is_dir()]
    before = result_rows(trial)
    assert not before[-1]["done"]

    second = run_tune(*args)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"Resuming experiment sarsa from {exp}" in second.stdout
    rows = result_rows(trial)
    resumed = rows[len(before):]
    # Iterations continue from a checkpoint (a multiple of 100), not from 1.
    assert resumed[0]["training_iteration"] > 1
    assert (resumed[0]["training_iteration"] - 1) % 100 == 0
    assert resumed[-1]["done"] and resumed[-1]["training_iteration"] > before[-1]["training_iteration"] - 100


# --------------------------------------------------------------------------- issue 13


def _fake_trial(root: Path, name: str, rows: list[dict]) -> Path:
    trial = root / name
    trial.mkdir(parents=True)
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return trial


def test_best_trial_follows_the_evaluation_score_not_the_training_reward(tmp_path):
    from rl_autoscaling.service.export import best_trial, export_experiment
    from rl_autoscaling.service.kpis import eval_score

    # a: high exploring reward, misses the SLO greedily; b: low reward, meets it with 6 workers
    def rows(reward, qos, workers):
        ev = {"episode": 2, "eval_episodes": 1, "mean_final_qos": qos, "mean_workers": workers}
        return [{"training_iteration": 1, "eval_score": float("nan"),
                 "training_episodes": [{"episode": 1, "total_reward": reward}]},
                {"training_iteration": 2, "evaluation": ev, "eval_score": eval_score(ev, 0.95),
                 "training_episodes": [{"episode": 2, "total_reward": reward}]}]

    a = _fake_trial(tmp_path, "DQNFarm_a_00000", rows(500.0, 0.80, 3.0))
    b = _fake_trial(tmp_path, "DQNFarm_b_00001", rows(-50.0, 0.97, 6.0))
    assert eval_score({"mean_final_qos": 0.97, "mean_workers": 6.0}, 0.95) == 994.0
    assert best_trial([a, b]) == b
    assert best_trial([a, b], "eval_score", "min") == a

    class R:  # a ResultGrid entry
        def __init__(self, path):
            self.path = str(path)

    out = export_experiment([R(a), R(b)], "dqn", tmp_path / "runs")
    assert out["best"] == out["runs"][str(b)]


def test_export_never_counts_re_run_iterations_twice(tmp_path):
    from rl_autoscaling.service.export import episode_records, read_results

    it = lambda i, r: {"training_iteration": i,  # noqa: E731
                       "training_episodes": [{"episode": i, "total_reward": r}]}
    # iterations 1..4, killed, resumed from the checkpoint at 2: 3 and 4 run again
    trial = _fake_trial(tmp_path, "DQNFarm_x_00000",
                        [it(1, 0), it(2, 0), it(3, 1), it(4, 1), it(3, 2), it(4, 2), it(5, 2)])
    rows = read_results(trial)
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["total_reward"] for r in episode_records(rows)] == [0, 0, 2, 2, 2]


def test_a_spec_asking_for_more_cpus_than_the_cluster_fails_at_once(tmp_path):
    from rl_autoscaling.service.tune import check_resources, trial_cpus

    spec = load_spec(TUNE_CONFIG_DIR / "dqn.yaml", "dqn", overrides={
        "resources.num_env_runners": 2})
    assert trial_cpus(spec) == 3
    with pytest.raises(ConfigError, match="needs 3 CPUs.*cluster has 2"):
        check_resources(spec, 2.0)
    check_resources(spec, 3.0)


def test_spec_picks_asha_and_rejects_unknown_searchers():
    from rl_autoscaling.service.tune import tune_config

    spec = load_spec(TUNE_CONFIG_DIR / "dqn.yaml", "dqn", overrides={
        "scheduler.type": "asha", "scheduler.grace_period": 2})
    cfg = tune_config(spec)
    assert type(cfg.scheduler).__name__ == "AsyncHyperBandScheduler"
    assert (cfg.metric, cfg.mode, cfg.reuse_actors) == ("eval_score", "max", False)
    with pytest.raises(ConfigError, match="search.type"):
        load_spec(TUNE_CONFIG_DIR / "dqn.yaml", "dqn", overrides={"search.type": "hyperopt"})


@pytest.mark.ray
def test_dqn_resumes_after_kill_9_with_the_checkpointed_replay_buffer(tmp_path):
    args = ["--algo", "dqn", "--smoke", "--storage-path", tmp_path / "tune",
            "--output", tmp_path / "runs", "--set", "stop.time_total_s=20",
            "--set", "stop.training_iteration=1000000", "--set", "checkpoint.frequency=2",
            "--set", "evaluation.interval=0"]
    ray_tmp = tempfile.mkdtemp(prefix="rlk9", dir="/tmp")  # short: Ray's socket paths
    try:
        _kill_9_then_resume(tmp_path, args, ray_tmp)
    finally:  # the killed driver's Ray daemons outlive it: stop them before other tests start
        kill_pids_using(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _kill_9_then_resume(tmp_path, args, ray_tmp: str) -> None:
    first = run_tune(*args, popen=True, ray_tmp=ray_tmp)
    exp = tmp_path / "tune" / "dqn"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(exp.glob("*/checkpoint_*/farm_model.json"))) < 2:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray it started: no clean-up
    out, _ = first.communicate(timeout=60)
    assert len(list(exp.glob("*/checkpoint_*/farm_model.json"))) >= 2, out[-3000:]

    second = run_tune(*args, ray_tmp=ray_tmp)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    (trial,) = [p for p in exp.iterdir() if p.is_dir()]
    restored = [r for r in result_rows(trial) if "replay_buffer_restored_size" in r]
    assert restored, "the resumed run did not restore a replay buffer"
    first_resumed = restored[0]
    infos = [json.loads(p.read_text()) for p in trial.glob("checkpoint_*/farm_model.json")]
    (at_ckpt,) = [i for i in infos
                  if i["training_iteration"] == first_resumed["training_iteration"] - 1]
    assert at_ckpt["replay_buffer_size"] > 0
    assert first_resumed["replay_buffer_restored_size"] == at_ckpt["replay_buffer_size"]
    # the restore resumed the trial, not a restart: it kept the iterations before the checkpoint
    assert first_resumed["iterations_since_restore"] == 1
    assert first_resumed["training_iteration"] > 1

    # the exported run counts each episode once although the restore ran some again
    (run,) = (tmp_path / "runs").glob("dqn_run_*")
    episodes = json.loads((run / "training_metrics.json").read_text())["episodes"]
    last_episode = max(e["episode"] for r in result_rows(trial) for e in r["training_episodes"])
    assert [e["episode"] for e in episodes] == list(range(1, last_episode + 1))


def test_training_seeds_each_get_their_own_seed_and_workload_stream():
    """spec.seeds training seeds: a grid over the RLlib seed, each trial's task seed moving
    with it (resolved by Tune's own variant generator, no Ray start)."""
    from ray.tune.search.variant_generator import generate_variants

    from rl_autoscaling.service.tune import load_experiment, param_space

    spec = load_experiment("sarsa")
    trials = [cfg for _, cfg in generate_variants(param_space(spec, 7))]
    assert [(t["seed"], t["env_config"]["task_seed"]) for t in trials] == [
        (7, 42), (8, 1042), (9, 2042)]
    assert all(t["training"] == trials[0]["training"] for t in trials)
    one = load_experiment("sarsa", overrides={"seeds": 1})
    (single,) = [cfg for _, cfg in generate_variants(param_space(one, 7))]
    assert (single["seed"], single["env_config"]["task_seed"]) == (7, 42)
