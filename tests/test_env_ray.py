"""The env registered with Ray: RLlib's env runner samples it; DQN and PPO train on it."""

import numpy as np
import pytest
from env_streams import farm_env_streams

from rl_autoscaling.env import RAY_ENV_NAME

pytestmark = pytest.mark.ray

ENV_CONFIG = {"max_steps": 10, "step_duration": 8, "observation_window": 8, "initial_workers": 12,
              "task_seed": 1}


def test_rllib_env_runner_samples_the_registered_env(ray_local):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    config = PPOConfig().environment(RAY_ENV_NAME, env_config=ENV_CONFIG)
    runner = SingleAgentEnvRunner(config=config)
    episodes = runner.sample(num_episodes=2, random_actions=True)
    assert len(episodes) == 2
    for ep in episodes:
        assert len(ep) == 10 and ep.is_truncated  # max_steps truncation, not termination
        obs = np.asarray(ep.get_observations())
        assert obs.shape == (11, 9) and obs.dtype == np.float32
        assert np.all(obs[:, 4] >= 1) and np.all(obs[:, 8] <= 1)
    runner.stop()


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_rllib_algorithm_trains_one_iteration(ray_local, algo):
    if algo == "dqn":
        from ray.rllib.algorithms.dqn import DQNConfig as Config
    else:
        from ray.rllib.algorithms.ppo import PPOConfig as Config

    config = (
        Config()
        .environment(RAY_ENV_NAME, env_config=ENV_CONFIG)
        .env_runners(num_env_runners=0)
        .debugging(seed=0)
    )
    if algo == "dqn":
        config = config.training(num_steps_sampled_before_learning_starts=20,
                                 train_batch_size_per_learner=16)
    else:
        config = config.training(train_batch_size_per_learner=40, minibatch_size=20,
                                 num_epochs=1)
    built = config.build_algo()
    try:
        result = built.train()
        assert result["training_iteration"] == 1
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] > 0
        assert "learners" in result
    finally:
        built.stop()


def test_two_env_runners_times_two_vector_envs_play_four_distinct_streams(ray_local):
    from rl_autoscaling.algorithms.dqn.config import DqnHyperparams, dqn_config
    from rl_autoscaling.algorithms.dqn.training_env import register_dqn_env
    from rl_autoscaling.common.rollout import training_seed

    register_dqn_env()
    cfg = {"max_steps": 4, "step_duration": 8, "observation_window": 8, "initial_workers": 12,
           "task_seed": 7}
    hp = DqnHyperparams(warmup_steps=10_000, batch_size=8, num_env_runners=2,
                        num_envs_per_env_runner=2, rollout_fragment_length=4)
    algo = dqn_config(hp, cfg, seed=1).build_algo()
    try:
        for _ in range(3):
            algo.train()
        per_runner = algo.env_runner_group.foreach_env_runner(farm_env_streams,
                                                              local_env_runner=False)
    finally:
        algo.stop()
    copies = [c for runner in per_runner for c in runner]
    assert sorted(tuple(c[0][:2]) for c in copies) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert len({seed for _, _, seed, _ in copies}) == 4
    assert len({arrivals for _, _, _, arrivals in copies}) == 4
    for (worker, vector, _), episodes, seed, _ in copies:
        assert episodes >= 2 and seed == training_seed(7, episodes - 1, worker, vector)


@pytest.mark.parametrize("runners", [0, 1, 2])
def test_replay_ratio_is_the_configured_one_for_any_number_of_env_runners(ray_local, runners):
    """Gradient updates per sampled env step stay ``updates_per_step`` (here 0.5) whether the
    driver samples (0 runners) or 1 or 2 remote runners do (RLlib's own rule gave 1 / 2 / 1.5)."""
    from rl_autoscaling.algorithms.dqn.config import DqnHyperparams, dqn_config
    from rl_autoscaling.algorithms.dqn.training_env import register_dqn_env

    register_dqn_env()
    hp = DqnHyperparams(warmup_steps=8, batch_size=4, hidden_layers=(8,), updates_per_step=0.5,
                        rollout_fragment_length=4, num_env_runners=runners)
    algo = dqn_config(hp, ENV_CONFIG, seed=0, iteration_steps=1).build_algo()
    learner = algo.learner_group._learner
    try:
        def sampled() -> int:
            return int(algo.train()["env_runners"]["num_env_steps_sampled_lifetime"])

        steps = sampled()
        while learner.num_gradient_updates == 0:  # warm-up
            steps = sampled()
        steps0, updates0 = steps, learner.num_gradient_updates
        for _ in range(5):
            steps = sampled()
    finally:
        algo.stop()
    assert steps - steps0 == 5 * 4 * max(1, runners)  # one fragment per runner per step
    assert (learner.num_gradient_updates - updates0) / (steps - steps0) == 0.5
