"""compare_policies CLI (SPEC §8 output, fair seeding, --plot-only, caches, errors) and the
policy benchmark."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rl_autoscaling.training import compare
from rl_autoscaling.training.compare import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "compare_original"
SHORT = ["--episodes", "2", "--max-steps", "4"]
RECORD_LISTS = {"rewards", "qos_rates", "worker_counts", "actions", "applied_deltas",
                "queue_lengths", "avg_times", "max_times", "arrival_rates"}
SUMMARY_KEYS = {"steps", "total_reward", "mean_reward", "mean_qos", "final_qos_total",
                "mean_workers", "max_workers", "scaling_actions", "noop_actions",
                "worker_seconds", "processed_tasks"}


def only_run_dir(base: Path) -> Path:
    dirs = sorted(base.glob("compare_*"))
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.fixture
def count_sims(monkeypatch):
    """Count simulated episodes per policy class (the real rollout still runs)."""
    calls = []
    real = compare.run_policy_episode

    def spy(env, policy, seed):
        calls.append((type(policy).__name__, seed))
        return real(env, policy, seed)

    monkeypatch.setattr(compare, "run_policy_episode", spy)
    return calls


def test_module_cli_writes_spec_layout(tmp_path):
    out = tmp_path / "cmp"
    proc = subprocess.run(
        [sys.executable, "-m", "rl_autoscaling.compare_policies", *SHORT, "--initial-workers",
         "12", "--agents", "Reactive Average", "reactive_maximum", "KEDA", "static-10",
         "--output-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    run = only_run_dir(out)
    assert run.name.startswith("compare_") and len(run.name) >= len("compare_20250101_000000")
    for name in ("aggregated_results.json", "comparison.log", "comparison_plots.png",
                 "qos_vs_workers.png"):
        assert (run / name).stat().st_size > 0, name
    data = json.loads((run / "aggregated_results.json").read_text())
    assert list(data["agents"]) == ["ReactiveAverage", "ReactiveMaximum", "Keda", "Static10"]
    for entry in data["agents"].values():
        assert len(entry["records"]) == 2
        for rec in entry["records"]:
            assert RECORD_LISTS | {"summary"} <= set(rec)
            assert set(rec["summary"]) == SUMMARY_KEYS
            assert all(len(rec[k]) == rec["summary"]["steps"] == 4 for k in RECORD_LISTS)
        assert set(entry["summary"]) == SUMMARY_KEYS
        assert all(set(v) == {"mean", "std"} for v in entry["summary"].values())
    static = data["agents"]["Static10"]["records"][0]
    assert static["worker_counts"] == [11.0, 10.0, 10.0, 10.0]
    # actions: the indices played (0 removes a worker, 1 keeps); applied_deltas: the deltas
    assert static["actions"] == [0, 0, 1, 1] and static["applied_deltas"] == [-1, -1, 0, 0]
    log = (run / "comparison.log").read_text()
    for ep in (1, 2):
        for agent in data["agents"]:
            assert f"=== episode {ep}/2 | {agent} | seed {41 + ep}" in log
    assert log.count("step delta workers") == 8  # one per-step table per episode and agent
    assert "summary (mean +- std over episodes)" in log


def test_original_layout_writer(tmp_path, capsys):
    assert main([*SHORT, "--agents", "static10", "--original-layout", "--output-dir",
                 str(tmp_path)]) == 0
    data = json.loads((only_run_dir(tmp_path) / "aggregated_results.json").read_text())
    assert set(data) == {"agents"}  # no settings, no frontier
    (rec,) = data["agents"]["Static10"]["records"][:1]
    original = RECORD_LISTS - {"applied_deltas"}
    assert set(rec) == original | {"summary"} and len(rec["summary"]) == 9
    assert set(data["agents"]["Static10"]["summary"]) == set(rec["summary"])
    assert all(isinstance(v, float) for k in original for v in rec[k])
    assert rec["worker_counts"] == [11.0, 10.0, 10.0, 10.0] and rec["actions"] == [0.0, 0.0, 1.0, 1.0]
    read = compare.load_results(only_run_dir(tmp_path))
    assert read["actions_read"]["layout"] == "indices"
    assert read["agents"]["Static10"]["records"][0]["applied_deltas"] == [-1, -1, 0, 0]
    assert main([*SHORT, "--original-layout", "--record", "--output-dir",
                 str(tmp_path / "x")]) == 2
    assert "drop --original-layout" in capsys.readouterr().err


def test_every_agent_sees_the_same_episodes(tmp_path):
    # Static and Static12 (initial workers 12) are the same policy: identical records prove
    # identical workloads; different episode indices get different workloads.
    assert main([*SHORT, "--agents", "static", "static12", "keda", "--task-seed", "7",
                 "--output-dir", str(tmp_path)]) == 0
    data = json.loads((only_run_dir(tmp_path) / "aggregated_results.json").read_text())
    a, b, k = (data["agents"][n]["records"] for n in ("Static", "Static12", "Keda"))
    assert a == b
    assert a[0]["arrival_rates"] != a[1]["arrival_rates"]
    # KEDA with the default window never scales below 12 here: same trajectory as Static.
    assert [r["arrival_rates"] for r in k] == [r["arrival_rates"] for r in a]
    assert data["settings"]["episode_seeds"] == [7, 8]


def test_plot_only_rerenders_original_layout_without_simulating(tmp_path, count_sims,
                                                                monkeypatch, capsys):
    drawn = []
    real_plot = compare.plot_comparison
    monkeypatch.setattr(compare, "plot_comparison",
                        lambda *a, **k: drawn.append(real_plot(*a, **k)))
    src = tmp_path / "compare_20240101_000000"
    shutil.copytree(FIXTURE, src)
    assert main(["--plot-only", "--input-dir", str(src)]) == 0
    assert "actions read as indices" in capsys.readouterr().out
    assert (src / "comparison_plots.png").stat().st_size > 0
    # the actions panel draws what the file recorded: index 0 -> -1, 1 -> 0, 2 -> +1
    fixture = json.loads((FIXTURE / "aggregated_results.json").read_text())["agents"]
    assert {a for e in fixture.values() for r in e["records"] for a in r["actions"]} == {0, 1, 2}
    for name, entry in fixture.items():
        asked = [[a - 1 for a in r["actions"]] for r in entry["records"]]
        steps = min(len(a) for a in asked)
        assert list(drawn[0]["requested_deltas"][name][:steps]) == pytest.approx(
            [sum(a[k] for a in asked) / len(asked) for k in range(steps)]), name
    assert (src / "qos_vs_workers.png").stat().st_size > 0
    out = tmp_path / "subset"
    assert main(["--plot-only", "--input-dir", str(src), "--agents", "reactive-average",
                 "--output-dir", str(out)]) == 0
    assert (out / "comparison_plots.png").stat().st_size > 0
    assert count_sims == []


def test_plot_only_errors(tmp_path, capsys):
    assert main(["--plot-only"]) == 2
    assert main(["--plot-only", "--input-dir", str(tmp_path)]) == 2
    assert main(["--plot-only", "--input-dir", str(FIXTURE), "--agents", "keda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "--input-dir" in err[0] and "not found" in err[1] and "Keda not in" in err[2]


def test_baseline_cache_reuses_records_without_simulating(tmp_path, count_sims):
    first = tmp_path / "first"
    assert main([*SHORT, "--agents", "reactiveaverage", "static", "--output-dir",
                 str(first)]) == 0
    assert len(count_sims) == 4
    cache = only_run_dir(first)
    cached = json.loads((cache / "aggregated_results.json").read_text())["agents"]
    count_sims.clear()

    second = tmp_path / "second"
    assert main([*SHORT, "--agents", "reactive average", "static", "keda", "--baseline-cache",
                 str(cache), "--output-dir", str(second)]) == 0
    # Only KEDA (absent from the cache) was simulated.
    assert [name for name, _ in count_sims] == ["KedaQueue", "KedaQueue"]
    agents = json.loads((only_run_dir(second) / "aggregated_results.json").read_text())["agents"]
    assert agents["ReactiveAverage"]["records"] == cached["ReactiveAverage"]["records"]
    assert agents["Static"]["records"] == cached["Static"]["records"]
    assert "1 cached" not in (only_run_dir(second) / "comparison.log").read_text()
    assert "2 cached" in (only_run_dir(second) / "comparison.log").read_text()


def test_caches_from_original_layout_and_missing_episodes(tmp_path, count_sims, capsys):
    # The fixture holds 2 episodes of SARSA and the reactive baselines; with --episodes 3
    # only the third is simulated, with the third episode's seed. SARSA needs no model.
    out = tmp_path / "out"
    assert main(["--episodes", "3", "--max-steps", "12", "--agents", "sarsa",
                 "reactiveaverage", "--sarsa-cache", str(FIXTURE), "--baseline-cache",
                 str(FIXTURE / "aggregated_results.json"), "--output-dir", str(out)]) == 2
    assert "needs a trained model" in capsys.readouterr().err  # 3rd SARSA episode: no model
    assert count_sims == [] and not out.exists()
    assert main(["--episodes", "2", "--max-steps", "12", "--agents", "sarsa",
                 "reactiveaverage", "--sarsa-cache", str(FIXTURE), "--output-dir",
                 str(out)]) == 0
    assert [name for name, _ in count_sims] == ["ReactiveAverage", "ReactiveAverage"]
    count_sims.clear()
    assert main(["--episodes", "3", "--max-steps", "12", "--seed", "10", "--agents",
                 "reactiveaverage", "--baseline-cache", str(FIXTURE), "--output-dir",
                 str(out)]) == 0
    assert count_sims == [("ReactiveAverage", 12)]
    runs = sorted(out.glob("compare_*"))
    data = json.loads((runs[-1] / "aggregated_results.json").read_text())
    fixture = json.loads((FIXTURE / "aggregated_results.json").read_text())
    recs = data["agents"]["ReactiveAverage"]["records"]
    # the cached records are kept, in this package's layout: applied_deltas added
    original = fixture["agents"]["ReactiveAverage"]["records"]
    assert [{k: v for k, v in r.items() if k != "applied_deltas"} for r in recs[:2]] == original
    assert all(r["applied_deltas"] == [a - 1 for a in o["actions"]]
               for r, o in zip(recs, original)) and len(recs) == 3
    assert data["agents"]["ReactiveAverage"]["summary"]["steps"]["mean"] == pytest.approx(
        sum(r["summary"]["steps"] for r in recs) / 3)


def test_cache_with_other_settings_is_refused_before_simulating(tmp_path, capsys, count_sims):
    first = tmp_path / "a"
    assert main([*SHORT, "--agents", "static", "--output-dir", str(first)]) == 0
    capsys.readouterr()
    count_sims.clear()
    assert main(["--episodes", "2", "--max-steps", "5", "--agents", "static",
                 "--baseline-cache", str(only_run_dir(first)), "--output-dir",
                 str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --baseline-cache")
    assert "max_steps" in err[0] and count_sims == [] and not (tmp_path / "b").exists()


@pytest.mark.parametrize("argv, message", [
    (["--agents", "reactive_median"], "unknown agent 'reactive_median'"),
    (["--agents", "sarsa", "keda"], "needs a trained model: pass --model"),
    (["--agents", "dqn"], "needs a trained model: pass --dqn-model"),
    (["--agents", "sarsa", "--model", "missing/sarsa_final.pkl"], "model file not found"),
    (["--agents", "dqn", "--dqn-model", "missing/dqn_final.pt"], "model file not found"),
    (["--episodes", "0"], "--episodes must be >= 1"),
    (["--config", "missing.yml"], "cannot read config file"),
    (["--baseline-cache", "missing_dir"], "not found"),
])
def test_errors_are_one_line_before_simulation(tmp_path, capsys, count_sims, argv, message):
    out = tmp_path / "out"
    assert main([*argv, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert count_sims == [] and not out.exists()


def test_module_cli_error_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rl_autoscaling.compare_policies", "--agents", "foo",
         "--output-dir", str(tmp_path / "x")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown agent 'foo'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unreadable_model_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "dqn_final.pt"
    bad.write_text("not a model\n")
    assert main(["--agents", "dqn", "--dqn-model", str(bad), "--output-dir",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(bad) in err[0]
    assert not (tmp_path / "o").exists()


def test_sarsa_model_is_loaded_lazily_through_the_policy_interface(tmp_path, monkeypatch):
    import types

    from rl_autoscaling.policies.base import Policy

    class FakeSarsa(Policy):
        loaded = []

        @classmethod
        def load(cls, path):
            cls.loaded.append(Path(path))
            return cls()

        def act(self, obs, info):
            return 2  # always +1

    module = types.ModuleType("rl_autoscaling.algorithms.sarsa.policy")
    module.SarsaPolicy = FakeSarsa
    monkeypatch.setitem(sys.modules, "rl_autoscaling.algorithms.sarsa.policy", module)
    model = tmp_path / "sarsa_final.pkl"
    model.write_bytes(b"")
    assert main([*SHORT, "--model", str(model), "--output-dir", str(tmp_path)]) == 0
    assert FakeSarsa.loaded == [model]
    data = json.loads((only_run_dir(tmp_path) / "aggregated_results.json").read_text())
    # Default agents with --model: SARSA first, then every baseline.
    assert list(data["agents"]) == ["SARSA", "ReactiveAverage", "ReactiveMaximum", "Keda",
                                    "Static"]
    assert data["agents"]["SARSA"]["records"][0]["actions"] == [2, 2, 2, 2]
    assert data["agents"]["SARSA"]["records"][0]["applied_deltas"] == [1, 1, 1, 1]


def test_frontier_lines_give_each_agent_its_ratio_to_the_static_frontier():
    from rl_autoscaling.training.compare import frontier_lines

    frontier = [{"workers": n, "final_qos": q, "mean_workers": float(n)}
                for n, q in ((14, 0.95), (16, 0.99), (18, 0.999))]

    def agent(qos, workers):
        return {"records": [{"summary": {"final_qos_total": qos, "mean_workers": workers}}]}

    lines = frontier_lines({"A": agent(0.99, 17.6), "B": agent(0.9945, 16.0),
                            "C": agent(0.9999, 20.0)}, frontier, 0.99)
    assert lines[0].startswith("static frontier") and "16.00 mean workers at the SLO" in lines[0]
    assert "A: final QoS 0.9900 at 17.60 workers = 1.100x" in lines[1]
    assert "QoS -0.0072 against the frontier's with as many workers" in lines[1]  # 0.9972
    assert "B: final QoS 0.9945 at 16.00 workers = 0.941x" in lines[2]  # 17 at 0.9945
    assert "QoS +0.0045 against" in lines[2]
    assert "C:" in lines[3] and "above the frontier's best QoS" in lines[3]
