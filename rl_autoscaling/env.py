"""``OpenFaaSAutoscalingEnv``: the farm as a Gymnasium environment (docs/env.md).

The env talks to a farm backend (the simulated twin by default, the live farm with
``backend="live"``) only through :class:`rl_autoscaling.farm.base.FarmBackend`, and builds
observations, rewards and ``info`` from backend snapshots, so every backend yields the same
contract.

Seeding: ``reset(seed=s)`` makes the episode fully determined by ``s`` (workload and farm
randomness). Without a seed, episode ``e`` of an env built with ``task_seed=t`` uses
``common.rollout.training_seed(t, e, worker_index, vector_index)`` (the one training seed
rule); with neither, a seed is drawn from ``self.np_random``. An env copy made by a Ray creator
(``env_creator``; ``set_env_copy``) knows its ``(worker_index, vector_index)``; there RLlib's
``assign_env_copies`` (called from RLlib's ``on_environment_created`` callback) numbers the
sub-envs of a vector env, which RLlib builds from one context, and hands their resets to the
rule: there RLlib's own first-reset seed only seeds ``np_random`` when ``task_seed`` is set, so
each copy plays its own reproducible stream.

Registered as the Gymnasium id ``rl_autoscaling/OpenFaaSAutoscaling-v0`` (on import of the
package) and as the Ray env ``OpenFaaSAutoscaling-v0`` (``register_ray_env()``; the creator
takes Ray's ``env_config``: constructor arguments, ``config`` (a YAML path) and any farm config
key as an override, e.g. ``{"step_duration": 8, "reward.target_qos": 0.9}``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import gymnasium as gym
import numpy as np

from .common.rollout import STREAM_RLLIB_EVALUATION, STREAM_TRAINING, training_seed
from .common.settings import check_bounds, check_values, setting
from .config import REWARD_PROFILES, ConfigError, FarmConfig, load_config, resolve_config
from .farm import BACKENDS, make_backend
from .farm.base import Completions, FarmBackend, FarmSnapshot
from .farm.workload import (
    expected_task_count,
    peak_rate,
    phase_count,
    phase_order,
    workload_seconds,
)
from .observation import OBS_NAMES, Obs
from .observation import bounds as obs_bounds
from .reward import episode_end_reward, slo_cost_reward, slo_excess, step_reward

GYM_ENV_ID = "rl_autoscaling/OpenFaaSAutoscaling-v0"
RAY_ENV_NAME = "OpenFaaSAutoscaling-v0"

DEFAULT_TIME = 1.5  # mean/max completion time reported when no task was collected


#: Fewest steps of an episode whose length comes from its workload.
MIN_EPISODE_STEPS = 30


def qos_headroom_setting(default: float) -> Any:
    """The ``qos_headroom`` field of a trainer's settings (``SarsaRun``, ``DqnRun``): train
    (slo_cost's ``qos_target``) and choose the model (the ranking's SLO) for the farm config's
    SLO plus this much final QoS; ``default`` is the algorithm's twin-recipe value, the seed
    recipe's is 0. Applied by :meth:`EnvSettings.env_config`."""
    return setting(default, "train and choose the model for the SLO plus this much final QoS "
                            "(slo_cost's qos_target, the ranking's SLO; the policy report "
                            "states the target): a 20-episode mean varies by about +-0.004",
                   seed=0.0, ge=0, lt=0.1)


def miss_penalty_setting(default: Optional[float]) -> Any:
    """The ``miss_penalty`` field of a trainer's settings (``SarsaRun``, ``DqnRun``): the
    slo_cost reward's charge, once per episode, for missing the SLO (None: the farm config's
    ``reward.slo_cost.miss_penalty``, 50); ``default`` is the algorithm's twin-recipe value, the
    seed recipe's is None. Applied by :meth:`EnvSettings.env_config`
    (docs/env.md#the-slo_cost-reward says why both twin recipes train without it)."""
    return setting(default, "slo_cost's charge for an episode that misses the SLO, on top of "
                            "its misses over the SLO's budget (none: the farm config's "
                            "reward.slo_cost.miss_penalty)", seed=None, ge=0, metavar="COST")


