"""SarsaLambda as an RLlib Algorithm: config, train() results, evaluation, checkpoints, Tune."""

from __future__ import annotations

import pytest

pytest.importorskip("ray.rllib")

from rl_autoscaling.algorithms.sarsa.algorithm import (  # noqa: E402
    TRAINING_EPISODES,
    SarsaLambda,
    SarsaLambdaConfig,
    q_checksum,
)
from rl_autoscaling.common.rollout import evaluate_checkpoint, training_seed  # noqa: E402
from rl_autoscaling.env import OpenFaaSAutoscalingEnv  # noqa: E402

ENV_CONFIG = {"max_steps": 6, "step_duration": 8, "observation_window": 8,
              "initial_workers": 12, "task_seed": 5}
RECORD_KEYS = {"episode", "steps", "total_reward", "mean_qos", "final_qos", "processed_tasks",
               "epsilon", "scale_up_count", "scale_down_count", "noop_count", "max_workers",
               "mean_workers", "qos_violations", "unfinished_tasks"}


def config(**training) -> SarsaLambdaConfig:
    return (SarsaLambdaConfig().environment("OpenFaaSAutoscaling-v0", env_config=ENV_CONFIG)
            .training(**training))


@pytest.fixture
def algo():
    a = config(epsilon=0.5, epsilon_decay=0.9).build_algo()
    yield a
    a.stop()


def test_config_defaults_are_the_twin_recipe():
    from dataclasses import asdict

    from rl_autoscaling.algorithms.sarsa.tabular import TWIN_EDGES_PHASE, SarsaHyperparams

    c = SarsaLambdaConfig()
    assert c.hyperparams == SarsaHyperparams()
    assert (c.alpha, c.gamma, c.epsilon, c.epsilon_min, c.epsilon_decay) == (
        0.02, 0.985, 0.40, 0.02, 0.999)
    assert c.edges == [list(e) for e in TWIN_EDGES_PHASE] and c.seed == 42
    assert c.env == "OpenFaaSAutoscaling-v0" and c.episodes_per_iteration == 1
    # the seed's discretisation is one call away
    seed = SarsaLambdaConfig().training(bins=(4, 7, 1, 1, 8, 8, 1, 5, 6))
    assert seed.edges is None and asdict(seed.hyperparams) == asdict(c.hyperparams)


def test_training_sets_only_the_given_knobs():
    c = config(alpha=0.1, trace_lambda=0.0, gamma=0.9, bins=[2] * 9)
    assert (c.alpha, c.trace_lambda, c.gamma, c.bins, c.epsilon) == (
        0.1, 0.0, 0.9, (2,) * 9, 0.40)


@pytest.mark.parametrize("change,match", [
    (lambda c: c.training(alpha=0.0), "alpha"),
    (lambda c: c.training(bins=[1, 2]), "9 integers"),
    (lambda c: c.training(episodes_per_iteration=0), "episodes_per_iteration"),
    (lambda c: c.env_runners(num_env_runners=2), "num_env_runners"),
])
def test_invalid_configs_are_refused(change, match):
    with pytest.raises(ValueError, match=match):
        change(config()).validate()


def test_the_env_comes_from_the_registered_creator(algo):
    assert isinstance(algo.env, OpenFaaSAutoscalingEnv)
    assert algo.env.max_steps == 6 and algo.env.task_seed == 5
    from rl_autoscaling.algorithms.sarsa.tabular import TWIN_EDGES_PHASE

    assert algo.learner.discretiser.edges == TWIN_EDGES_PHASE
    assert algo.env_runner_group is None and algo.learner_group is None


