"""The DQN training env: the farm env with clipped rewards and scaled observations, registered with
Ray, and the episode traces and metrics it records.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from ...common.metrics import EpisodeTrace
from ...env import assign_env_copies, env_creator
from .model import ObservationScaler
from .schedule import epsilon_at

DQN_ENV_NAME = "OpenFaaSAutoscaling-v0-dqn"
#: env_config keys the DQN training env consumes (with their defaults); the farm env never sees them
WRAPPER_KEYS = {"reward_clip": 100.0, "reward_scale": 1.0, "derived_inputs": ()}


class DqnTrainingEnv(gym.Wrapper):
    """The env as the DQN learner sees it: scaled observations (with the ``derived_inputs``:
    ``ObservationScaler``), and rewards clipped to ``[-reward_clip, reward_clip]`` then
    multiplied by ``reward_scale`` (the clip applies to the env's own reward, so a scale never
    changes which rewards it cuts).

    It also records each episode's ``EpisodeTrace`` from the *raw* observations, rewards and
    ``info`` (so training metrics are the env's own numbers); finished traces accumulate in
    ``finished`` for the driver to collect.
    """

    def __init__(self, env: gym.Env, reward_clip: float | None = 100.0,
                 reward_scale: float = 1.0, derived_inputs: Sequence[str] = ()) -> None:
        super().__init__(env)
        self.scaler = ObservationScaler.from_space(env.observation_space, derived_inputs or ())
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.scaler.size,),
                                                dtype=np.float32)
        self.reward_clip = reward_clip
        self.reward_scale = float(reward_scale)
        self.trace: EpisodeTrace | None = None
        self.finished: list[EpisodeTrace] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.trace = EpisodeTrace()
        return self.scaler(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.trace is not None:
            self.trace.record(obs, reward, info)
            if terminated or truncated:
                self.finished.append(self.trace)
                self.trace = None
        if self.reward_clip is not None:
            reward = float(np.clip(reward, -self.reward_clip, self.reward_clip))
        reward = float(reward) * self.reward_scale
        return self.scaler(obs), reward, terminated, truncated, info

    def pop_finished(self) -> list[EpisodeTrace]:
        out, self.finished = self.finished, []
        return out


def dqn_env_creator(env_config: Mapping[str, Any] | None = None) -> DqnTrainingEnv:
    """Ray env creator: the farm env (``env_config`` as for ``env_creator``) wrapped for DQN.

    The extra keys ``reward_clip`` (default 100; ``None`` = no clipping), ``reward_scale``
    (default 1) and ``derived_inputs`` (default none: the 9 observation values) are consumed here.
    """
    own = dict(WRAPPER_KEYS)
    if env_config is not None and any(key in env_config for key in own):
        env_config = env_config.copy()  # an EnvContext stays one (worker_index, vector_index)
        own = {key: env_config.pop(key, default) for key, default in own.items()}
    return DqnTrainingEnv(env_creator(env_config), **own)


def register_dqn_env(name: str = DQN_ENV_NAME) -> str:
    """Register the DQN training env with Ray's registry (idempotent); returns the name."""
    from ray.tune.registry import register_env

    register_env(name, dqn_env_creator)
    return name


def dqn_envs(runner) -> list[DqnTrainingEnv]:
    """The ``DqnTrainingEnv`` instances inside an env runner's (vector) env."""
    found: list[DqnTrainingEnv] = []
    stack = [getattr(runner, "env", None)]
    seen: set[int] = set()
    while stack:
        env = stack.pop()
        if env is None or id(env) in seen:
            continue
        seen.add(id(env))
        if isinstance(env, DqnTrainingEnv):
            found.append(env)
            continue
        stack.extend(getattr(env, "envs", None) or [])
        stack.append(getattr(env, "env", None))
    return found


def pop_finished_traces(runner) -> list[EpisodeTrace]:
    """Pop the finished episode traces of a runner's ``DqnTrainingEnv``s (runs inside the
    runner's process when called through ``foreach_env_runner``)."""
    return [t for env in dqn_envs(runner) for t in env.pop_finished()]


def training_envs(algo) -> list[DqnTrainingEnv]:
    """The ``DqnTrainingEnv`` instances of the algorithm's local env runner."""
    return dqn_envs(getattr(algo, "env_runner", None))


EPISODE_METRICS = {  # env-runner metric -> key of the env's last ``info`` of an episode
    "final_qos": "episode_final_qos",
    "env_total_reward": "total_reward",    # the unclipped return
    "scaling_actions": "scaling_actions",
    "unfinished_tasks": "unfinished_tasks",
}


class DqnEpisodeMetrics(RLlibCallback):
    """Logs the farm's episode figures (``EPISODE_METRICS``) through RLlib's metrics logger,
    so Tune and the Ray dashboard see them under ``env_runners/<name>`` (mean of the last
    100 episodes)."""

    def on_environment_created(self, *, env_runner, env, **kwargs) -> None:
        from .learner import set_torch_threads

        assign_env_copies(env_runner, env)  # each sub-env its own workload stream
        set_torch_threads(env_runner.config)  # the runner's own process

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        if metrics_logger is None:
            return
        info = episode.get_infos(-1) or {}
        for name, key in EPISODE_METRICS.items():
            value = info.get(key)
            if value is not None:
                metrics_logger.log_value(name, float(value), reduce="mean", window=100)


def training_records(traces: Sequence[EpisodeTrace], first_episode: int, start_step: int,
                     schedule: Sequence[tuple[int, float]] | float,
                     mean_loss: float | None) -> list[dict[str, Any]]:
    """The training records of consecutive finished episodes: episode numbers from
    ``first_episode``, each with the epsilon RLlib used at its first env step (the episodes
    start at env step ``start_step``) and the iteration's ``mean_loss``."""
    records, step = [], int(start_step)
    for n, trace in enumerate(traces, start=int(first_episode)):
        records.append(trace.training_record(n, epsilon_at(schedule, step), mean_loss))
        step += trace.steps
    return records
