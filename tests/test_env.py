"""OpenFaaSAutoscalingEnv: the SPEC §4 contract on the simulated twin."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rl_autoscaling  # noqa: F401  (registers the Gymnasium id)
from rl_autoscaling.config import ConfigError, load_config
from rl_autoscaling.env import GYM_ENV_ID, OpenFaaSAutoscalingEnv
from rl_autoscaling.observation import Obs
from rl_autoscaling.reward import episode_end_reward, step_reward

INFO_KEYS = {
    "step", "queue_length", "workers", "qos_rate", "requested_delta", "applied_delta",
    "total_reward", "scaling_actions", "qos_violations", "scaling_time", "step_duration",
    "program_start_time", "task_generation_start_time", "task_generation_end_time",
    "episode_final_qos", "processed_tasks", "unfinished_tasks", "enqueued_total",
}
CLI_ENV = dict(max_steps=30, step_duration=8, observation_window=8, initial_workers=12)


def rollout(env, actions, seed):
    obs, info = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append(np.append(obs, r))
        if term or trunc:
            break
    return np.array(out[1:]), info


def test_gymnasium_env_checker_passes():
    check_env(OpenFaaSAutoscalingEnv(**CLI_ENV), skip_render_check=True)
    env = gym.make(GYM_ENV_ID, **CLI_ENV)  # registered id, with Gymnasium's passive checker
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(info) == INFO_KEYS


def test_spaces_match_spec():
    env = OpenFaaSAutoscalingEnv()
    assert env.action_space == gym.spaces.Discrete(3)
    np.testing.assert_array_equal(env.observation_space.low, [0, 0, 0, 0, 1, 0, 0, 0, 0])
    # the default workload peaks at 1.7 x 300 / 60 = 8.5 tasks/s: the rate to 1.5 x 8.5, the
    # worker queue to 60 s of that
    np.testing.assert_allclose(env.observation_space.high,
                               [3, 765, 10, 1140, 32, 150, 160, 12.75, 1])


def test_rate_and_queue_bounds_follow_the_workload(tmp_path):
    """The scale DQN's inputs get (observation bounds) covers the workload it is given."""
    day = {"base_rate": 600, "phase_definitions": [
        {"name": "up", "phase_duration": 60, "pattern": "ramp", "ramp_from": 0.3, "ramp_to": 2.5},
        {"name": "burst", "phase_duration": 60, "pattern": "spike", "multiplier": 0.5,
         "spike_multiplier": 3.0, "spike_start": 10, "spike_duration": 10}]}
    env = OpenFaaSAutoscalingEnv(config=day)
    high = env.observation_space.high
    assert high[Obs.ARRIVAL_RATE] == pytest.approx(1.5 * 3.0 * 600 / 60)  # the spike's 30/s
    assert high[Obs.WORKER_QUEUE] == pytest.approx(60 * 1.5 * 30)
    trace = tmp_path / "burst.csv"
    trace.write_text("".join(f"{i * 0.05:.2f},1.0\n" for i in range(200)))  # 20 tasks/s, 10 s
    assert OpenFaaSAutoscalingEnv(config={"trace": str(trace)}).observation_space.high[
        Obs.ARRIVAL_RATE] == pytest.approx(1.5 * 20)
    assert (env.max_steps, env.step_duration, env.observation_window, env.initial_workers) == (
        50, 10.0, 10.0, 1)


def test_first_observation_and_info():
    env = OpenFaaSAutoscalingEnv(**CLI_ENV)
    obs, info = env.reset(seed=3)
    assert obs[0] == 3  # the emitter has already popped phase 1
    assert obs[4] == 12 and obs[7] == 0.0  # arrival rate is 0 at the first observation
    assert (obs[5], obs[6], obs[8]) == (1.5, 1.5, 1.0)  # no task collected yet
    assert info["episode_final_qos"] is None and info["unfinished_tasks"] == 1140


def test_same_seed_identical_trajectory_different_seed_differs():
    actions = np.random.default_rng(0).integers(0, 3, 30)
    env = OpenFaaSAutoscalingEnv(**CLI_ENV)
    a, info_a = rollout(env, actions, seed=9)
    b, info_b = rollout(OpenFaaSAutoscalingEnv(**CLI_ENV), actions, seed=9)
    np.testing.assert_array_equal(a, b)
    assert info_a == info_b
    c, _ = rollout(env, actions, seed=10)
    assert not np.array_equal(a, c)


