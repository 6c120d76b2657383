"""Rewards, selected by ``reward.profile``.

``seed`` (the default of the env and the packaged config): the shaped reward of docs/env.md#reward,
computed on the observation that follows the action (:func:`step_reward`,
:func:`episode_end_reward`), unchanged from the original toolkit.

``slo_cost`` (the trainers' default): "meet the SLO with the fewest workers". With SLO target
``s`` (``reward.slo_cost.qos_target``), after step t: V_t the tasks collected late, C_t the
tasks collected, O_t the tasks not collected whose deadline has already passed (waiting,
processing or uncollected: ``FarmSnapshot.overdue``; each is a miss whatever happens next) and

    excess_t = max(0, V_t + O_t - (1 - s) (C_t + O_t))

(misses beyond the SLO's budget among the tasks decided so far). At the episode's end, after
the straggler drain, O_T is every task enqueued and never collected (U; tasks the emitter
never generated, e.g. an episode truncated before its workload ended, do not count). Step t earns

    r_t = - worker_cost * W_t * step_duration
          - violation_cost * (excess_t - excess_{t-1})
          - miss_penalty * [episode ends at t and excess_T > 0]

so an episode's return telescopes to
``-(worker_cost * worker_seconds + violation_cost * excess_T + miss_penalty * [SLO missed])``
with ``excess_T = max(0, V + U - (1 - s)(C + U))``: every episode meeting the SLO (excess_T =
0) is ranked by worker-seconds alone, and any episode missing it ranks below all of them as long
as ``miss_penalty`` exceeds the largest possible worker cost (``worker_cost * max_workers *
max_steps * step_duration``). A miss is priced at the step its deadline passes, not when the
late task is finally collected or the episode ends, so a stalled farm pays at every step of the
stall (no end-of-episode cliff that discounting or a reward clip could hide). The largest step
reward in magnitude is about ``miss_penalty + violation_cost * (tasks arriving in one step) +
worker_cost * max_workers * step_duration`` (50 + 0.5 x 10 tasks/s x 8 s + 1.3 = 91 at twice the
default farm's base rate), inside DQN's +-100 reward clip (see docs/algorithms.md#dqn).
"""

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


def slo_excess(violations: float, collected: float, qos_target: float,
               unfinished: float = 0.0) -> float:
    """Deadline misses beyond the SLO's budget: ``max(0, V + U - (1 - s)(C + U))``."""
    misses = violations + unfinished
    excess = misses - (1.0 - qos_target) * (collected + unfinished)
    return excess if excess > 1e-9 else 0.0


def slo_cost_reward(workers: float, seconds: float, excess_before: float,
                    excess_after: float, done: bool, cfg: RewardConfig) -> float:
    """The ``slo_cost`` reward of one step (module docstring): worker-seconds, the growth of
    the SLO excess, and the miss penalty on the episode's last step if the SLO was missed."""
    s = cfg.slo_cost
    reward = -s.worker_cost * workers * seconds
    reward -= s.violation_cost * (excess_after - excess_before)
    if done and excess_after > 0.0:
        reward -= s.miss_penalty
    return reward
