"""Baseline policies (SPEC §7 reactive rule, KEDA queue scaler, Static) and the agent registry."""

import numpy as np
import pytest

from rl_autoscaling.env import OpenFaaSAutoscalingEnv
from rl_autoscaling.policies import (
    KedaQueue,
    ReactiveAverage,
    ReactiveMaximum,
    Static,
    action_for_delta,
)
from rl_autoscaling.training.agents import (
    AgentError,
    AgentOptions,
    build_policies,
    build_policy,
    canonical_name,
    check_models,
    is_baseline,
    resolve_agents,
)

DOWN, STAY, UP = 0, 1, 2


def obs(input_q=0, worker_q=0, result_q=0, output_q=0, workers=12, avg=1.5, mx=1.5,
        arrival=0.0, qos=1.0):
    return np.array([input_q, worker_q, result_q, output_q, workers, avg, mx, arrival, qos],
                    dtype=np.float32)


def step_info(step, enqueued, step_duration=8.0):
    return {"step": step, "enqueued_total": enqueued, "step_duration": step_duration}


# --------------------------------------------------------------------------- action mapping


def test_action_for_delta_uses_the_env_action_deltas():
    assert [action_for_delta((-1, 0, 1), d) for d in (-1, 0, 1)] == [0, 1, 2]
    assert [action_for_delta((1, 0, -1), d) for d in (-1, 0, 1)] == [2, 1, 0]
    # Wider sets: the smallest step of the same sign.
    assert [action_for_delta((-2, -1, 0, 1, 2), d) for d in (-1, 0, 1)] == [1, 2, 3]
    assert [action_for_delta((-3, 0, 3), d) for d in (-1, 0, 1)] == [0, 1, 2]
    with pytest.raises(ValueError, match="no action for delta"):
        action_for_delta((0, 1), -1)
    with pytest.raises(ValueError):
        ReactiveAverage(action_deltas=(0, 1, 2))


def test_policies_return_indices_of_a_reordered_delta_set():
    p = ReactiveAverage(action_deltas=(1, 0, -1))
    p.reset()
    # Hand case below (W=2, N_opt=1.5, E=0 -> delta -0.5 -> -1): index of -1 is 2 here.
    assert p.act(obs(workers=2, arrival=1.0), {"step": 0, "enqueued_total": 0}) == 2


# --------------------------------------------------------------------------- reactive rule


def test_reactive_first_step_after_reset_uses_mirrored_enqueued_zero():
    """At the first act() after reset E = 0, whatever the reset info counts.

    W=2, arrival 1.0, avg 1.5 -> T=1.5, H_eff=8, N_opt = 1.5; E=0 -> active 0, busy 0,
    delta = 1.5 - 2 = -0.5 -> scale down. (With E=50 from the reset info: active 50, A=2,
    busy = 2/8*1.5*0.5 = 0.1875, delta = -0.3125 -> no-op.)
    """
    p = ReactiveAverage()
    p.act(obs(worker_q=3), step_info(5, 400))  # state from a previous episode
    p.reset()
    reset_info = {"step": 0, "enqueued_total": 50}
    assert p.act(obs(workers=2, arrival=1.0), reset_info) == DOWN
    d = p.last_decision
    assert d["E"] == 0 and d["active"] == 0 and d["busy"] == 0
    assert d["N_opt"] == pytest.approx(1.5) and d["delta"] == pytest.approx(-0.5)
    # The same reset observation with E = 50 would have been a no-op: the rule is sensitive.
    p.act(obs(workers=2, arrival=1.0), step_info(1, 50))
    assert p.last_decision["delta"] == pytest.approx(-0.3125)
    # A caller that forgets reset(): the reset info (step 0) still means E = 0.
    assert p.act(obs(workers=2, arrival=1.0), reset_info) == DOWN


def test_reactive_average_hand_computed_step():
    """T = 2, H_eff = 8, N_opt = 3*2 + 16/8*2 = 10; active = 65 - (16+1+40) = 8, A = 7,
    busy = 7/8*2*0.5 = 0.875; delta = 10 - (10 - 0.875) = 0.875 -> +1."""
    p = ReactiveAverage()
    p.reset()
    o = obs(input_q=2, worker_q=16, result_q=1, output_q=40, workers=10, avg=2.0, mx=4.0,
            arrival=3.0, qos=0.9)
    assert p.act(o, step_info(3, 65)) == UP
    d = p.last_decision
    assert (d["E"], d["T"], d["H_eff"]) == (65, 2.0, 8.0)
    assert d["N_opt"] == pytest.approx(10.0) and d["A"] == 7
    assert d["busy"] == pytest.approx(0.875) and d["delta"] == pytest.approx(0.875)


