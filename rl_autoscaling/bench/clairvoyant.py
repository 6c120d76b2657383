"""A clairvoyant anchor for ``bench policies``: a policy that knows the future.

At every step it plays each action on a copy of the twin in its current state (the same
seeded episode: the copy holds the future arrivals, processing times and farm latencies),
follows it with ``horizon - 1`` steps of the fastest recovery (the largest scale-up), and
takes the cheapest action (the smallest delta) after which the farm can still keep the SLO:
the look-ahead's deadline misses, over the tasks it collects plus the tasks still queued past
their deadline, stay within ``(1 - slo) / 2`` (half the SLO's budget, a margin for the
episode). If no action can, it takes the one with the fewest misses (the largest on ties).
So it holds the fewest workers from which the coming load can still be met, and scales up
just in time; it is greedy, hence not optimal, and it foresees the Poisson noise too, which
no causal policy can. Its ratio to the static frontier shows an autoscaler's headroom on a
workload. Bursts larger than ``horizon`` workers above the current count (``flash``) are seen
too late for the SLO.

Cost: ``len(action_deltas) x horizon`` twin steps and copies per step (about 1 s per episode
of 30-80 steps); twin only.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np

from ..common.metrics import EpisodeTrace

#: look-ahead steps: 80 s of 8-s steps, enough to add 10 workers before a rise
HORIZON = 10


def late_in_queue(env) -> int:
    """Tasks still waiting in ``worker_queue`` whose deadline has already passed (the twin
    knows their deadlines): misses that have not been collected yet."""
    farm = env.backend
    wl, now = farm.workload, farm.now
    first = len(farm.task_records()["pickup"])
    enqueued = int(np.searchsorted(wl.arrivals, now, side="right"))
    if enqueued <= first:
        return 0
    waiting = slice(first, enqueued)
    return int(np.count_nonzero(wl.arrivals[waiting] + wl.deadlines[waiting] < now))


def look_ahead(env, info: Mapping[str, Any], action: int, horizon: int,
               then: int) -> tuple[int, int]:
    """Play ``action`` then ``then`` for ``horizon - 1`` steps on a copy of ``env`` (whose
    last ``info`` is ``info``): ``(misses, tasks counted)``."""
    sim = copy.deepcopy(env)
    after = info
    for k in range(horizon):
        _, _, terminated, truncated, after = sim.step(action if k == 0 else then)
        if terminated or truncated:
            break
    late = late_in_queue(sim)
    misses = after["qos_violations"] - info["qos_violations"] + late
    return misses, after["processed_tasks"] - info["processed_tasks"] + late


def choose(env, info: Mapping[str, Any], slo: float, horizon: int = HORIZON) -> int:
    """The clairvoyant's action in ``env``'s current state (``info``: its last info)."""
    deltas = env.action_deltas
    recover = int(np.argmax(deltas))
    budget = (1.0 - slo) / 2
    best, best_key = None, None
    for action in sorted(range(len(deltas)), key=lambda a: deltas[a]):
        misses, counted = look_ahead(env, info, action, horizon, recover)
        if misses <= budget * counted + 1e-9:
            return action  # the cheapest action that keeps the SLO
        key = (misses, -deltas[action])
        if best_key is None or key < best_key:
            best, best_key = action, key
    return int(best)


def clairvoyant_episode(env, seed: int, slo: float, horizon: int = HORIZON) -> EpisodeTrace:
    """One episode of the clairvoyant on ``env`` (a twin env) seeded ``seed``."""
    _, info = env.reset(seed=int(seed))
    trace = EpisodeTrace()
    while True:
        obs, reward, terminated, truncated, info = env.step(choose(env, info, slo, horizon))
        trace.record(obs, reward, info)
        if terminated or truncated:
            return trace


__all__ = ["HORIZON", "choose", "clairvoyant_episode", "late_in_queue", "look_ahead"]
