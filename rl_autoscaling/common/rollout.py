"""Roll-outs: one episode of a policy on an env, and the greedy checkpoint evaluation; the two
episode-seed rules.

:func:`training_seed` is the one training seed rule: episode ``e`` of env copy
``(worker_index, vector_index)`` of a run with training seed ``task_seed`` is seeded from
``numpy.random.SeedSequence([task_seed, stream, worker_index, vector_index, e])``, so every env
copy (RLlib env runner x vector env) plays its own reproducible workload stream. The env
(``OpenFaaSAutoscalingEnv.reset``), SARSA(lambda) and RLlib's env runners all go through it.
Training seeds are >= ``TRAINING_SEED_BASE`` (2**32).

:func:`evaluate_checkpoint` owns the evaluation seed rule: evaluation episode ``i`` at a
checkpoint after ``n`` episodes is seeded ``seed + n * 1000 + i`` on an env without phase
shuffle (:func:`evaluation_env_config`); those seeds are < 2**32 for any realistic seed and
episode count, so evaluation never replays a training workload.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from .metrics import EpisodeTrace, checkpoint_evaluation

Policy = Callable[[np.ndarray, Mapping[str, Any]], int]


def run_episode(env, act: Policy, seed: int | None = None,
                on_step: Callable[[np.ndarray, float, Mapping[str, Any]], None] | None = None
                ) -> EpisodeTrace:
    """Roll out one episode with ``act(obs, info) -> action``; returns its trace."""
    obs, info = env.reset(seed=seed)
    trace = EpisodeTrace()
    while True:
        action = act(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        trace.record(obs, reward, info, action=action)
        if on_step is not None:
            on_step(obs, reward, info)
        if terminated or truncated:
            return trace


TRAINING_SEED_BASE = 2 ** 32
STREAM_TRAINING, STREAM_RLLIB_EVALUATION = 0, 1  # RLlib's evaluation env runners: own stream


def training_seed(task_seed: int, episode: int, worker_index: int = 0, vector_index: int = 0,
                  stream: int = STREAM_TRAINING) -> int:
    """Seed of training episode ``episode`` (0-based) of env copy ``(worker_index,
    vector_index)``: a 62-bit draw of the ``SeedSequence`` above, offset by 2**32."""
    parts = [int(task_seed), int(stream), int(worker_index), int(vector_index), int(episode)]
    if min(parts) < 0:
        raise ValueError(f"training seeds need non-negative task_seed/indices, got {parts}")
    hi, lo = np.random.SeedSequence(parts).generate_state(2, np.uint32)
    return TRAINING_SEED_BASE + ((int(hi) << 32) | int(lo)) % (2 ** 62)


def evaluation_env_config(env_config: Mapping[str, Any]) -> dict[str, Any]:
    """``env_config`` for checkpoint evaluation: the same env without phase shuffle."""
    cfg = dict(env_config or {})
    cfg["phase_shuffle"] = False
    cfg.pop("phase_shuffle_seed", None)
    return cfg


def evaluation_seed(seed: int, checkpoint_episode: int, index: int) -> int:
    """Seed of evaluation episode ``index`` at a checkpoint: seed + episode * 1000 + index."""
    return int(seed) + int(checkpoint_episode) * 1000 + int(index)


def evaluate_checkpoint(env, act: Callable[[Any, Mapping[str, Any]], int],
                        checkpoint_episode: int, eval_episodes: int, seed: int,
                        traces: list[EpisodeTrace] | None = None) -> dict[str, Any]:
    """Greedy roll-outs of ``act`` on ``env`` (build it with :func:`evaluation_env_config`);
    returns the ``evaluation_metrics.json`` record. ``act.reset()`` is called before every
    episode when it exists (``Policy`` objects). Traces are appended to ``traces`` if given."""
    done: list[EpisodeTrace] = []
    reset = getattr(act, "reset", None)
    for i in range(int(eval_episodes)):
        if callable(reset):
            reset()
        done.append(run_episode(env, act, seed=evaluation_seed(seed, checkpoint_episode, i)))
    if traces is not None:
        traces.extend(done)
    return checkpoint_evaluation(int(checkpoint_episode), done)


