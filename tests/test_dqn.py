"""DQN on RLlib: network shape, Polyak target rule, observation scaling, .pt export parity."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from rl_autoscaling.algorithms.dqn.model import (
    DqnModelError,
    ObservationScaler,
    build_q_network,
    load_dqn_model,
    save_dqn_model,
)
from rl_autoscaling.algorithms.dqn.policy import DqnPolicy
from rl_autoscaling.env import OpenFaaSAutoscalingEnv

ENV_CONFIG = {"max_steps": 6, "step_duration": 8, "observation_window": 8,
              "initial_workers": 12, "task_seed": 7}


def _env():
    return OpenFaaSAutoscalingEnv(max_steps=6, step_duration=8, observation_window=8,
                                  initial_workers=12)


# ---------------------------------------------------------------- Ray-free parts

def test_training_scale_covers_the_workloads_peak_rate():
    """DQN's observation scale follows the farm config: a day peaking at 2 x 300 tasks/min
    (10 tasks/s) scales the rate by 1 / 15 tasks/s, not the default farm's 1 / 12.75."""
    from rl_autoscaling.algorithms.dqn.training_env import DqnTrainingEnv
    from rl_autoscaling.observation import Obs

    day = {"phase_definitions": [
        {"name": "up", "phase_duration": 60, "pattern": "ramp", "ramp_from": 0.3, "ramp_to": 2.0},
        {"name": "peak", "phase_duration": 60, "multiplier": 2.0}]}
    obs = np.zeros(9, dtype=np.float32)
    obs[Obs.ARRIVAL_RATE] = 10.0
    for config, scaled in ((day, 10 / 15), (None, 10 / 12.75)):
        wrapped = DqnTrainingEnv(OpenFaaSAutoscalingEnv(config=config))
        assert wrapped.scaler(obs)[Obs.ARRIVAL_RATE] == pytest.approx(scaled)

def test_scaler_maps_env_bounds_to_unit_interval_and_clips():
    space = _env().observation_space
    scaler = ObservationScaler.from_space(space)
    np.testing.assert_allclose(scaler(space.low), np.zeros(9))
    np.testing.assert_allclose(scaler(space.high), np.ones(9))
    mid = scaler((space.low + space.high) / 2)
    np.testing.assert_allclose(mid, np.full(9, 0.5), atol=1e-6)
    out = scaler(space.high * 10 + 5)   # observations are not clipped by the env: we clip
    np.testing.assert_allclose(out, np.ones(9))
    assert scaler(space.low - 3).min() == 0.0 and out.dtype == np.float32


def test_training_wrapper_scales_observations_clips_rewards_and_records_raw_trace():
    from rl_autoscaling.algorithms.dqn.training_env import DqnTrainingEnv

    raw, wrapped = _env(), DqnTrainingEnv(_env(), reward_clip=1.0)
    scaler = ObservationScaler.from_space(raw.observation_space)
    obs_raw, _ = raw.reset(seed=3)
    obs, _ = wrapped.reset(seed=3)
    np.testing.assert_allclose(obs, scaler(obs_raw))
    assert wrapped.observation_space.contains(obs)
    raw_rewards = []
    while True:
        obs_raw, r_raw, term, trunc, _ = raw.step(2)
        obs, r, term2, trunc2, _ = wrapped.step(2)
        raw_rewards.append(r_raw)
        np.testing.assert_allclose(obs, scaler(obs_raw))
        assert r == pytest.approx(np.clip(r_raw, -1.0, 1.0)) and (term, trunc) == (term2, trunc2)
        if term or trunc:
            break
    (trace,) = wrapped.pop_finished()
    assert trace.rewards == pytest.approx(raw_rewards)   # metrics use the unclipped reward
    assert wrapped.pop_finished() == []