@dataclasses.dataclass(frozen=True)
class EnvSettings:
    """The env settings of the trainers, testers, comparisons, benches and Tune specs: one
    owner for each (the env's own constructor defaults are docs/env.md's contract). Defaults:
    the ``twin`` recipe; ``seed=``: the original toolkit's."""

    max_steps: Optional[int] = setting(
        None, "steps per episode before truncation (none: the workload's length in steps, at "
              "least 30; 30 for the default workload)", seed=30, ge=1)
    step_duration: float = setting(8.0, "seconds per step, scaling included", gt=0)
    observation_window: float = setting(8.0, "seconds of collected tasks behind the "
                                             "time/QoS observations", gt=0)
    initial_workers: int = setting(12, "workers at reset", ge=1)
    task_seed: int = setting(42, "workload seed: training episode e uses task_seed + e", ge=0)
    phase_shuffle: bool = setting(False, "shuffle the workload's phase order (training "
                                         "episodes only)")
    phase_shuffle_seed: Optional[int] = setting(None, "fix the shuffled phase order (none: a "
                                                      "new order each episode)", ge=0)
    config: Optional[str] = setting(None, "farm configuration: a YAML file or a packaged "
                                          "profile name (none: the packaged default)",
                                    metavar="YAML")
    backend: str = setting("simulated", "farm backend", choices=BACKENDS)
    reward_profile: str = setting(
        "slo_cost", "training reward (sets reward.profile over the config's): slo_cost = meet "
                    "the final-QoS SLO with the fewest worker-seconds; seed = the original "
                    "shaped reward", seed="seed", choices=REWARD_PROFILES)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> EnvSettings:
        """Raise ``ValueError`` naming the first value outside its declared bounds (run at
        construction; the env's constructor checks its arguments against the same bounds);
        returns self."""
        return check_bounds(self)

    def qos_target(self, qos_headroom: float = 0.0) -> Optional[float]:
        """The final QoS the slo_cost reward trains for and the ranking chooses by: the
        farm config's SLO (``reward.slo_cost.qos_target``) plus a trainer's ``qos_headroom``
        (:func:`qos_headroom_setting`), capped at 1; None without headroom (the config's own)
        or under another reward."""
        if not qos_headroom or self.reward_profile != "slo_cost":
            return None
        slo = float(load_config(self.config).reward.slo_cost.qos_target)
        return min(1.0, slo + float(qos_headroom))

    def resolved_max_steps(self) -> int:
        """``max_steps``, or the workload's nominal seconds over the step length (at least
        :data:`MIN_EPISODE_STEPS`: the default workload's 240 s are 30 steps of 8 s)."""
        if self.max_steps is not None:
            return int(self.max_steps)
        seconds = workload_seconds(load_config(self.config))
        return max(MIN_EPISODE_STEPS, int(math.ceil(seconds / float(self.step_duration) - 1e-9)))

    def env_config(self, qos_headroom: float = 0.0,
                   miss_penalty: Optional[float] = None) -> dict[str, Any]:
        """The env's ``env_config`` (also Ray's): ``task_seed``/``config`` only when set; a
        trainer's ``qos_headroom`` raises slo_cost's ``qos_target`` (:meth:`qos_target`) and
        its ``miss_penalty`` (not None) replaces slo_cost's (:func:`miss_penalty_setting`)."""
        cfg = {k: getattr(self, k) for k in ("step_duration", "observation_window",
                                             "initial_workers", "phase_shuffle",
                                             "phase_shuffle_seed", "backend")}
        cfg["max_steps"] = self.resolved_max_steps()
        if self.task_seed is not None:
            cfg["task_seed"] = int(self.task_seed)
        if self.config:
            cfg["config"] = str(self.config)
        cfg["reward.profile"] = self.reward_profile
        target = self.qos_target(qos_headroom)
        if target is not None:
            cfg["reward.slo_cost.qos_target"] = round(target, 6)
        if miss_penalty is not None and self.reward_profile == "slo_cost":
            cfg["reward.slo_cost.miss_penalty"] = float(miss_penalty)
        return cfg