def test_task_seed_gives_reproducible_but_varying_episodes():
    e1 = OpenFaaSAutoscalingEnv(task_seed=42, **CLI_ENV)
    e2 = OpenFaaSAutoscalingEnv(task_seed=42, **CLI_ENV)
    workloads = []
    for _ in range(3):
        e1.reset()
        e2.reset()
        np.testing.assert_array_equal(e1.backend.workload.arrivals, e2.backend.workload.arrivals)
        workloads.append(e1.backend.workload.arrivals)
    assert not np.array_equal(workloads[0], workloads[1])  # a new workload each episode


def test_phase_shuffle_fixed_seed_same_order_each_episode():
    env = OpenFaaSAutoscalingEnv(phase_shuffle=True, phase_shuffle_seed=7, task_seed=1, **CLI_ENV)
    orders = set()
    for _ in range(5):
        env.reset()
        orders.add(env.backend.workload.phase_names)
    assert len(orders) == 1
    env = OpenFaaSAutoscalingEnv(phase_shuffle=True, task_seed=1, **CLI_ENV)
    orders = []
    for _ in range(8):
        env.reset()
        orders.append(env.backend.workload.phase_names)
    assert len(set(orders)) > 2  # a new order (almost) every episode
    env = OpenFaaSAutoscalingEnv(task_seed=1, **CLI_ENV)
    env.reset()
    assert env.backend.workload.phase_names[0] == "Steady Low Load"


def test_reward_checks_from_spec():
    cfg = load_config().reward
    assert step_reward(1.0, 0, 12, 0, cfg) == pytest.approx(5.40)
    assert step_reward(1.0, 0, 16, 0, cfg) == pytest.approx(5.30)
    # Overloaded (queue 60 > 30, QoS 0.8): scale up earns the scale-up weight.
    up = step_reward(0.8, 60, 10, +1, cfg)
    assert up == pytest.approx(36 * (0.8 - 0.95) - 2.5 * 1.0 - 0.08 + 5.5)
    # Healthy and idle: scale down earns the small down weight.
    down = step_reward(1.0, 2, 20, -1, cfg)
    assert down == pytest.approx(36 * 0.05 - 0.05 * 6 - 0.08 + 0.1 + 3.6)
    assert episode_end_reward(True, False, 0, cfg) == 8.0
    assert episode_end_reward(False, True, 12, cfg) == -24.0
    assert episode_end_reward(False, True, 500, cfg) == -60.0  # capped at queue_target


def test_terminated_when_drained_with_completion_bonus():
    env = OpenFaaSAutoscalingEnv(max_steps=60, step_duration=8, observation_window=8,
                                 initial_workers=20)
    obs, info = env.reset(seed=1)
    rewards = []
    while True:
        obs, r, term, trunc, info = env.step(1)
        rewards.append(r)
        if term or trunc:
            break
    assert term and not trunc
    assert info["processed_tasks"] == 1140 and info["unfinished_tasks"] == 0
    assert obs[0] == obs[1] == obs[2] == 0
    base = step_reward(float(obs[8]), float(obs[1]), float(obs[4]), 0, env.farm_config.reward)
    assert rewards[-1] == pytest.approx(base + 8.0)
    assert info["episode_final_qos"] == env.get_episode_final_qos()
    assert info["episode_final_qos"] == pytest.approx(
        (1140 - info["qos_violations"]) / 1140)
    assert info["total_reward"] == pytest.approx(sum(rewards))
    assert info["task_generation_end_time"] is not None


def test_truncated_with_unfinished_penalty_and_stragglers():
    env = OpenFaaSAutoscalingEnv(max_steps=5, step_duration=8, observation_window=8,
                                 initial_workers=4)
    env.reset(seed=2)
    for _ in range(5):
        obs, r, term, trunc, info = env.step(1)
    assert trunc and not term
    pending = 1140 - int(obs[3])
    base = step_reward(float(obs[8]), float(obs[1]), float(obs[4]), 0, env.farm_config.reward)
    assert r == pytest.approx(base - 2.0 * min(pending, 30))
    # Stragglers collected after the last observation count in the final QoS.
    assert info["processed_tasks"] >= obs[3]
    assert 0 <= info["episode_final_qos"] <= 1


