"""Tabular SARSA(lambda) as an RLlib ``Algorithm`` on the new API stack (docs/algorithms.md#sarsalambda).

Usage::

    config = (SarsaLambdaConfig()
              .environment("OpenFaaSAutoscaling-v0", env_config={"max_steps": 30, ...})
              .training(alpha=0.025, trace_lambda=0.5)
              .evaluation(evaluation_interval=10, evaluation_duration=3))
    algo = config.build_algo()
    result = algo.train()          # one training episode (episodes_per_iteration=1)
    algo.save_to_path(path)        # RLlib checkpoint; SarsaLambda.from_checkpoint(path)

The learning rule lives in the plain tabular core :mod:`.sarsa_tabular` (re-exported here):
``SarsaLambdaLearner.train_episode`` plays an epsilon-greedy episode and applies the seed's
online per-step SARSA(lambda) update after every env step, then decays epsilon.

How it sits on RLlib. An RLlib ``Algorithm`` on the new API stack always builds an
``EnvRunnerGroup`` and a ``LearnerGroup`` around a neural ``RLModule``; a Q-table updated
online after every step fits neither (the acting policy must change between two steps of the
same episode, so sampling and learning cannot be split across processes). ``SarsaLambda``
therefore overrides ``setup()`` to build only what it uses: the callbacks, RLlib's Ray
metrics, the evaluation config, the tabular learner, and one env made by the Ray-registered
env creator (``self.env_creator`` with ``env_config``), in the algorithm's own process. There
are no remote env runners: ``num_env_runners`` must stay 0 (validated), so updates are
applied strictly in episode order, exactly as in the seed. Everything else is RLlib's:
``train()``/``step()`` (timers, callbacks, evaluation schedule, result compilation),
``self.metrics``, ``save_to_path``/``from_checkpoint`` (``get_state``/``set_state`` carry
the Q-table, epsilon, RNG state and episode counter), and Tune scheduling (one CPU bundle).

``train()`` result (besides RLlib's keys): ``env_runners/episode_return_mean`` etc.,
``learners/sarsa/{epsilon,q_table_size,updates,q_checksum}`` and ``training_episodes``: the
``training_metrics.json`` records of the iteration's episodes (``EpisodeTrace``'s fields).
With ``.evaluation(evaluation_interval=N, evaluation_duration=K)`` every N-th iteration runs K
greedy episodes on a fresh env without phase shuffle, episode i seeded
``seed + episodes_done * 1000 + i`` (``config.seed``, default 42), and ``result["evaluation"]``
holds the ``evaluation_metrics.json`` checkpoint record (episode, eval_episodes, mean_X/std_X)
plus ``env_runners/episode_return_mean``.

Training episode e (0-based, counted across restores) is reset with seed
``common.rollout.training_seed(task_seed, e)`` when ``env_config`` has a ``task_seed`` (the one
training seed rule, env copy (0, 0), kept across checkpoints), else unseeded. SARSA(lambda) is
online and tabular: it scales by parallel trials and seeds, not by env runners.
"""

from __future__ import annotations

import zlib
from dataclasses import fields
from typing import Any, Collection, Optional, Sequence, Union

import numpy as np
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.core import COMPONENT_METRICS_LOGGER
from ray.rllib.env.env_context import EnvContext
from ray.rllib.utils.annotations import override
from ray.rllib.utils.checkpoints import Checkpointable
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    EPISODE_LEN_MEAN,
    EPISODE_RETURN_MAX,
    EPISODE_RETURN_MEAN,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    TIMERS,
)
from ray.rllib.utils.typing import ResultDict
from ray.tune.execution.placement_groups import PlacementGroupFactory
from ray.tune.result import TRAINING_ITERATION
from typing_extensions import Self

from ...common.rollout import evaluate_checkpoint, evaluation_env_config, training_seed
from ...common.settings import recipe_values
from ...env import RAY_ENV_NAME, register_ray_env
from .tabular import (  # noqa: F401  (re-exported: the tabular core)
    ACTION_SIZE,
    DEFAULT_BINS,
    DEFAULT_EDGES,
    STATES,
    Discretiser,
    EpisodeResult,
    SarsaHyperparams,
    SarsaLambdaLearner,
    SarsaRun,
    load_model,
    validate_model,
)

#: Result key of the iteration's training_metrics.json records.
TRAINING_EPISODES = "training_episodes"
SARSA = "sarsa"
_STATE = "sarsa_learner"


