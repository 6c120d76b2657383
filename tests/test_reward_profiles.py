"""The ``reward.profile`` switch: ``seed`` is SPEC §4's reward unchanged; ``slo_cost`` ranks
episodes by (SLO met first, then fewer worker-seconds)."""

from __future__ import annotations

import itertools

import pytest

from rl_autoscaling.config import ConfigError, RewardConfig, load_config
from rl_autoscaling.env import OpenFaaSAutoscalingEnv
from rl_autoscaling.observation import Obs
from rl_autoscaling.reward import slo_cost_reward, slo_excess, step_reward

STEP_S = 8.0


def episode_return(steps, unfinished, cfg):
    """Return of a hand-made trajectory: ``steps`` = [(workers, cumulative misses, cumulative
    collected)], ``unfinished`` tasks left at the end; rewards through the env's functions."""
    target = cfg.slo_cost.qos_target
    total, before = 0.0, 0.0
    for i, (workers, misses, collected) in enumerate(steps):
        done = i == len(steps) - 1
        after = slo_excess(misses, collected, target, unfinished if done else 0)
        total += slo_cost_reward(workers, STEP_S, before, after, done, cfg)
        before = after
    return total


def trajectory(workers, misses_per_step, tasks_per_step=40, unfinished=0):
    steps, v, c = [], 0, 0
    for w, m in zip(workers, misses_per_step):
        v += m
        c += tasks_per_step
        steps.append((w, v, c))
    return steps, unfinished


def worker_seconds(traj):
    return sum(w for w, _, _ in traj[0]) * STEP_S


def slo_met(traj, target):
    steps, unfinished = traj
    _, v, c = steps[-1]
    return (c - v) / (c + unfinished) >= target


def hand_made():
    n = 30
    return {
        # meet the SLO (<= 1 % misses of 1200 tasks = 12)
        "static18_clean": trajectory([18] * n, [0] * n),
        "static16_within_budget": trajectory([16] * n, [0] * 20 + [1] * 10),
        "adaptive_lean": trajectory([6] * 6 + [14] * 12 + [12] * 12, [0] * 28 + [6, 6]),
        "max_workers": trajectory([32] * n, [0] * n),
        # miss the SLO
        "static14_just_missed": trajectory([14] * n, [0] * 17 + [1] * 13),
        "static8_overloaded": trajectory([8] * n, [10] * n),
        "cheap_but_unfinished": trajectory([4] * n, [0] * n, unfinished=200),
        "rich_but_late_miss": trajectory([32] * n, [0] * 29 + [30]),
    }


@pytest.mark.parametrize("cfg", [RewardConfig(profile="slo_cost"),
                                 load_config(None, {"reward.profile": "slo_cost"}).reward])
def test_slo_cost_ranks_slo_first_then_worker_seconds(cfg):
    target = cfg.slo_cost.qos_target
    trajs = hand_made()
    # The miss penalty dominates the largest worker cost possible (32 workers, 30 steps).
    assert cfg.slo_cost.miss_penalty > cfg.slo_cost.worker_cost * 32 * 30 * STEP_S
    for (na, a), (nb, b) in itertools.permutations(trajs.items(), 2):
        ra, rb = episode_return(*a, cfg), episode_return(*b, cfg)
        if slo_met(a, target) and not slo_met(b, target):
            assert ra > rb, (na, ra, nb, rb)  # SLO met first ...
        elif slo_met(a, target) and slo_met(b, target) and worker_seconds(a) < worker_seconds(b):
            assert ra > rb, (na, ra, nb, rb)  # ... then fewer worker-seconds
        elif not (slo_met(a, target) or slo_met(b, target)):
            # Two misses: a smaller shortfall with no more worker-seconds ranks higher.
            ea, eb = (slo_excess(*t[0][-1][1:], target, t[1]) for t in (a, b))
            if ea < eb and worker_seconds(a) <= worker_seconds(b):
                assert ra > rb, (na, ra, nb, rb)
    met = {k for k, t in trajs.items() if slo_met(t, target)}
    assert met == {"static18_clean", "static16_within_budget", "adaptive_lean", "max_workers"}
    # Among SLO-meeting episodes the return is exactly minus the worker cost.
    for k in met:
        ws = worker_seconds(trajs[k])
        assert episode_return(*trajs[k], cfg) == pytest.approx(-cfg.slo_cost.worker_cost * ws)


