"""The reward of docs/env.md, computed on the observation that follows the action."""

from __future__ import annotations

from .config import RewardConfig


def step_reward(qos: float, worker_queue: float, workers: float, delta: int,
                cfg: RewardConfig) -> float:
    """Per-step reward for QoS rate ``qos``, ``worker_queue`` length, ``workers`` and the
    applied scaling ``delta``."""
    w = cfg.weights
    load = worker_queue / max(1.0, cfg.queue_target)
    healthy = qos >= cfg.target_qos
    overloaded = load > 1.0 or not healthy
    reward = w.qos * (qos - cfg.target_qos)
    reward -= w.backlog * max(0.0, load - 1.0) ** 2
    if worker_queue <= cfg.idle_queue_threshold and healthy:
        reward -= w.efficiency * max(0.0, workers - cfg.balanced_workers)
    reward -= w.scaling * abs(delta)
    if delta > 0 and overloaded:
        reward += w.scale.up * abs(delta)
    elif delta < 0 and not overloaded:
        reward += w.scale.down * abs(delta)
    if healthy and load <= 0.5:
        reward += 0.1 * w.qos
    return reward


def episode_end_reward(terminated: bool, truncated: bool, pending: int,
                       cfg: RewardConfig) -> float:
    """Completion bonus when the workload drained; penalty for tasks left at truncation."""
    if terminated:
        return cfg.completion_bonus
    if truncated:
        return -cfg.unfinished_penalty_scale * min(max(pending, 0), cfg.queue_target)
    return 0.0