def test_training_wrapper_scales_rewards_after_the_clip():
    from rl_autoscaling.algorithms.dqn.training_env import DqnTrainingEnv, dqn_env_creator

    raw, wrapped = _env(), DqnTrainingEnv(_env(), reward_clip=1.0, reward_scale=10.0)
    raw.reset(seed=4)
    wrapped.reset(seed=4)
    for _ in range(5):
        r_raw = raw.step(0)[1]
        r = wrapped.step(0)[1]
        assert r == pytest.approx(10.0 * np.clip(r_raw, -1.0, 1.0))
    env = dqn_env_creator({"reward_scale": 25.0, "max_steps": 5})
    assert (env.reward_scale, env.reward_clip) == (25.0, 100.0)


def test_epsilon_schedule_is_the_per_episode_decay():
    from ray.rllib.utils.schedules.scheduler import Scheduler

    from rl_autoscaling.algorithms.dqn.schedule import (
        epsilon_at,
        epsilon_for_episode,
        epsilon_schedule,
    )

    T = 30
    sched = epsilon_schedule(0.8, 0.05, 0.98, T)
    rllib = Scheduler(fixed_value_or_schedule=sched, framework="torch")
    for k in (0, 1, 2, 50, 137, 138, 300):
        expected = max(0.05, 0.8 * 0.98 ** k)
        assert epsilon_for_episode(k, 0.8, 0.05, 0.98) == pytest.approx(expected)
        for t in (k * T, k * T + 15, k * T + T - 1):  # constant within an episode
            assert epsilon_at(sched, t) == pytest.approx(expected)
            rllib.update(t)
            assert float(rllib.get_current_value()) == pytest.approx(expected, rel=1e-5)
    assert epsilon_schedule(0.3, 0.3, 0.9, T) == [(0, 0.3)]