def test_slo_excess_counts_unfinished_tasks_as_misses():
    assert slo_excess(10, 1000, 0.99) == 0.0
    assert slo_excess(11, 1000, 0.99) == pytest.approx(1.0)
    assert slo_excess(0, 1000, 0.99, unfinished=100) == pytest.approx(100 - 0.01 * 1100)


def test_seed_profile_is_the_default_and_unchanged():
    cfg = load_config().reward
    assert cfg.profile == "seed"
    assert step_reward(1.0, 0.0, 12, 0, cfg) == pytest.approx(5.40)
    assert step_reward(1.0, 0.0, 16, 0, cfg) == pytest.approx(5.30)


def test_unknown_profile_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="reward.profile"):
        load_config(None, {"reward.profile": "cheap"})


def test_env_slo_cost_return_matches_the_formula():
    """On the twin, an episode's slo_cost return is -(c * worker-seconds + P * excess + B)."""
    env = OpenFaaSAutoscalingEnv(max_steps=30, step_duration=8, observation_window=8,
                                 initial_workers=12, config={"reward.profile": "slo_cost"})
    s = env.farm_config.reward.slo_cost
    for action in (1, 0, 2):  # hold 12 (misses the SLO), shrink, grow
        env.reset(seed=10_001)
        total, workers, done = 0.0, 0.0, False
        while not done:
            obs, r, term, trunc, info = env.step(action)
            total += r
            workers += obs[4]
            done = term or trunc
        collected = info["processed_tasks"]
        unfinished = info["enqueued_total"] - collected  # enqueued, never collected
        excess = slo_excess(info["qos_violations"], collected, s.qos_target, unfinished)
        expected = -(s.worker_cost * workers * 8 + s.violation_cost * excess
                     + (s.miss_penalty if excess > 0 else 0.0))
        assert total == pytest.approx(expected, rel=1e-6)
    env.close()


def test_a_task_whose_deadline_passes_while_queued_is_a_miss_at_that_step(tmp_path):
    """One worker, six tasks of 2.5 s (deadline 5 s) at t = 0. After the first 8-s step the
    worker has served tasks 0-2 (1 and 2 late), task 3 is in the worker and 4-5 wait; all
    three are past their deadline: the step already pays for them. The second step collects
    3-5 (late, as priced) and pays for no new miss."""
    trace = tmp_path / "six.csv"
    trace.write_text("arrival_s,processing_s\n" + "0,2.5\n" * 6 + "100,2.5\n")
    env = OpenFaaSAutoscalingEnv(max_steps=5, step_duration=8, observation_window=8,
                                 initial_workers=1, min_workers=1,
                                 config={"trace": str(trace), "reward.profile": "slo_cost"})
    s = env.farm_config.reward.slo_cost
    env.reset(seed=3)
    obs, r1, *_, info = env.step(1)
    assert (obs[Obs.OUTPUT_QUEUE], info["qos_violations"], obs[Obs.WORKER_QUEUE]) == (3, 2, 2)
    excess = 2 + 3 - (1 - s.qos_target) * (3 + 3)  # V + O - (1 - s)(C + O)
    assert r1 == pytest.approx(-s.worker_cost * 8 - s.violation_cost * excess)
    obs, r2, *_, info = env.step(1)
    assert (obs[Obs.OUTPUT_QUEUE], info["qos_violations"]) == (6, 5)
    assert r2 == pytest.approx(-s.worker_cost * 8)  # the same misses, now collected
    env.close()


def test_a_stalled_farm_pays_as_it_stalls_within_the_dqn_clip():
    """Two workers under the default workload stall the farm: the misses are priced over the
    episode (no end-of-episode cliff) and no step's reward leaves DQN's +-100 clip."""
    env = OpenFaaSAutoscalingEnv(max_steps=30, step_duration=8, observation_window=8,
                                 initial_workers=2, config={"reward.profile": "slo_cost"})
    env.reset(seed=10_002)
    rewards, done = [], False
    while not done:
        _, r, term, trunc, info = env.step(1)
        rewards.append(r)
        done = term or trunc
    assert info["episode_final_qos"] < 0.5
    assert min(rewards) > -100.0
    assert rewards[-1] > 0.2 * sum(rewards)  # most of the price is paid before the end
    env.close()