def test_train_returns_rllib_results_with_the_episode_records(algo):
    first = algo.train()
    second = algo.train()
    rec1, = first[TRAINING_EPISODES]
    rec2, = second[TRAINING_EPISODES]
    assert set(rec1) == RECORD_KEYS
    assert (rec1["episode"], rec2["episode"]) == (1, 2)
    assert (rec1["epsilon"], rec2["epsilon"]) == pytest.approx((0.5, 0.45))
    assert second["training_iteration"] == 2
    runners = second["env_runners"]
    assert runners["num_episodes_lifetime"] == 2
    assert runners["num_env_steps_sampled_lifetime"] == rec1["steps"] + rec2["steps"]
    assert second["learners"]["sarsa"]["q_table_size"] == len(algo.learner.q) > 0
    assert second["learners"]["sarsa"]["epsilon"] == pytest.approx(0.405)
    assert "evaluation" not in second


def test_episodes_follow_the_task_seed(algo):
    algo.train()
    algo.train()
    assert algo.env.episode_seed == training_seed(5, 1)  # second training episode


def test_several_episodes_per_iteration():
    a = config(episodes_per_iteration=3).build_algo()
    try:
        result = a.train()
        assert [r["episode"] for r in result[TRAINING_EPISODES]] == [1, 2, 3]
        assert result["env_runners"]["num_episodes"] == 3
    finally:
        a.stop()


def test_evaluation_interval_runs_greedy_episodes():
    a = config().evaluation(evaluation_interval=2, evaluation_duration=2).build_algo()
    try:
        assert "evaluation" not in a.train()
        result = a.train()
        ev = result["evaluation"]
        assert ev["episode"] == 2 and ev["eval_episodes"] == 2
        for key in ("total_reward", "final_qos", "mean_workers", "scaling_actions"):
            assert f"mean_{key}" in ev and f"std_{key}" in ev
        # The same as greedy roll-outs seeded 42 + 2 * 1000 + i on an unshuffled env.
        env = OpenFaaSAutoscalingEnv.from_env_config(ENV_CONFIG)
        expected = evaluate_checkpoint(env, a.learner.greedy_action, 2, 2, seed=42)
        assert {k: ev[k] for k in expected} == expected
        assert ev["env_runners"]["episode_return_mean"] == expected["mean_total_reward"]
    finally:
        a.stop()


def test_checkpoint_round_trip_restores_the_q_table(algo, tmp_path):
    for _ in range(3):
        algo.train()
    algo.save_to_path(tmp_path / "ckpt")
    restored = SarsaLambda.from_checkpoint(tmp_path / "ckpt")
    try:
        assert restored.learner.q == algo.learner.q
        assert restored.learner.epsilon == algo.learner.epsilon
        assert restored.episodes_done == 3 and restored.iteration == 3
        assert restored.config.epsilon_decay == 0.9
        # Training continues identically: same workload seed, same exploration draws.
        assert restored.train()[TRAINING_EPISODES] == algo.train()[TRAINING_EPISODES]
        assert restored.learner.q == algo.learner.q
    finally:
        restored.stop()


@pytest.mark.ray
def test_tune_run_checkpoints_and_restores_the_same_q_table(ray_local, tmp_path):
    from ray import tune

    param_space = config(epsilon=0.3)
    tuner = tune.Tuner(
        SarsaLambda, param_space=param_space,
        run_config=tune.RunConfig(
            name="sarsa_tune", storage_path=str(tmp_path), verbose=0,
            stop={"training_iteration": 4},
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2,
                                                    checkpoint_at_end=True)))
    result = tuner.fit()[0]
    assert result.error is None
    assert result.metrics["training_iteration"] == 4
    restored = SarsaLambda.from_checkpoint(result.checkpoint.path)
    local = param_space.build_algo()
    try:
        sarsa = result.metrics["learners"]["sarsa"]
        assert len(restored.learner.q) == sarsa["q_table_size"]
        assert q_checksum(restored.learner.q) == pytest.approx(sarsa["q_checksum"])
        assert restored.episodes_done == 4
        # The trial's Q-table is exactly what 4 iterations give in this process.
        for _ in range(4):
            local.train()
        assert restored.learner.q == local.learner.q
    finally:
        restored.stop()
        local.stop()