class _WindowStats:
    """Completion times and QoS of the tasks collected in the last ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.reset()

    def reset(self) -> None:
        self._summary: tuple[float, float, float] | None = None
        self.times = np.zeros(0)
        self.values = np.zeros(0)
        self.qos = np.zeros(0, dtype=bool)

    def add(self, done: Completions, now: float) -> None:
        self._summary = None
        if len(done):
            self.times = np.concatenate((self.times, done.collect_times))
            self.values = np.concatenate((self.values, done.completion_times))
            self.qos = np.concatenate((self.qos, done.qos))
        if self.times.size:
            keep = self.times >= now - self.window
            if not keep.all():
                self.times, self.values, self.qos = (
                    self.times[keep], self.values[keep], self.qos[keep])

    def summary(self) -> tuple[float, float, float]:
        """(mean time, max time, QoS rate) with the documented defaults for an empty window (docs/env.md)."""
        if self._summary is None:
            n = self.values.size
            self._summary = (DEFAULT_TIME, DEFAULT_TIME, 1.0) if not n else (
                float(self.values.sum()) / n, float(self.values.max()),
                float(np.count_nonzero(self.qos)) / n)
        return self._summary


class OpenFaaSAutoscalingEnv(gym.Env):
    """Scale the farm's workers by -1/0/+1 (or a wider ``action_deltas`` set) each step.

    Args:
        max_workers, min_workers: worker count bounds; clipped-away actions apply delta 0.
        observation_window: seconds of collected tasks behind the time/QoS observations.
        step_duration: seconds per step, scaling time included.
        max_steps: steps before truncation.
        initial_workers: workers at reset.
        phase_shuffle: shuffle the phase order; ``phase_shuffle_seed`` fixes that order for
            every episode, ``None`` draws a new order each episode.
        task_seed: base seed of the workload (see the module docstring).
        backend: ``"simulated"`` (default) or ``"live"``, or a ``FarmBackend`` instance.
        config: a ``FarmConfig``, a YAML path, or an overrides mapping; default: packaged.
        action_deltas: worker deltas per action index; default ``(-1, 0, 1)``.
        backend_options: keyword arguments for the backend (e.g. ``redis_url``).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        max_workers: int = 32,
        min_workers: int = 1,
        observation_window: float = 10.0,
        step_duration: float = 10.0,
        max_steps: int = 50,
        initial_workers: int = 1,
        phase_shuffle: bool = False,
        phase_shuffle_seed: int | None = None,
        task_seed: int | None = None,
        backend: str | FarmBackend = "simulated",
        config: FarmConfig | str | Path | Mapping[str, Any] | None = None,
        action_deltas: Sequence[int] = (-1, 0, 1),
        backend_options: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        _require(min_workers >= 0, f"min_workers must be >= 0, got {min_workers}")
        _require(max_workers >= max(1, min_workers),
                 f"max_workers must be >= max(1, min_workers), got {max_workers}")
        _require(min_workers <= initial_workers <= max_workers,
                 f"initial_workers must be in [{min_workers}, {max_workers}], got {initial_workers}")
        # the bounds' one owner: EnvSettings (initial_workers: the worker range above)
        check_values(EnvSettings, step_duration=step_duration,
                     observation_window=observation_window, max_steps=max_steps,
                     task_seed=task_seed, phase_shuffle_seed=phase_shuffle_seed)
        deltas = tuple(int(d) for d in action_deltas)
        _require(len(deltas) >= 2 and len(set(deltas)) == len(deltas),
                 f"action_deltas must hold at least two distinct integers, got {deltas}")

        self.farm_config = resolve_config(config)
        self.max_workers, self.min_workers = int(max_workers), int(min_workers)
        self.observation_window = float(observation_window)
        self.step_duration = float(step_duration)
        self.max_steps = int(max_steps)
        self.initial_workers = int(initial_workers)
        self.phase_shuffle = bool(phase_shuffle)
        self.phase_shuffle_seed = phase_shuffle_seed
        self.task_seed = task_seed
        self.action_deltas = deltas
        self.render_mode = render_mode
        self.backend: FarmBackend = (
            backend if isinstance(backend, FarmBackend)
            else make_backend(backend, self.farm_config, **dict(backend_options or {}))
        )

        cfg = self.farm_config
        n_phases = phase_count(cfg)
        expected = expected_task_count(cfg)
        low, high = obs_bounds(n_phases, expected, self.min_workers, self.max_workers,
                               peak_rate=peak_rate(cfg))
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(deltas))

        self._episode = 0
        self.env_copy: tuple[int, int, int] | None = None  # (worker, vector, stream) under Ray
        self.rule_seeds_resets = False  # True: reset seeds only seed np_random (task_seed set)
        self._window = _WindowStats(self.observation_window)
        self._final_qos: float | None = None
        self._snapshot: FarmSnapshot | None = None

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def from_env_config(cls, env_config: Mapping[str, Any] | None) -> OpenFaaSAutoscalingEnv:
        """Build from Ray's ``env_config``: constructor args, ``config`` path, farm overrides."""
        return cls(**cls._split_env_config(env_config))

    @classmethod
    def farm_config_of(cls, env_config: Mapping[str, Any] | None) -> FarmConfig:
        """The farm config an ``env_config`` describes (no backend is built)."""
        return cls._split_env_config(env_config)["config"]

    @classmethod
    def _split_env_config(cls, env_config: Mapping[str, Any] | None) -> dict[str, Any]:
        params = set(inspect.signature(cls.__init__).parameters) - {"self"}
        kwargs: dict[str, Any] = {}
        overrides: dict[str, Any] = {}
        for key, value in dict(env_config or {}).items():
            (kwargs if key in params else overrides)[key] = value
        base = kwargs.pop("config", None)
        if isinstance(base, Mapping):
            base, overrides = None, {**base, **overrides}
        if isinstance(base, FarmConfig):
            kwargs["config"] = base.replace(overrides) if overrides else base
        else:
            kwargs["config"] = load_config(base, overrides)
        return kwargs

    # ------------------------------------------------------------------ gymnasium API

    def set_env_copy(self, worker_index: int = 0, vector_index: int = 0,
                     stream: int = STREAM_TRAINING) -> None:
        """Mark this env as RLlib's env copy ``(worker_index, vector_index)`` (module docstring)."""
        self.env_copy = (int(worker_index), int(vector_index), int(stream))

    def _initial_workers_of(self, options: Mapping[str, Any] | None) -> int:
        """Workers at reset: ``options["initial_workers"]`` (one episode only; e.g. exploring
        starts in training) or the env's ``initial_workers``."""
        value = (options or {}).get("initial_workers", self.initial_workers)
        low = int(self.observation_space.low[Obs.WORKERS])
        high = int(self.observation_space.high[Obs.WORKERS])
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not float(value).is_integer() or not low <= value <= high):
            raise ValueError(f"reset option initial_workers must be a whole number in "
                             f"[{low}, {high}], got {value!r}")
        return int(value)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.rule_seeds_resets and self.task_seed is not None:
            seed = None  # RLlib's reset seed: np_random only; the workload follows the rule
        if seed is not None:
            episode_seed = int(seed)
        elif self.task_seed is not None:
            worker, vector, stream = self.env_copy or (0, 0, STREAM_TRAINING)
            episode_seed = training_seed(self.task_seed, self._episode, worker, vector, stream)
        else:
            episode_seed = int(self.np_random.integers(2**63 - 1))
        self._episode += 1
        order = None
        if self.phase_shuffle and not self.farm_config.trace:
            shuffle_seed = (self.phase_shuffle_seed if self.phase_shuffle_seed is not None
                            else np.random.SeedSequence([episode_seed, 7]))
            order = phase_order(len(self.farm_config.phase_definitions), True,
                                np.random.default_rng(shuffle_seed))
        self.phase_order = order
        self.episode_seed = episode_seed

        initial = self._initial_workers_of(options)
        snap = self.backend.reset(seed=episode_seed, initial_workers=initial,
                                  phase_order=order)
        return self._start(snap, initial)

    def attach(self):
        """Start observing the backend's farm as it runs, without resetting it: the first
        observation and info of a controller that serves a policy continuously
        (:mod:`rl_autoscaling.deploy`). Later ``step`` calls work as after ``reset``; the
        counters (collected tasks, QoS) start from this instant."""
        snap = self.backend.snapshot()
        return self._start(snap, int(snap.workers))

    def _start(self, snap: FarmSnapshot, workers: int):
        self._target_workers = workers
        self._steps = 0
        self._total_reward = 0.0
        self._scaling_actions = 0
        self._violations = 0
        self._collected = 0
        self._final_qos = None
        self._slo_excess = 0.0
        self._window.reset()
        self._prev_time, self._prev_enqueued = snap.time, snap.enqueued_total
        obs = self._observe(snap, first=True)
        info = self._info(snap, requested=0, applied=0, scaling_time=0.0, step_time=0.0)
        return obs, info

    def step(self, action):
        if self._snapshot is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        requested = self.action_deltas[int(action)]
        target = min(self.max_workers, max(self.min_workers, self._target_workers + requested))
        start = self.backend.now
        result = self.backend.scale(target - self._target_workers)
        self._target_workers += result.applied
        self.backend.wait(self.step_duration - result.scaling_time)
        snap = self.backend.snapshot()
        obs = self._observe(snap)
        self._steps += 1
        if result.applied:
            self._scaling_actions += 1

        expected = self.backend.expected_tasks
        terminated = (snap.input_queue == 0 and snap.worker_queue == 0
                      and snap.result_queue == 0 and snap.output_queue >= expected)
        truncated = not terminated and self._steps >= self.max_steps
        pending = expected - snap.output_queue
        step_time = snap.time - start
        if terminated or truncated:
            snap = self.backend.drain(self.farm_config.timing.straggler_timeout)
            self._count(snap.completed)
            self._snapshot = snap
            self._final_qos = self.final_qos()
        reward = self._reward(obs, result.applied, terminated, truncated, pending)
        self._total_reward += reward
        info = self._info(snap, requested, result.applied, result.scaling_time, step_time)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def _reward(self, obs: np.ndarray, applied: int, terminated: bool, truncated: bool,
                pending: int) -> float:
        """The step's reward under ``reward.profile`` (reward.py): ``seed`` from the observation
        and the tasks ``pending`` at the step's end; ``slo_cost`` from the deadline misses so far
        (collected late or overdue, ``FarmSnapshot.overdue``) and the collections (after the
        end-of-episode drain)."""
        rcfg = self.farm_config.reward
        if rcfg.profile == "slo_cost":
            done = terminated or truncated
            snap = self._snapshot
            # Misses so far: collected late, plus overdue while still queued or processing;
            # at the end every task enqueued and never collected is a miss.
            open_misses = (max(0, snap.enqueued_total - self._collected) if done
                           else snap.overdue)
            excess = slo_excess(self._violations, self._collected, rcfg.slo_cost.qos_target,
                                open_misses)
            reward = slo_cost_reward(float(obs[Obs.WORKERS]), self.step_duration,
                                     self._slo_excess, excess, done, rcfg)
            self._slo_excess = excess
            return reward
        return (step_reward(float(obs[Obs.QOS_RATE]), float(obs[Obs.WORKER_QUEUE]),
                            float(obs[Obs.WORKERS]), applied, rcfg)
                + episode_end_reward(terminated, truncated, pending, rcfg))

    # ------------------------------------------------------------------ observation & info

    def _count(self, done: Completions) -> None:
        n = len(done)
        if n:
            self._collected += n
            self._violations += n - int(np.count_nonzero(done.qos))

    def _observe(self, snap: FarmSnapshot, first: bool = False) -> np.ndarray:
        self._snapshot = snap
        self._count(snap.completed)
        self._window.add(snap.completed, snap.time)
        mean_t, max_t, qos = self._window.summary()
        elapsed = snap.time - self._prev_time
        rate = 0.0 if first or elapsed <= 0 else (
            (snap.enqueued_total - self._prev_enqueued) / elapsed)
        self._prev_time, self._prev_enqueued = snap.time, snap.enqueued_total
        return np.array(
            [snap.input_queue, snap.worker_queue, snap.result_queue, snap.output_queue,
             snap.workers, mean_t, max_t, rate, qos], dtype=np.float32)

    def final_qos(self) -> float:
        """Share of the tasks collected so far this episode that met their deadline."""
        if self._collected == 0:
            return 1.0
        return (self._collected - self._violations) / self._collected

    def get_episode_final_qos(self) -> float | None:
        """The episode's final QoS over every collected task; None until the episode ends."""
        return self._final_qos

    def _info(self, snap: FarmSnapshot, requested: int, applied: int, scaling_time: float,
              step_time: float) -> dict[str, Any]:
        obs_qos = self._window.summary()[2]
        return {
            "step": self._steps,
            "queue_length": snap.worker_queue,
            "workers": snap.workers,
            "qos_rate": obs_qos,
            "requested_delta": requested,
            "applied_delta": applied,
            "total_reward": self._total_reward,
            "scaling_actions": self._scaling_actions,
            "qos_violations": self._violations,
            "scaling_time": scaling_time,
            "step_duration": step_time,
            "program_start_time": self.backend.program_start_time,
            "task_generation_start_time": self.backend.task_generation_start_time,
            "task_generation_end_time": self.backend.task_generation_end_time,
            "episode_final_qos": self._final_qos,
            "processed_tasks": snap.output_queue,
            "unfinished_tasks": max(0, self.backend.expected_tasks - snap.output_queue),
            "enqueued_total": snap.enqueued_total,
        }

    def close(self) -> None:
        self.backend.close()
        super().close()


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def env_creator(env_config: Mapping[str, Any] | None = None) -> OpenFaaSAutoscalingEnv:
    """Ray env creator: ``env_config`` as accepted by ``from_env_config``; an RLlib
    ``EnvContext``'s ``worker_index`` / ``vector_index`` make the env that copy."""
    env = OpenFaaSAutoscalingEnv.from_env_config(
        {k: v for k, v in dict(env_config or {}).items() if k != "num_envs"})
    env.set_env_copy(getattr(env_config, "worker_index", 0) or 0,
                     getattr(env_config, "vector_index", 0) or 0)
    return env


