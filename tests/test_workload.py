"""Workload generation per SPEC §2."""

import numpy as np
import pytest

from rl_autoscaling.config import ConfigError, load_config
from rl_autoscaling.farm.workload import (
    generate_workload,
    phase_arrivals,
    phase_task_count,
    processing_times,
    window_counts,
)


def test_default_episode_has_1140_tasks_in_spec_phase_sizes():
    cfg = load_config()
    assert [phase_task_count(cfg.base_rate, p) for p in cfg.phase_definitions] == [90, 450, 300, 300]
    wl = generate_workload(cfg, seed=3)
    assert wl.expected_tasks == 1140
    assert np.bincount(wl.phase_index).tolist() == [90, 450, 300, 300]
    assert np.all(np.diff(wl.arrivals) >= 0)


def test_same_seed_same_workload_and_different_seed_differs():
    cfg = load_config()
    a, b, c = (generate_workload(cfg, s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.arrivals, b.arrivals)
    np.testing.assert_array_equal(a.processing, b.processing)
    assert not np.array_equal(a.arrivals, c.arrivals)


def test_steady_window_rule_matches_the_emitter_algorithm():
    # Re-implement the emitter's loop literally and compare draws from identical RNG states.
    rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(11)
    target, windows = 90, 60
    counts = window_counts(rng_a, target, np.ones(windows))
    expected, generated = [], 0
    for k in range(windows):
        remaining, left = target - generated, windows - k
        n = min(int(rng_b.poisson(remaining / left)), remaining) if left > 1 else remaining
        expected.append(n)
        generated += n
    assert counts.tolist() == expected
    assert counts.sum() == target


def test_sparse_phase_ends_early_because_empty_windows_take_no_time():
    cfg = load_config()
    low = cfg.phase_definitions[0]  # 90 tasks in 60 one-second windows
    lengths = [phase_arrivals(np.random.default_rng(s), 300, 1.0, low)[1] for s in range(40)]
    assert 38 < np.mean(lengths) < 54  # about 46 s on the real farm, not 60
    high = cfg.phase_definitions[1]
    lengths = [phase_arrivals(np.random.default_rng(s), 300, 1.0, high)[1] for s in range(20)]
    assert 56 < np.mean(lengths) < 64


def test_oscillation_is_honoured():
    cfg = load_config()
    slow = cfg.phase_definitions[2]  # one cycle: high in the first half, low in the second
    first, second = 0, 0
    for s in range(30):
        arr, _ = phase_arrivals(np.random.default_rng(s), 300, 1.0, slow)
        first += np.sum(arr < 30)
        second += np.sum(arr >= 30)
    assert first > 1.3 * second


def test_spike_and_ramp_patterns():
    cfg = load_config(None, {"phase_definitions": [
        {"name": "spike", "pattern": "spike", "multiplier": 0.5, "phase_duration": 60,
         "spike_multiplier": 4.0, "spike_start": 20, "spike_duration": 10},
        {"name": "ramp", "pattern": "ramp", "phase_duration": 60, "ramp_from": 0.2, "ramp_to": 1.8},
    ]})
    spike, ramp = cfg.phase_definitions
    assert phase_task_count(300, spike) == int(300 * (0.5 * 50 + 4.0 * 10) / 60)
    assert phase_task_count(300, ramp) == 300
    arr, _ = phase_arrivals(np.random.default_rng(1), 300, 1.0, spike)
    # The burst's ten windows hold 4.0 x 10 / (0.5 x 50 + 4.0 x 10) = 62 % of the tasks, packed
    # into about ten seconds (the emitter's clock drifts from the nominal schedule).
    in_ten_seconds = np.searchsorted(arr, arr + 10.0) - np.arange(arr.size)
    assert in_ten_seconds.max() > 0.5 * arr.size
    assert 8 < arr[in_ten_seconds.argmax()] < 25
    arr, _ = phase_arrivals(np.random.default_rng(1), 300, 1.0, ramp)
    assert np.sum(arr >= 30) > 2 * np.sum(arr < 30)
    with pytest.raises(ConfigError, match=r"phase_definitions\[0\].spike_start"):
        load_config(None, {"phase_definitions": [
            {"name": "s", "pattern": "spike", "phase_duration": 10, "spike_start": 5,
             "spike_duration": 10}]})


def test_processing_time_distribution_matches_calibration():
    cfg = load_config().processing
    p, size = processing_times(np.random.default_rng(0), 200_000, cfg)
    assert p.mean() == pytest.approx(1.471, abs=0.01)
    assert p.std() == pytest.approx(0.674, abs=0.01)
    assert np.mean(p >= 2.87) == pytest.approx(0.0535, abs=0.003)
    assert size.min() >= 512 and size.max() <= 4096
    np.testing.assert_allclose(p, cfg.model_a * size.astype(float) ** 2 + cfg.model_b)


def test_deadlines_are_clamped_twice_processing():
    wl = generate_workload(load_config(), seed=1)
    np.testing.assert_allclose(wl.deadlines, np.clip(2 * wl.processing, 0.1, 30))


def test_trace_replay(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,processing_s\n0.5,1.0\n0.0,2.0\n3.0,0.5\n")
    wl = generate_workload(load_config(None, {"trace": str(trace)}), seed=0)
    assert wl.arrivals.tolist() == [0.0, 0.5, 3.0]
    assert wl.processing.tolist() == [2.0, 1.0, 0.5]
    bad = tmp_path / "bad.csv"
    bad.write_text("0.0,1.0\n1.0,oops\n")
    with pytest.raises(ConfigError, match="line 2"):
        generate_workload(load_config(None, {"trace": str(bad)}), seed=0)
