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


def test_rate_rise_is_the_steepest_increase_within_the_horizon(tmp_path):
    from rl_autoscaling.farm.workload import rate_rise

    day = load_config("day")  # x0.3 -> x2.0 of 300 tasks/min over 240 s, then back down
    assert rate_rise(day, 8.0) == pytest.approx((2.0 - 0.3) * 5.0 / 240 * 8, rel=0.02)
    assert rate_rise(day, 16.0) == pytest.approx(2 * rate_rise(day, 8.0), rel=0.02)
    # the default workload jumps from x0.3 to x1.5 between two seconds
    assert rate_rise(load_config(None), 1.0) == pytest.approx((1.5 - 0.3) * 5.0, rel=0.02)
    # a falling rate never counts
    down = load_config(None, {"phase_definitions": [
        {"name": "down", "phase_duration": 120, "pattern": "ramp", "ramp_from": 2.0,
         "ramp_to": 0.3}]})
    assert rate_rise(down, 8.0) == 0.0
    # a trace: arrivals per minute; 1/s for 3 minutes, then 4/s for 3 minutes
    trace = tmp_path / "steps.csv"
    times = [i * 1.0 for i in range(180)] + [180 + i * 0.25 for i in range(720)]
    trace.write_text("".join(f"{t},1.0\n" for t in times))
    rise = rate_rise(load_config(None, {"trace": str(trace)}), 60.0)
    assert rise == pytest.approx(3.0, abs=0.1)


def test_a_held_rate_rise_leaves_out_bursts():
    """With ``hold``, only a rate kept that long counts: the default workload's jump to x1.5
    lasts a minute, flash crowds' 20-s bursts do not last 24 s, a day's ramp is kept."""
    from rl_autoscaling.farm.workload import rate_rise

    default, flash, day = load_config(None), load_config("flash"), load_config("day")
    assert rate_rise(default, 8.0, hold=24.0) == pytest.approx((1.5 - 0.3) * 5.0, rel=0.02)
    assert rate_rise(flash, 8.0) == pytest.approx((2.6 - 0.4) * 5.0, rel=0.02)
    assert rate_rise(flash, 8.0, hold=24.0) == 0.0
    # ... but a 20-s burst is kept for 16 s
    assert rate_rise(flash, 8.0, hold=16.0) == pytest.approx((2.6 - 0.4) * 5.0, rel=0.02)
    assert rate_rise(day, 8.0, hold=24.0) == pytest.approx(rate_rise(day, 8.0), rel=0.02)
    # a hold longer than the workload: nothing is kept
    assert rate_rise(flash, 8.0, hold=10_000.0) == 0.0


# --------------------------------------------------------------------------- profiles


def test_day_and_flash_profiles_have_the_stated_shape():
    from rl_autoscaling.farm.workload import (
        episode_steps,
        episode_workload,
        expected_task_count,
        rate_profile,
        workload_seconds,
    )

    day = load_config("day")
    assert workload_seconds(day) == 600 and episode_steps(day, 8.0) == 77
    # x0.3 -> x2.0 over 4 minutes, 1 minute at x2.0, back down over 4 minutes, 1 minute at x0.3
    starts = np.cumsum([0] + [p.phase_duration for p in day.phase_definitions])
    assert list(starts) == [0, 240, 300, 540, 600]

    def rate_at(cfg, t):
        k = int(np.searchsorted(starts, t, side="right")) - 1
        return float(rate_profile(cfg.phase_definitions[k], np.array([t - starts[k]]))[0])

    assert [rate_at(day, t) for t in (0, 120, 240, 299, 420, 560)] == pytest.approx(
        [0.3, 1.15, 2.0, 2.0, 1.15, 0.3])
    assert expected_task_count(day) == 1380 + 600 + 1380 + 90

    flash = load_config("flash")
    assert workload_seconds(flash) == 330 and expected_task_count(flash) == 1100
    wl = episode_workload(flash, 3)
    # two 20-s bursts at x2.6 (13 tasks/s) over a quiet x0.4 (2 tasks/s)
    per_second = np.bincount(wl.arrivals.astype(int), minlength=330)
    busy = np.flatnonzero(np.convolve(per_second, np.ones(20), "valid") > 150)
    assert busy.size and busy.max() - busy.min() > 100  # two separate bursts...
    assert per_second[:50].mean() < 3  # ...over a quiet load
    assert {p.pattern for p in flash.phase_definitions} == {"steady", "spike"}


def test_the_generator_is_deterministic_per_seed_and_covers_its_ranges():
    from rl_autoscaling.farm.workload import (
        episode_profile,
        episode_workload,
        expected_task_count,
        generated_phases,
        phase_count,
        rate_profile,
    )

    mixed = load_config("mixed")
    gen = mixed.generator
    assert gen is not None and (gen.rate_min, gen.rate_max) == (0.2, 2.5)
    a, b = episode_workload(mixed, 11), episode_workload(mixed, 11)
    assert np.array_equal(a.arrivals, b.arrivals) and a.phase_names == b.phase_names
    assert episode_workload(mixed, 12).phase_names != a.phase_names
    assert a.expected_tasks <= expected_task_count(mixed)
    lengths, rates, shapes, counts, openings = [], [], set(), [], []
    for seed in range(200):
        phases = episode_profile(mixed, seed).phase_definitions
        lengths.append(sum(p.phase_duration for p in phases))
        counts.append(len(phases))
        shapes.update(p.name.split()[1] for p in phases)
        for p in phases:
            t = np.linspace(0, p.phase_duration, 50, endpoint=False)
            rates.extend(rate_profile(p, t).tolist())
            if p.name.startswith("1 "):  # the first shape (a day has three phases)
                openings.extend(rate_profile(p, t).tolist())
    # the first shape never exceeds start_max (x1.0: the workers at reset serve it)
    assert gen.start_max == 1.0 and 0.9 < max(openings) <= gen.start_max
    # 30-120 steps of 8 s, rates x0.2-x2.5: covered, never exceeded
    assert gen.episode_min <= min(lengths) < 300 and 900 < max(lengths) <= gen.episode_max
    assert gen.rate_min <= min(rates) < 0.3 and 2.4 < max(rates) <= gen.rate_max
    assert shapes == {"steady", "ramp", "day", "burst"}
    assert max(counts) <= phase_count(mixed)
    # the draw is the generator's alone: same stream, same phases
    assert generated_phases(gen, np.random.default_rng(5)) == generated_phases(
        gen, np.random.default_rng(5))


def test_a_generated_episode_finishes_within_episode_steps():
    from rl_autoscaling.env import OpenFaaSAutoscalingEnv
    from rl_autoscaling.farm.workload import episode_steps
    from rl_autoscaling.observation import Obs

    cfg = load_config("mixed", {"generator": {"episode_min": 60, "episode_max": 100,
                                              "shape_min": 20, "shape_max": 50}})
    env = OpenFaaSAutoscalingEnv(max_steps=episode_steps(cfg, 8.0), step_duration=8.0,
                                 initial_workers=24, config=cfg)
    for seed in (1, 2):
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(2)
            # the bounds the generator gives the env: phases and tasks of any episode
            # (the arrival rate's bound is the observation's own, issue 21's other part)
            for k in (Obs.INPUT_QUEUE, Obs.OUTPUT_QUEUE):
                assert obs[k] <= env.observation_space.high[k]
            done = terminated or truncated
        assert terminated
        assert info["processed_tasks"] == env.backend.workload.expected_tasks