def test_reactive_maximum_uses_max_time_and_horizon_stretch():
    """Maximum: T = max(10, 1, 0.1) = 10 > H -> H_eff = 10; N_opt = max(1, 0.1*10) = 1;
    active = 20 - 18 = 2, A = min(2, 1) = 1, busy = 1/10*10*1.0 = 1; delta = 1 - (2-1) = 0.
    Average on the same observation: T = 1, H_eff = 8, busy = 1/8*1*0.5 = 0.0625,
    delta = 1 - 1.9375 = -0.9375 -> -1."""
    o = obs(worker_q=0, output_q=18, workers=2, avg=1.0, mx=10.0, arrival=0.1)
    mx, av = ReactiveMaximum(), ReactiveAverage()
    assert mx.act(o, step_info(4, 20)) == STAY
    assert (mx.last_decision["T"], mx.last_decision["H_eff"]) == (10.0, 10.0)
    assert mx.last_decision["busy"] == pytest.approx(1.0)
    assert mx.last_decision["delta"] == pytest.approx(0.0, abs=1e-6)
    assert av.act(o, step_info(4, 20)) == DOWN
    assert av.last_decision["delta"] == pytest.approx(-0.9375, abs=1e-6)


def test_reactive_thresholds_and_floors():
    p = ReactiveAverage()
    # N_opt = 1.25*2 = 2.5 with W=2 -> delta exactly +0.5 -> +1.
    assert p.act(obs(workers=2, avg=2.0, arrival=1.25), step_info(1, 0)) == UP
    # N_opt = 0.75*2 = 1.5 -> delta exactly -0.5 -> -1.
    assert p.act(obs(workers=2, avg=2.0, arrival=0.75), step_info(1, 0)) == DOWN
    # Small |delta| -> no-op; T floors at 0.1 and N_opt at 1.
    assert p.act(obs(workers=1, avg=0.0, arrival=0.5), step_info(1, 0)) == STAY
    assert p.last_decision["T"] == pytest.approx(0.1) and p.last_decision["N_opt"] == 1.0
    # active = 1 -> A = 0 (one task is not counted as a busy worker).
    p.act(obs(workers=3, output_q=4), step_info(1, 5))
    assert p.last_decision["active"] == 1 and p.last_decision["A"] == 0


def test_reactive_factors_are_settable():
    o = obs(workers=10, worker_q=0, avg=2.0, arrival=2.0)  # N_opt = 4 * safety
    assert ReactiveAverage().act(o, step_info(1, 0)) == DOWN
    assert ReactiveAverage(safety_factor=2.8).act(o, step_info(1, 0)) == UP  # 11.2 - 10
    # adjustment: A = 9 busy workers, T = 2, H = 8 -> busy = 2.25 * adjustment.
    o2 = obs(workers=10, output_q=0, avg=2.0, arrival=4.0)  # N_opt = 8
    assert ReactiveAverage(adjustment_factor=0.0).act(o2, step_info(1, 10)) == DOWN
    assert ReactiveAverage(adjustment_factor=1.0).act(o2, step_info(1, 10)) == STAY
    # horizon: worker_q / H_eff * T; a longer horizon asks for fewer workers.
    o3 = obs(workers=6, worker_q=40, avg=1.0, arrival=0.0)
    assert ReactiveAverage(horizon=4).act(o3, step_info(1, 40)) == UP      # N_opt 10
    assert ReactiveAverage(horizon=40).act(o3, step_info(1, 40)) == DOWN   # N_opt 1
    with pytest.raises(ValueError):
        ReactiveAverage(horizon=0)


def test_reactive_mirrors_enqueued_total_from_each_step_in_the_env():
    env = OpenFaaSAutoscalingEnv(max_steps=6, step_duration=8, observation_window=8,
                                 initial_workers=12)
    p = ReactiveMaximum()
    o, info = env.reset(seed=5)
    assert info["enqueued_total"] > 0  # the reset info counts tasks ...
    p.reset()
    seen = []
    for _ in range(6):
        a = p.act(o, info)
        seen.append((p.last_decision["E"], info["enqueued_total"], info["step"]))
        o, _, term, trunc, info = env.step(a)
        if term or trunc:
            break
    assert seen[0][0] == 0  # ... but the first decision sees E = 0
    assert all(e == enq for e, enq, step in seen[1:]) and seen[1][2] == 1


# --------------------------------------------------------------------------- KEDA


def test_keda_desired_is_ceil_of_queue_over_target_clamped():
    k = KedaQueue(target_per_replica=5, min_workers=2, max_workers=20)
    assert [k.desired(q) for q in (0, 1, 5, 6, 10, 11, 99, 1000)] == [2, 2, 2, 2, 2, 3, 20, 20]
    assert KedaQueue(target_per_replica=2.5).desired(6) == 3