def test_actions_are_clipped_and_scale_up_blocks_the_step():
    env = OpenFaaSAutoscalingEnv(max_workers=13, min_workers=11, **CLI_ENV)
    env.reset(seed=4)
    _, _, _, _, info = env.step(2)
    assert info["applied_delta"] == 1 and info["workers"] == 13
    assert 5.2 <= info["scaling_time"] <= 9.0
    assert 8.0 <= info["step_duration"] <= 9.5
    _, _, _, _, info = env.step(2)
    assert info["requested_delta"] == 1 and info["applied_delta"] == 0
    deltas = [env.step(0)[4]["applied_delta"] for _ in range(3)]
    assert deltas == [-1, -1, 0]  # 13 -> 12 -> 11, then clipped at min_workers
    assert env._target_workers == 11
    assert env.step(1)[4]["scaling_actions"] == 3


def test_wider_action_set():
    env = OpenFaaSAutoscalingEnv(action_deltas=(-2, -1, 0, 1, 2), **CLI_ENV)
    assert env.action_space.n == 5
    env.reset(seed=5)
    _, _, _, _, info = env.step(4)
    assert info["applied_delta"] == 2 and info["workers"] == 14
    _, _, _, _, info = env.step(0)
    assert info["applied_delta"] == -2


def test_env_config_overrides_and_errors(tmp_path):
    env = OpenFaaSAutoscalingEnv.from_env_config(
        {"max_steps": 7, "base_rate": 60, "reward.target_qos": 0.9})
    assert env.max_steps == 7 and env.farm_config.base_rate == 60
    assert env.farm_config.reward.target_qos == 0.9
    path = tmp_path / "farm.yml"
    path.write_text("base_rate: 120\n")
    env = OpenFaaSAutoscalingEnv.from_env_config({"config": str(path), "window_duration": 2.0})
    assert env.farm_config.base_rate == 120 and env.farm_config.window_duration == 2.0
    with pytest.raises(ConfigError, match="unknown key max_stepz"):
        OpenFaaSAutoscalingEnv.from_env_config({"max_stepz": 3})
    with pytest.raises(ValueError, match="initial_workers must be in"):
        OpenFaaSAutoscalingEnv(initial_workers=40)
    with pytest.raises(ValueError, match="unknown backend 'k8s'"):
        OpenFaaSAutoscalingEnv(backend="k8s")


def test_env_copies_play_distinct_reproducible_workload_streams():
    from types import SimpleNamespace

    from rl_autoscaling.common.rollout import TRAINING_SEED_BASE, evaluation_seed, training_seed
    from rl_autoscaling.env import assign_env_copies, env_creator

    def streams():
        out = {}
        for worker in (1, 2):  # two remote env runners ...
            vector = SimpleNamespace(envs=[env_creator({"task_seed": 42, **CLI_ENV})
                                           for _ in range(2)])  # ... of two vector envs each
            runner = SimpleNamespace(worker_index=worker, config=SimpleNamespace(in_evaluation=False))
            assert assign_env_copies(runner, vector) == [(worker, 0, 0), (worker, 1, 0)]
            for sub in vector.envs:
                seeds = []
                for ep in range(3):
                    sub.reset(seed=123)  # RLlib's reset seed: ignored for the workload
                    seeds.append(sub.episode_seed)
                    assert sub.episode_seed == training_seed(42, ep, worker, sub.env_copy[1])
                out[sub.env_copy[:2]] = (seeds, sub.backend.workload.arrivals.copy())
        return out

    a, b = streams(), streams()
    assert len({s for seeds, _ in a.values() for s in seeds}) == 4 * 3  # all distinct
    for key in a:  # reproducible
        assert a[key][0] == b[key][0]
        np.testing.assert_array_equal(a[key][1], b[key][1])
    assert min(s for seeds, _ in a.values() for s in seeds) >= TRAINING_SEED_BASE
    assert evaluation_seed(42, 10**5, 999) < TRAINING_SEED_BASE  # evaluation seeds disjoint


def test_explicit_reset_seed_wins_outside_rllib_env_runners():
    env = OpenFaaSAutoscalingEnv(task_seed=42, **CLI_ENV)
    env.reset(seed=9)
    assert env.episode_seed == 9