def test_pt_round_trip_loads_with_weights_only(tmp_path):
    net = build_q_network(9, [16, 8], 3)
    space = _env().observation_space
    path = save_dqn_model(tmp_path / "m.pt", state_dict=net.state_dict(), obs_low=space.low,
                          obs_high=space.high, hidden_layers=[16, 8], action_size=3,
                          hyperparams={"gamma": np.float64(0.97), "hidden_layers": (16, 8)},
                          episode=4, epsilon=0.5)
    raw = torch.load(path, weights_only=True)
    assert raw["hidden_layers"] == [16, 8] and raw["hyperparams"]["gamma"] == 0.97
    policy = DqnPolicy.load(path)
    obs = space.sample()
    with torch.no_grad():
        q = net(torch.as_tensor(ObservationScaler.from_space(space)(obs))).numpy()
    np.testing.assert_allclose(policy.q_values(obs), q, rtol=1e-6)
    assert policy.act(obs, {}) == int(np.argmax(q))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_tampered_pt_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "rl_autoscaling.dqn", "payload": _Evil()}, path)
    with pytest.raises(DqnModelError, match="refusing to load .*plain-tensor"):
        DqnPolicy.load(path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(DqnModelError, match="not an rl_autoscaling DQN model"):
        load_dqn_model(other)
    with pytest.raises(DqnModelError, match="not found"):
        DqnPolicy.load(tmp_path / "missing.pt")


def test_pt_inference_does_not_import_ray(tmp_path):
    net = build_q_network(9, [8], 3)
    space = _env().observation_space
    path = save_dqn_model(tmp_path / "m.pt", state_dict=net.state_dict(), obs_low=space.low,
                          obs_high=space.high, hidden_layers=[8], action_size=3)
    code = ("import sys; from rl_autoscaling.algorithms.dqn.policy import DqnPolicy; "
            "import numpy as np; p = DqnPolicy.load(sys.argv[1]); "
            "p.act(np.zeros(9, dtype=np.float32), {}); "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def test_load_input_appends_the_clipped_scaled_load_to_the_scaled_observation():
    from rl_autoscaling.observation import SERVICE_RATE, Obs, load_of

    space = _env().observation_space
    plain, scaler = ObservationScaler.from_space(space), ObservationScaler.from_space(
        space, ("load",))
    assert (plain.size, scaler.size) == (9, 10)
    rows = []
    for rate, workers, load in ((6.8, 10, 1.0), (0.0, 4, 0.0), (3.4, 0, 5.0), (20.0, 2, 14.7)):
        obs = np.asarray(space.sample(), dtype=np.float32)
        obs[Obs.ARRIVAL_RATE], obs[Obs.WORKERS] = rate, workers
        assert load_of(obs) == pytest.approx(load, rel=1e-2)  # workers < 1 count as 1
        out = scaler(obs)
        np.testing.assert_array_equal(out[:9], plain(obs))
        assert out[9] == pytest.approx(min(load, 2.0) / 2.0, rel=1e-2) and out.dtype == np.float32
        rows.append(obs)
    np.testing.assert_array_equal(scaler(np.stack(rows)), np.stack([scaler(o) for o in rows]))
    assert load_of([0, 0, 0, 0, 5, 0, 0, 5 * SERVICE_RATE, 0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown derived input 'trend'"):
        ObservationScaler.from_space(space, ("trend",))


def test_training_wrapper_with_load_input_feeds_the_scaler_the_policy_saves(tmp_path):
    from rl_autoscaling.algorithms.dqn.config import DqnHyperparams
    from rl_autoscaling.algorithms.dqn.model import derived_inputs_of
    from rl_autoscaling.algorithms.dqn.training_env import dqn_env_creator

    hp = DqnHyperparams(load_input=True)
    wrapped = dqn_env_creator({**ENV_CONFIG, "reward_clip": 1.0,
                               "derived_inputs": list(derived_inputs_of(hp.to_dict()))})
    raw = _env()
    assert wrapped.observation_space.shape == (10,) and wrapped.reward_clip == 1.0
    net = build_q_network(10, [8], 3)
    path = save_dqn_model(tmp_path / "m.pt", state_dict=net.state_dict(),
                          obs_low=raw.observation_space.low, obs_high=raw.observation_space.high,
                          hidden_layers=[8], action_size=3, hyperparams=hp.to_dict(),
                          derived_inputs=derived_inputs_of(hp.to_dict()))
    policy = DqnPolicy.load(path)
    obs_raw, _ = raw.reset(seed=3)
    obs, _ = wrapped.reset(seed=3)
    for _ in range(4):
        np.testing.assert_array_equal(policy.scaler(obs_raw), obs)  # one transform
        assert wrapped.observation_space.contains(obs)
        obs_raw, *_ = raw.step(2)
        obs, *_ = wrapped.step(2)
    data = load_dqn_model(path)
    assert (data["version"], data["obs_size"], data["derived_inputs"], data["derived_high"]) == (
        2, 10, ["load"], [2.0])
    assert policy.metadata["hyperparams"]["load_input"] is True
    with torch.no_grad():
        q = net(torch.as_tensor(wrapped.scaler(obs_raw))).numpy()
    np.testing.assert_allclose(policy.q_values(obs_raw), q, rtol=1e-6)


def test_old_nine_input_model_file_loads_and_acts_as_before(tmp_path):
    """A version-1 file (written before derived inputs existed: no ``derived_inputs`` key)
    still loads and scales the 9 observation values only."""
    space = _env().observation_space
    net = build_q_network(9, [16], 3)
    old = {"format": "rl_autoscaling.dqn", "version": 1, "state_dict": net.state_dict(),
           "obs_low": space.low.tolist(), "obs_high": space.high.tolist(),
           "hidden_layers": [16], "obs_size": 9, "action_size": 3, "hyperparams": {},
           "env_config": {}, "epsilon": 0.0, "episode": 3, "rllib_checkpoint": ""}
    torch.save(old, tmp_path / "old.pt")
    policy = DqnPolicy.load(tmp_path / "old.pt")
    assert policy.scaler.derived == () and policy.scaler.size == 9
    rng = np.random.default_rng(1)
    for _ in range(50):
        obs = space.low + rng.random(9).astype(np.float32) * (space.high - space.low)
        with torch.no_grad():
            q = net(torch.as_tensor(ObservationScaler.from_space(space)(obs))).numpy()
        np.testing.assert_allclose(policy.q_values(obs), q, rtol=1e-6)
        assert policy.act(obs) == int(np.argmax(q))
    # without derived inputs the writer still writes version 1, without the new keys
    path = save_dqn_model(tmp_path / "new.pt", state_dict=net.state_dict(), obs_low=space.low,
                          obs_high=space.high, hidden_layers=[16], action_size=3)
    data = torch.load(path, weights_only=True)
    assert data["version"] == 1 and "derived_inputs" not in data and data["obs_size"] == 9


def test_model_file_with_inconsistent_inputs_is_refused(tmp_path):
    space = _env().observation_space
    base = {"format": "rl_autoscaling.dqn", "version": 2,
            "state_dict": build_q_network(10, [4], 3).state_dict(),
            "obs_low": space.low.tolist(), "obs_high": space.high.tolist(),
            "hidden_layers": [4], "action_size": 3}
    for extra, message in (({"obs_size": 9, "derived_inputs": ["load"]}, "obs_size 9"),
                           ({"obs_size": 10}, "obs_size 10"),
                           ({"obs_size": 10, "derived_inputs": ["trend"]}, "unknown derived"),
                           ({"obs_size": 10, "derived_inputs": ["load"], "derived_high": [0]},
                            "derived_high")):
        torch.save({**base, **extra}, tmp_path / "bad.pt")
        with pytest.raises(DqnModelError, match=message):
            DqnPolicy.load(tmp_path / "bad.pt")


# ---------------------------------------------------------------- RLlib parts

pytest_ray = pytest.mark.ray


@pytest.fixture(scope="module")
def algo(ray_local):
    from rl_autoscaling.algorithms.dqn.config import DqnHyperparams, dqn_config
    from rl_autoscaling.algorithms.dqn.training_env import register_dqn_env

    register_dqn_env()
    hp = DqnHyperparams(batch_size=8, warmup_steps=8, target_update=2, target_tau=0.3,
                        learning_rate=1e-2, rollout_fragment_length=1)
    built = dqn_config(hp, ENV_CONFIG, seed=0, iteration_steps=1).build_algo()
    yield built
    built.stop()


def _linear_shapes(module):
    from rl_autoscaling.algorithms.dqn.weights import q_linear_layers

    return [tuple(layer.weight.shape) for layer in q_linear_layers(module)]


@pytest_ray
def test_module_has_exactly_the_configured_hidden_layers(algo):
    from rl_autoscaling.algorithms.dqn.config import DqnHyperparams, dqn_config
    from rl_autoscaling.algorithms.dqn.weights import learner_module

    module = learner_module(algo)
    assert _linear_shapes(module) == [(128, 9), (64, 128), (3, 64)]
    assert not module.uses_dueling and module.uses_double_q
    relus = [m for m in module.encoder.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 2
    cfg = dqn_config(DqnHyperparams(hidden_layers=[32, 16, 8]), ENV_CONFIG)
    spec = cfg.get_rl_module_spec(spaces={"default_policy": (
        algo.env_runner.env.single_observation_space, algo.env_runner.env.single_action_space)})
    assert _linear_shapes(spec.build()) == [(32, 9), (16, 32), (8, 16), (3, 8)]


@pytest_ray
def test_config_carries_the_seed_update_rules(algo):
    from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

    cfg = algo.config
    assert (cfg.double_q, cfg.dueling, cfg.n_step, cfg.td_error_loss_fn) == (True, False, 1,
                                                                             "huber")
    assert (cfg.tau, cfg.target_network_update_freq, cfg.lr, cfg.gamma) == (0.3, 2, 1e-2, 0.97)
    assert (cfg.grad_clip, cfg.grad_clip_by) == (3.0, "global_norm")
    assert cfg.num_steps_sampled_before_learning_starts == 8
    assert cfg.train_batch_size_per_learner == 8 and cfg.get_rollout_fragment_length() == 1
    buffer = algo.local_replay_buffer
    assert isinstance(buffer, EpisodeReplayBuffer) and buffer.capacity == 75_000  # uniform
    assert "Prioritized" not in type(buffer).__name__


def _snapshot(pairs):
    return [[p.detach().clone() for p in net.parameters()] for pair in pairs for net in pair]


@pytest_ray
def test_target_is_polyak_updated_every_n_learner_updates(algo):
    from rl_autoscaling.algorithms.dqn.weights import learner_module

    learner = algo.learner_group._learner
    module = learner_module(algo)
    pairs = module.get_target_network_pairs()
    while learner.num_gradient_updates == 0:
        algo.train()  # warm-up: one env step per iteration, no update yet
    if learner.num_gradient_updates % 2 == 1:
        algo.train()
    tau = 0.3
    for update in (1, 2):  # target_update=2: untouched after the odd, Polyak after the even
        before = _snapshot(pairs)
        algo.train()
        after = _snapshot(pairs)
        online_before, target_before = before[0::2], before[1::2]
        online_after, target_after = after[0::2], after[1::2]
        changed = any(not torch.equal(a, b) for oa, ob in zip(online_after, online_before)
                      for a, b in zip(oa, ob))
        assert changed, "the online network did not learn"
        for t_after, t_before, o_after in zip(target_after, target_before, online_after):
            for ta, tb, oa in zip(t_after, t_before, o_after):
                expected = tb if update == 1 else (1 - tau) * tb + tau * oa
                torch.testing.assert_close(ta, expected, rtol=1e-5, atol=1e-6)
    assert learner.num_gradient_updates % 2 == 0


@pytest_ray
def test_env_runner_logs_the_farm_episode_metrics(algo):
    for _ in range(3 * ENV_CONFIG["max_steps"]):
        runners = algo.train()["env_runners"]
        if "final_qos" in runners:
            break
    assert 0.0 <= runners["final_qos"] <= 1.0
    assert {"env_total_reward", "scaling_actions", "unfinished_tasks"} <= set(runners)


@pytest_ray
def test_training_observations_are_scaled_by_env_bounds(algo):
    from rl_autoscaling.algorithms.dqn.training_env import training_envs

    (wrapper,) = training_envs(algo)
    assert np.all(wrapper.observation_space.low == 0) and np.all(
        wrapper.observation_space.high == 1)
    if algo.local_replay_buffer.get_state()["rows"] is None:  # run alone: nothing sampled yet
        algo.train()
    rows = algo.local_replay_buffer.get_state()["rows"]  # stored transitions, oldest first
    assert rows is not None
    obs = np.concatenate([rows[Columns.OBS], rows[Columns.NEXT_OBS]])
    assert obs.min() >= 0.0 and obs.max() <= 1.0
    # The first stored observation is the scaled reset observation of task seed 7.
    raw_env = OpenFaaSAutoscalingEnv.from_env_config(ENV_CONFIG)
    raw_obs, _ = raw_env.reset(seed=ENV_CONFIG["task_seed"])
    np.testing.assert_allclose(rows[Columns.OBS][0],
                               ObservationScaler.from_space(raw_env.observation_space)(raw_obs),
                               rtol=1e-6)


@pytest_ray
def test_rllib_module_and_exported_pt_pick_the_same_greedy_action(algo, tmp_path):
    from rl_autoscaling.algorithms.dqn.rllib_policy import RllibDqnPolicy
    from rl_autoscaling.algorithms.dqn.weights import learner_module, q_network_state_dict

    env = _env()
    space = env.observation_space
    module = learner_module(algo)
    path = save_dqn_model(tmp_path / "dqn.pt", state_dict=q_network_state_dict(module),
                          obs_low=space.low, obs_high=space.high, hidden_layers=[128, 64],
                          action_size=3)
    pt_policy = DqnPolicy.load(path)
    scaler = ObservationScaler.from_space(space)
    rllib_policy = RllibDqnPolicy(module, scaler)
    runner_policy = RllibDqnPolicy(algo.env_runner.module, scaler)  # synced after each update
    ckpt_policy = RllibDqnPolicy.from_checkpoint(algo.save_to_path(str(tmp_path / "ckpt")),
                                                 scaler)
    rng = np.random.default_rng(0)
    obs_batch = [space.low + rng.random(9).astype(np.float32) * (space.high - space.low) * 1.2
                 for _ in range(200)]
    with torch.no_grad():
        from ray.rllib.core.columns import Columns

        q_rllib = module.compute_q_values(
            {Columns.OBS: torch.as_tensor(np.stack([scaler(o) for o in obs_batch]))})["qf_preds"]
    np.testing.assert_allclose(np.stack([pt_policy.q_values(o) for o in obs_batch]),
                               q_rllib.numpy(), rtol=1e-5, atol=1e-5)
    for obs in obs_batch:
        a = pt_policy.act(obs, {})
        assert a == rllib_policy.act(obs) == runner_policy.act(obs) == ckpt_policy.act(obs)


@pytest_ray
def test_training_is_reproducible_for_a_seed(ray_local):
    from rl_autoscaling.algorithms.dqn.config import DqnHyperparams, dqn_config
    from rl_autoscaling.algorithms.dqn.training_env import register_dqn_env
    from rl_autoscaling.algorithms.dqn.weights import learner_module, q_network_state_dict

    register_dqn_env()
    hp = DqnHyperparams(batch_size=8, warmup_steps=8, hidden_layers=[16], learning_rate=1e-2)
    weights = []
    for _ in range(2):
        built = dqn_config(hp, ENV_CONFIG, seed=3).build_algo()
        try:
            for _ in range(4):
                built.train()
            weights.append(q_network_state_dict(learner_module(built)))
        finally:
            built.stop()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)


def test_tune_kpis_read_the_slo_past_the_dqn_wrapper_keys():
    from types import SimpleNamespace

    from rl_autoscaling.algorithms.dqn.config import DqnHyperparams, dqn_config
    from rl_autoscaling.service.kpis import _target_qos

    config = dqn_config(DqnHyperparams(reward_scale=5.0, load_input=True), {"max_steps": 30})
    assert config.env_config["reward_scale"] == 5.0
    assert config.env_config["derived_inputs"] == ["load"]
    assert _target_qos(SimpleNamespace(config=config)) == pytest.approx(0.99)


@pytest_ray
def test_load_input_network_reads_the_load_in_training_export_and_checkpoint(ray_local,
                                                                             tmp_path):
    """With ``load_input`` the RLlib module reads 10 inputs; the exported .pt, the trainer's
    greedy policy and an RLlib checkpoint (its inputs inferred) act alike."""
    from rl_autoscaling.algorithms.dqn.config import DqnHyperparams, dqn_config
    from rl_autoscaling.algorithms.dqn.rllib_policy import RllibDqnPolicy
    from rl_autoscaling.algorithms.dqn.training_env import register_dqn_env, training_envs
    from rl_autoscaling.algorithms.dqn.weights import export_pt, learner_module

    register_dqn_env()
    hp = DqnHyperparams(batch_size=8, warmup_steps=8, rollout_fragment_length=6,
                        learning_rate=1e-2, load_input=True)
    built = dqn_config(hp, ENV_CONFIG, seed=0).build_algo()
    try:
        for _ in range(3):
            built.train()
        module = learner_module(built)
        assert _linear_shapes(module)[0] == (128, 10)
        (wrapper,) = training_envs(built)
        assert wrapper.scaler.derived == ("load",)
        space = _env().observation_space
        path = export_pt(built, tmp_path / "dqn.pt", hyperparams=hp.to_dict(),
                         env_config=ENV_CONFIG, obs_low=space.low, obs_high=space.high,
                         action_size=3, epsilon=0.1, episode=3)
        pt_policy = DqnPolicy.load(path)
        ckpt_policy = RllibDqnPolicy.from_checkpoint(
            built.save_to_path(str(tmp_path / "ckpt")), ObservationScaler.from_space(space))
        assert ckpt_policy.scaler.derived == ("load",)
        rng = np.random.default_rng(0)
        for _ in range(100):
            obs = space.low + rng.random(9).astype(np.float32) * (space.high - space.low)
            np.testing.assert_array_equal(pt_policy.scaler(obs), wrapper.scaler(obs))
            assert pt_policy.act(obs) == ckpt_policy.act(obs)
    finally:
        built.stop()