class SarsaLambdaConfig(AlgorithmConfig):
    """Configuration of :class:`SarsaLambda` (defaults: docs/algorithms.md#sarsalambda)."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or SarsaLambda)
        register_ray_env()
        self.env = RAY_ENV_NAME
        # SARSA(lambda) settings: the twin recipe, from their one owner.
        for name, value in recipe_values(SarsaHyperparams).items():
            setattr(self, name, value)
        # the named state (SarsaRun.state), resolved for the env's workload at setup; these
        # edges and bins are the packaged default workload's (explicit ones replace the state)
        self.state: Optional[str] = SarsaRun().state
        self.edges, self.bins = SarsaRun().state_edges()
        self.episodes_per_iteration = 1
        # One process: the env and the Q-table live inside the algorithm.
        self.num_env_runners = 0
        self.evaluation_num_env_runners = 0
        self.evaluation_duration = 3
        self.evaluation_duration_unit = "episodes"
        self.min_time_s_per_iteration = 0
        self.min_sample_timesteps_per_iteration = 0
        self.min_train_timesteps_per_iteration = 0
        self.seed = 42

    @override(AlgorithmConfig)
    def training(
        self,
        *,
        alpha: float = NotProvided,
        gamma: float = NotProvided,
        epsilon: float = NotProvided,
        epsilon_min: float = NotProvided,
        epsilon_decay: float = NotProvided,
        trace_lambda: float = NotProvided,
        trace_threshold: float = NotProvided,
        tie_action: int = NotProvided,
        explore_starts: float = NotProvided,
        explore_start_min: int = NotProvided,
        explore_start_max: int = NotProvided,
        bins: Sequence[int] = NotProvided,
        edges: Optional[Sequence[Sequence[float]]] = NotProvided,
        state: Optional[str] = NotProvided,
        episodes_per_iteration: int = NotProvided,
        **kwargs,
    ) -> Self:
        """Sets the SARSA(lambda) settings; other keywords go to ``AlgorithmConfig``.

        Args:
            alpha: learning rate.
            gamma: discount factor.
            epsilon: initial exploration rate.
            epsilon_min: exploration floor.
            epsilon_decay: per-episode multiplicative epsilon decay.
            trace_lambda: eligibility-trace decay; <= 0 is one-step SARSA.
            trace_threshold: a state's trace is dropped once max|e| falls below this.
            tie_action: the action greedy ties go to; -1 = the highest index (the seed).
            explore_starts: fraction of training episodes that start at a random worker
                count in [explore_start_min, explore_start_max] (0: the env's, the seed's).
            bins: nine bin counts; the default bins use the documented explicit edges, any other
                bins equal-width bins between the env's observation bounds.
            edges: explicit per-dimension edges (overrides ``bins``), or None.
            state: a named state of ``train_sarsa --state`` (``auto``, ``twin``, ``phase``, ``load``,
                ``schedule``),
                resolved for the env's workload when the algorithm is built; ``bins`` or
                ``edges`` given with it (or later) win.
            episodes_per_iteration: training episodes per ``train()`` call.

        Returns:
            This updated config.
        """
        super().training(**kwargs)
        if gamma is not NotProvided:
            self.gamma = gamma
        for name, value in (("alpha", alpha), ("epsilon", epsilon), ("epsilon_min", epsilon_min),
                            ("epsilon_decay", epsilon_decay), ("trace_lambda", trace_lambda),
                            ("trace_threshold", trace_threshold), ("tie_action", tie_action),
                            ("explore_starts", explore_starts),
                            ("explore_start_min", explore_start_min),
                            ("explore_start_max", explore_start_max),
                            ("episodes_per_iteration", episodes_per_iteration)):
            if value is not NotProvided:
                setattr(self, name, value)
        if state is not NotProvided:
            self.state = state
            if state is not None:
                self.edges, self.bins = SarsaRun(state=state).state_edges()
        if bins is not NotProvided or edges is not NotProvided:
            self.state = None
        if bins is not NotProvided:
            self.bins = tuple(int(b) for b in bins)
            if edges is NotProvided:  # bins alone replace the default explicit edges
                self.edges = None
        if edges is not NotProvided:
            self.edges = None if edges is None else [list(map(float, e)) for e in edges]
        return self

    @property
    def hyperparams(self) -> SarsaHyperparams:
        """The SARSA(lambda) hyperparameters of this config."""
        return SarsaHyperparams(**{f.name: float(getattr(self, f.name))
                                   for f in fields(SarsaHyperparams)})

    @override(AlgorithmConfig)
    def validate(self) -> None:
        super().validate()
        try:
            self.hyperparams.validate()
            if self.state is not None and self.state not in ("auto", *STATES):
                raise ValueError(f"state must be one of auto, {', '.join(STATES)}; "
                                 f"got {self.state!r}")
            if self.edges is None:
                Discretiser.from_bins(self.bins)
            else:
                Discretiser(self.edges)
        except ValueError as exc:
            self._value_error(str(exc))
        if int(self.episodes_per_iteration) < 1:
            self._value_error(f"episodes_per_iteration must be >= 1, got "
                              f"{self.episodes_per_iteration}")
        if self.num_env_runners or self.evaluation_num_env_runners:
            self._value_error(
                "SarsaLambda updates its Q-table online after every env step in its own "
                "process; num_env_runners and evaluation_num_env_runners must be 0")
        if self.evaluation_duration == "auto" or self.evaluation_duration_unit != "episodes":
            self._value_error("SarsaLambda evaluates a fixed number of episodes: set "
                              "evaluation_duration=<int> and evaluation_duration_unit="
                              "'episodes'")


class SarsaLambda(Algorithm):
    """Tabular SARSA(lambda) (see the module docstring for how it maps onto RLlib)."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> SarsaLambdaConfig:
        return SarsaLambdaConfig()

    @classmethod
    @override(Algorithm)
    def default_resource_request(cls, config) -> PlacementGroupFactory:
        # Everything runs in the trial's own process: one bundle.
        if not isinstance(config, AlgorithmConfig):
            config = cls.get_default_config().update_from_dict(config)
        return PlacementGroupFactory([{"CPU": config.num_cpus_for_main_process}])

    @override(Algorithm)
    def setup(self, config: AlgorithmConfig) -> None:
        # Only what training_step()/evaluate() use: no EnvRunnerGroup, LearnerGroup, RLModule.
        self.callbacks = [cls() for cls in _as_list(self.config.callbacks_class)]
        self.env_runner_group = self.eval_env_runner_group = None
        self.offline_data = self.offline_eval_runner_group = None
        self._aggregator_actor_manager = None
        self.spaces = self.env_to_module_connector = self.module_to_env_connector = None
        self.evaluation_config = self.config.get_evaluation_config_object()
        self.evaluation_config.validate()
        self.evaluation_config.freeze()
        self.env = self.env_creator(EnvContext(dict(self.config.env_config), worker_index=0))
        self.learner = SarsaLambdaLearner(self._discretiser(self.env.observation_space),
                                          self.config.hyperparams,
                                          action_size=int(self.env.action_space.n),
                                          seed=self.config.seed)
        self.episodes_done = 0
        self._episode_records = []
        self._set_up_metrics()
        make_callback("on_algorithm_init", self.callbacks, self.config.callbacks_on_algorithm_init,
                      kwargs=dict(algorithm=self, metrics_logger=self.metrics))

    def _discretiser(self, space) -> Discretiser:
        if self.config.state is not None:  # resolved for the env this algorithm built
            edges, _ = SarsaRun(state=self.config.state).state_edges(
                self.env.farm_config, self.env.step_duration)
            return Discretiser(edges)
        if self.config.edges is not None:
            return Discretiser(self.config.edges)
        return Discretiser.from_bins(self.config.bins, space.low, space.high)

    @override(Algorithm)
    def step(self) -> ResultDict:
        # RLlib's step (training_step, evaluation, result compilation), plus the records.
        self._episode_records: list[dict[str, Any]] = []
        results = super().step()
        results[TRAINING_EPISODES] = self._episode_records
        return results

    @override(Algorithm)
    def training_step(self) -> None:
        for _ in range(int(self.config.episodes_per_iteration)):
            # Sample one episode, updating the Q-table online after every step.
            with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
                result = self.learner.train_episode(self.env, seed=self._next_seed())
            self.episodes_done += 1
            # Log the episode like an EnvRunner would, plus its training_metrics.json record.
            self._log_episode(result)
        # Report the learner's state.
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            self._log_learner()

    def _next_seed(self) -> int | None:
        task_seed = self.config.env_config.get("task_seed")
        return None if task_seed is None else training_seed(task_seed, self.episodes_done)

    def _log_episode(self, result: EpisodeResult) -> None:
        record = result.trace.training_record(self.episodes_done, result.epsilon)
        steps = result.trace.steps
        m = self.metrics
        m.log_value((ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN), record["total_reward"], window=100)
        m.log_value((ENV_RUNNER_RESULTS, EPISODE_RETURN_MAX), record["total_reward"],
                    reduce="max", window=100)
        m.log_value((ENV_RUNNER_RESULTS, EPISODE_LEN_MEAN), steps, window=100)
        m.log_value((ENV_RUNNER_RESULTS, "final_qos_mean"), record["final_qos"], window=100)
        m.log_value((ENV_RUNNER_RESULTS, "mean_workers_mean"), record["mean_workers"],
                    window=100)
        m.log_value((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED), steps, reduce="sum")
        m.log_value((ENV_RUNNER_RESULTS, NUM_EPISODES), 1, reduce="sum")
        m.log_value((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), steps,
                    reduce="lifetime_sum")
        m.log_value((ENV_RUNNER_RESULTS, NUM_EPISODES_LIFETIME), 1, reduce="lifetime_sum")
        m.log_value((LEARNER_RESULTS, SARSA, "updates"), result.updates, reduce="sum")
        m.log_value((LEARNER_RESULTS, SARSA, "updates_lifetime"), result.updates,
                    reduce="lifetime_sum")
        self._episode_records.append(record)

    def _log_learner(self) -> None:
        m = self.metrics
        m.log_value((LEARNER_RESULTS, SARSA, "epsilon"), self.learner.epsilon, reduce="item")
        m.log_value((LEARNER_RESULTS, SARSA, "q_table_size"), len(self.learner.q), reduce="item")
        m.log_value((LEARNER_RESULTS, SARSA, "q_checksum"), q_checksum(self.learner.q),
                    reduce="item")
        m.log_value((LEARNER_RESULTS, SARSA, "episodes_done"), self.episodes_done, reduce="item")

    @override(Algorithm)
    def evaluate(self, parallel_train_future=None) -> ResultDict:
        """Run ``evaluation_duration`` greedy episodes now; returns the checkpoint record."""
        make_callback("on_evaluate_start", self.callbacks,
                      self.config.callbacks_on_evaluate_start,
                      kwargs=dict(algorithm=self, metrics_logger=self.metrics))
        env_config = evaluation_env_config(self.evaluation_config.env_config)
        env = self.env_creator(EnvContext(env_config, worker_index=0))
        try:
            record = evaluate_checkpoint(env, self.learner.greedy_action, self.episodes_done,
                                         int(self.config.evaluation_duration),
                                         seed=int(self.config.seed or 0))
        finally:
            env.close()
        results = {**record, ENV_RUNNER_RESULTS: {
            EPISODE_RETURN_MEAN: record["mean_total_reward"],
            NUM_EPISODES: record["eval_episodes"]}}
        make_callback("on_evaluate_end", self.callbacks, self.config.callbacks_on_evaluate_end,
                      kwargs=dict(algorithm=self, metrics_logger=self.metrics,
                                  evaluation_metrics=results))
        return results

    @override(Algorithm)
    def restore_env_runners(self, env_runner_group) -> list[int]:
        return []  # no remote env runners to restore

    # ---- checkpointing: the Q-table, epsilon, RNG and episode counter, via Checkpointable

    @override(Algorithm)
    def get_state(self, components: Optional[Union[str, Collection[str]]] = None, *,
                  not_components: Optional[Union[str, Collection[str]]] = None,
                  **kwargs) -> dict[str, Any]:
        return {
            _STATE: {**self.learner.get_state(), "episodes_done": self.episodes_done},
            COMPONENT_METRICS_LOGGER: self.metrics.get_state(),
            TRAINING_ITERATION: self.training_iteration,
        }

    @override(Algorithm)
    def set_state(self, state: dict[str, Any]) -> None:
        if _STATE in state:
            self.learner.set_state(state[_STATE])
            self.episodes_done = int(state[_STATE]["episodes_done"])
        if COMPONENT_METRICS_LOGGER in state:
            self.metrics.set_state(state[COMPONENT_METRICS_LOGGER])
        if TRAINING_ITERATION in state:
            self._iteration = state[TRAINING_ITERATION]

    @override(Algorithm)
    def get_checkpointable_components(self) -> list:
        return []  # everything is in this algorithm's own state file

    @override(Algorithm)
    def restore_from_path(self, path, *args, **kwargs) -> None:
        Checkpointable.restore_from_path(self, path, *args, **kwargs)

    @override(Algorithm)
    def cleanup(self) -> None:
        if getattr(self, "env", None) is not None:
            self.env.close()
            self.env = None
        super().cleanup()


def q_checksum(q: dict) -> float:
    """An order-independent fingerprint of a Q-table (to compare tables across processes)."""
    total = 0.0
    for key, row in q.items():
        weight = (zlib.crc32(repr(key).encode()) % 9973 + 1) / 9973
        total += weight * float(np.dot(row, np.arange(1, len(row) + 1)))
    return total


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


__all__ = [
    "DEFAULT_BINS", "DEFAULT_EDGES", "Discretiser", "SarsaHyperparams", "SarsaLambda",
    "SarsaLambdaConfig", "SarsaLambdaLearner", "TRAINING_EPISODES", "load_model", "q_checksum",
]
