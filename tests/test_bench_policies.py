"""The policy benchmark protocol (bench policies): calibrated baselines, trained agents over
training seeds, disjoint evaluation seeds, mean +- 95 % CI, the report and Pareto plots."""

import json
import math

import pytest

from rl_autoscaling.bench import policies as bench
from rl_autoscaling.config import load_config
from rl_autoscaling.farm.workload import expected_task_count


def test_mean_ci95_uses_the_t_distribution():
    mean, half = bench.mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert math.isnan(bench.mean_ci95([5.0])[1]) and math.isnan(bench.mean_ci95([])[0])


def test_packaged_spike_and_ramp_profiles():
    spike, ramp = load_config("spike"), load_config("ramp")
    assert [p.pattern for p in spike.phase_definitions] == ["steady", "spike", "steady"]
    assert expected_task_count(spike) == 300 + 450 + 300
    assert [p.pattern for p in ramp.phase_definitions] == ["ramp", "ramp"]


@pytest.mark.slow
def test_baselines_only_report(tmp_path, capsys):
    assert bench.main(["--algos", "--workloads", "default", "spike", "--eval-episodes", "3",
                       "--calibration-episodes", "1", "--clairvoyant-episodes", "1",
                       "--output-dir", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("bench_*")
    report = (out / "report.md").read_text()
    assert "## default" in report and "## spike" in report
    results = json.loads((out / "results.json").read_text())
    for workload in ("default", "spike"):
        agents = results["workloads"][workload]["agents"]
        assert set(agents) == {"StaticBest", "KedaCalibrated", "HpaCalibrated", "Keda", "Hpa",
                               "ReactiveMaximum", "Clairvoyant"}
        # StaticBest is a point of the frontier measured on the same seeds: ratio 1
        assert agents["StaticBest"]["frontier_ratio"][0] == pytest.approx(1.0)
        assert agents["StaticBest"]["frontier_qos_gap"][0] == pytest.approx(0.0, abs=1e-9)
        assert (out / f"pareto_{workload}.png").stat().st_size > 0
        assert (out / f"steps_{workload}.png").stat().st_size > 0
        # each step's mean over the episodes running then: the default workload's episodes
        # drain at different steps, and a static count's mean is still that count once reached
        static = agents["StaticBest"]
        steps = static["per_step_workers"]
        assert len(steps) >= 20 and all(math.isfinite(w) for w in steps)
        assert steps[-1] == pytest.approx(static["params"]["workers"])
        assert len(static["per_step_arrival_rate"]) == len(steps)
    assert set(results["settings"]["eval_seeds"]).isdisjoint(
        results["settings"]["calibration_seeds"])


@pytest.mark.slow
def test_trained_agents_over_training_seeds(tmp_path, monkeypatch):
    tiny = "--episodes 2 --checkpoint-every 0 --eval-episodes 0"
    # no --train-workloads: the agents train on the --workloads, nothing else; training
    # seeds k = 1, 2 (--first-train-seed 1: a run extending one of seed 0)
    assert bench.main(["--algos", "sarsa", "--workloads", "default",
                       "--train-seeds", "2", "--first-train-seed", "1", "--eval-episodes", "2",
                       "--calibration-episodes", "1", "--clairvoyant-episodes", "0",
                       "--trainer-args", tiny,
                       "--output-dir", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("bench_*")
    results = json.loads((out / "results.json").read_text())
    row = results["workloads"]["default"]["agents"]["SARSA"]
    assert results["settings"]["train_workloads"] == ["default"]
    assert sorted(p.name for p in (out / "train").iterdir()) == ["sarsa_default_s1",
                                                                 "sarsa_default_s2"]
    assert row["units"] == 2 and len(row["per_step_workers"]) >= 1
    # each seed's means, from which the row's mean is taken
    per_qos = row["per_unit"]["final_qos"]
    assert len(per_qos) == 2 and row["final_qos"][0] == pytest.approx(sum(per_qos) / 2)
    assert per_qos == pytest.approx(row["held_out_qos_per_seed"])
    q, half = row["final_qos"]
    assert 0.0 <= q <= 1.0 and half >= 0.0
    # two training seeds: two runs with their own, disjoint workload seeds
    logs = sorted((out / "train").glob("sarsa_default_s*/sarsa_run_*/logs/training.log"))
    assert len(logs) == 2
    assert "20000" in logs[0].read_text() and "30000" in logs[1].read_text()
    assert "10000" not in logs[0].read_text() + logs[1].read_text()


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert bench.main(["--algos", "--train-seeds", "0", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --train-seeds must be >= 1"]
    assert bench.main(["--algos", "--first-train-seed", "-1", "--output-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --first-train-seed must be >= 0"]
    assert not list(tmp_path.iterdir())


def test_a_training_workload_reported_nowhere_is_refused_before_training(tmp_path, capsys):
    """Without --shift a model is reported only on the workload it was trained on: training on
    one outside --workloads would cost its training and show nothing."""
    assert bench.main(["--algos", "sarsa", "--workloads", "default", "--train-workloads",
                       "default", "spike", "--output-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --train-workloads spike: not among --workloads, so its models would be trained "
        "and reported nowhere (add it to --workloads, or pass --shift)"]
    assert not list(tmp_path.iterdir())


def test_a_yaml_workload_with_max_steps_and_the_clairvoyant_below_the_frontier(tmp_path):
    """Any farm YAML is a workload, run for --max-steps steps; the clairvoyant anchor (which
    knows the future) holds fewer workers than the static frontier at its QoS."""
    day = tmp_path / "my_day.yml"
    day.write_text("phase_definitions:\n"
                   "  - {name: up, phase_duration: 60, pattern: ramp, ramp_from: 0.3, ramp_to: 2.0}\n"
                   "  - {name: down, phase_duration: 60, pattern: ramp, ramp_from: 2.0, ramp_to: 0.3}\n"
                   "  - {name: night, phase_duration: 40, pattern: steady, multiplier: 0.3}\n")
    assert bench.workload_spec(str(day))[0]["max_steps"] == 22  # 160 s / 8 s + 2 to drain
    assert bench.main(["--algos", "--workloads", str(day), "--max-steps", "21",
                       "--eval-episodes", "2", "--calibration-episodes", "1",
                       "--clairvoyant-episodes", "2", "--output-dir", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("bench_*")
    data = json.loads((out / "results.json").read_text())["workloads"][str(day)]
    assert data["max_steps"] == 21
    agents = data["agents"]
    assert all(len(row["per_step_workers"]) <= 21 for row in agents.values())
    anchor = agents["Clairvoyant"]
    assert anchor["episodes"] == 2 and anchor["final_qos"][0] >= 0.98
    assert anchor["frontier_ratio"][0] < 1.0
    assert (out / "load_my_day.png").stat().st_size > 0
    assert (out / "pareto_my_day.png").stat().st_size > 0


def test_an_unknown_workload_is_a_one_line_error(tmp_path, capsys):
    assert bench.main(["--algos", "--workloads", "nightly", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown config profile 'nightly'" in err[0]
    assert not list(tmp_path.glob("bench_*"))  # nothing ran