def test_keda_scale_down_stabilisation_window():
    """target 5, window 30 s, 10 s steps. The window starts with the initial worker count (the
    HPA's seed), so no scale-down at reset; after the queue spike the highest recommendation
    (8) holds the workers for 30 s; then the farm steps down to the window maximum."""
    k = KedaQueue(target_per_replica=5, stabilization_window=30, step_duration=10)
    k.reset()
    script = [  # (info, workers, worker_q, expected action, expected target)
        ({"step": 0}, 4, 0, STAY, 4),        # t=0: desired 1, window max 4 (seed)
        (step_info(1, 0, 10), 4, 40, UP, 8),   # t=10: desired 8 -> scale up at once
        (step_info(2, 0, 10), 5, 0, STAY, 5),  # t=20: desired 1, window max 8 -> hold
        (step_info(3, 0, 10), 5, 0, STAY, 5),  # t=30: seed (t=0) still in the window
        (step_info(4, 0, 10), 5, 0, STAY, 5),  # t=40: the 8 from t=10 is 30 s old: kept
        (step_info(5, 0, 10), 5, 0, DOWN, 1),  # t=50: window [20, 50] holds only 1s
        (step_info(6, 0, 10), 4, 12, DOWN, 3),  # t=60: desired 3 < 4, window max 3
        (step_info(7, 0, 10), 3, 0, STAY, 3),  # t=70: window [40, 70] max 3
    ]
    for i, (info, w, q, action, target) in enumerate(script):
        assert k.act(obs(workers=w, worker_q=q), info) == action, f"step {i}"
        assert k.last_decision["target"] == target, f"step {i}"
    assert k.last_decision["time"] == 70


def test_keda_without_window_scales_down_at_once_and_uses_real_step_time():
    k = KedaQueue(target_per_replica=5, stabilization_window=0)
    assert k.act(obs(workers=4), {"step": 0}) == DOWN
    k2 = KedaQueue(stabilization_window=25, step_duration=8)
    k2.act(obs(workers=4, worker_q=40), {"step": 0})
    k2.act(obs(workers=5, worker_q=0), {"step": 1, "step_duration": 12.5})
    assert k2.act(obs(workers=5), {"step": 2, "step_duration": 12.5}) == STAY  # t=25: 8 kept
    assert k2.act(obs(workers=5), {"step": 3, "step_duration": 12.5}) == DOWN  # t=37.5
    k3 = KedaQueue(stabilization_window=25, step_duration=8)
    k3.act(obs(workers=4, worker_q=40), {"step": 0})
    for step in (1, 2, 3):  # no step_duration in info: nominal 8 s -> t = 24 still holds 8
        assert k3.act(obs(workers=5), {"step": step}) == STAY
    assert k3.act(obs(workers=5), {"step": 4}) == DOWN


# --------------------------------------------------------------------------- Static


def test_static_steps_toward_n_then_holds():
    s = Static(3)
    assert [s.act(obs(workers=w), {}) for w in (5, 4, 3, 3, 2)] == [DOWN, DOWN, STAY, STAY, UP]
    env = OpenFaaSAutoscalingEnv(max_steps=5, step_duration=8, initial_workers=12)
    o, info = env.reset(seed=1)
    for _ in range(5):
        o, *_ = env.step(Static(14).act(o, info))
    assert o[4] == 14


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("raw, canon", [
    ("reactiveaverage", "ReactiveAverage"), ("Reactive Average", "ReactiveAverage"),
    ("REACTIVE_AVERAGE", "ReactiveAverage"), ("reactive-maximum", "ReactiveMaximum"),
    ("ReactiveMaximum", "ReactiveMaximum"), ("sarsa", "SARSA"), ("S-A-R-S-A", "SARSA"),
    ("dqn", "DQN"), ("KEDA", "Keda"), ("keda_queue", "Keda"), ("static", "Static"),
    ("Static 16", "Static16"), ("static-08", "Static8"),
])
def test_agent_names_are_normalised(raw, canon):
    assert canonical_name(raw) == canon


def test_unknown_agent_and_missing_models_are_clear_errors(tmp_path):
    with pytest.raises(AgentError, match="unknown agent 'reactive_median'"):
        resolve_agents(["keda", "reactive_median"])
    assert resolve_agents(["keda", "KEDA", "static", "Static"]) == ["Keda", "Static"]
    with pytest.raises(AgentError, match="--model"):
        check_models(["sarsa"], AgentOptions())
    with pytest.raises(AgentError, match="--dqn-model"):
        build_policy("dqn", AgentOptions())
    with pytest.raises(AgentError, match="model file not found"):
        build_policy("sarsa", AgentOptions(model=tmp_path / "nope.pkl"))
    # Baselines never need a model; trained agents are not baselines.
    assert is_baseline("static-4") and is_baseline("keda") and not is_baseline("Sarsa")
    with pytest.raises(AgentError, match="outside"):
        build_policy("static40", AgentOptions(max_workers=32))