def assign_env_copies(env_runner, env) -> list[tuple[int, int, int]]:
    """Number the farm envs inside an RLlib env runner's (vector) ``env``: sub-env ``i`` of
    runner ``w`` becomes copy ``(w, i)``; evaluation runners use their own seed stream.
    Call it from ``on_environment_created`` (before the first reset). Returns the copies."""
    worker = int(getattr(env_runner, "worker_index", 0) or 0)
    config = getattr(env_runner, "config", None)
    stream = STREAM_RLLIB_EVALUATION if getattr(config, "in_evaluation", False) else STREAM_TRAINING
    subs = getattr(getattr(env, "unwrapped", env), "envs", None) or [env]
    copies = []
    for i, sub in enumerate(subs):
        farm = getattr(sub, "unwrapped", sub)
        if isinstance(farm, OpenFaaSAutoscalingEnv):
            farm.set_env_copy(worker, i, stream)
            farm.rule_seeds_resets = True
            copies.append(farm.env_copy)
    return copies


def register_ray_env(name: str = RAY_ENV_NAME) -> str:
    """Register the env with Ray Tune's registry (idempotent); returns the name."""
    from ray.tune.registry import register_env

    register_env(name, env_creator)
    return name


def register_gym_env() -> None:
    if GYM_ENV_ID not in gym.registry:
        gym.register(id=GYM_ENV_ID, entry_point="rl_autoscaling.env:OpenFaaSAutoscalingEnv")


__all__ = [
    "ConfigError", "GYM_ENV_ID", "OBS_NAMES", "OpenFaaSAutoscalingEnv", "RAY_ENV_NAME",
    "assign_env_copies", "env_creator", "register_gym_env", "register_ray_env",
]