def test_build_policies_constructs_configured_baselines():
    opts = AgentOptions(action_deltas=(-2, -1, 0, 1, 2), initial_workers=9, keda_target=3,
                        keda_window=60, min_workers=2, max_workers=20)
    ps = build_policies(["reactive average", "reactivemaximum", "keda", "static", "static5"],
                        opts)
    assert list(ps) == ["ReactiveAverage", "ReactiveMaximum", "Keda", "Static", "Static5"]
    assert isinstance(ps["ReactiveAverage"], ReactiveAverage)
    assert (ps["ReactiveAverage"].safety_factor, ps["ReactiveAverage"].adjustment_factor) == (1, 0.5)
    assert (ps["ReactiveMaximum"].safety_factor, ps["ReactiveMaximum"].adjustment_factor) == (1, 1)
    k = ps["Keda"]
    assert (k.target_per_replica, k.stabilization_window, k.min_workers, k.max_workers) == (
        3, 60, 2, 20)
    assert ps["Static"].workers == 9 and ps["Static5"].workers == 5
    assert ps["Static5"].act(obs(workers=9), {}) == 1  # index of -1 in the wider set
    assert build_policy("static", AgentOptions(static_workers=4)).workers == 4


# --------------------------------------------------------------------------- HPA


def test_hpa_computes_the_hpa_formula_with_its_tolerance():
    from rl_autoscaling.policies import Hpa

    load = Hpa(target=0.5, metric="load", stabilization_window=0, service_time=1.5)
    # 10 workers, 5 tasks/s x 1.5 s = 7.5 busy: metric 0.75 -> ceil(10 x 0.75 / 0.5) = 15
    assert load.act(obs(workers=10, arrival=5.0), step_info(1, 0)) == UP
    assert load.last_decision["desired"] == 15
    # 2 tasks/s: metric 0.3 -> ceil(10 x 0.6) = 6, at once without a window
    assert load.act(obs(workers=10, arrival=2.0), step_info(2, 0)) == DOWN
    assert load.last_decision["desired"] == 6
    # within the 10 % tolerance (ratio 1.05): desired = current
    assert load.act(obs(workers=10, arrival=3.5), step_info(3, 0)) == STAY
    assert load.last_decision["desired"] == 10
    util = Hpa(target=0.8, stabilization_window=0)  # the HPA's usual CPU target
    # 40 enqueued, 12 still queued: 28 inside workers, capped at the 20 workers -> 1.0 / 0.8
    assert util.act(obs(workers=20, worker_q=10, result_q=1, output_q=1), step_info(1, 40)) == UP
    assert util.last_decision["desired"] == 25
    # 6 busy of 20: ceil(20 x 0.3 / 0.8) = 8
    assert util.act(obs(workers=20, output_q=34), step_info(2, 40)) == DOWN
    assert util.last_decision["desired"] == 8


def test_hpa_respects_the_scale_down_window():
    from rl_autoscaling.policies import Hpa

    hpa = Hpa(target=0.5, metric="load", step_duration=8.0)  # the HPA's 300 s window
    actions = [hpa.act(obs(workers=12, arrival=0.5), {"step": 0})]
    actions += [hpa.act(obs(workers=12, arrival=0.5), step_info(k, 0)) for k in range(1, 40)]
    # the seed recommendation (12 workers at t=0) holds until it is older than 300 s: step 38
    assert actions.index(DOWN) == 38 and set(actions[:38]) == {STAY}
    hpa.reset()
    hpa.act(obs(workers=12, arrival=0.5), {"step": 0})
    assert hpa.act(obs(workers=12, arrival=6.0), step_info(1, 0)) == UP  # up at once


def test_hpa_agents_by_name():
    from rl_autoscaling.policies import Hpa

    assert canonical_name("hpa-calibrated") == "HpaCalibrated" and canonical_name("HPA") == "Hpa"
    hpa = build_policy("hpa", AgentOptions(min_workers=2, max_workers=20))
    assert isinstance(hpa, Hpa) and (hpa.metric, hpa.target, hpa.tolerance) == (
        "utilisation", 0.8, 0.1)
    assert (hpa.stabilization_window, hpa.min_workers, hpa.max_workers) == (300, 2, 20)
    with pytest.raises(AgentError, match="calibrated first"):
        build_policy("hpacalibrated", AgentOptions())
