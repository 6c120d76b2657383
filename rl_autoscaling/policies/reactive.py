"""The reactive baselines of the original toolkit (docs/baselines.md, the "FARM analytical model").

Each step the policy estimates how many workers the current load needs (``N_opt``) and how
many of the current workers are busy with tasks already in flight, then moves the worker count
one step toward ``N_opt``:

    T      = service-time estimate (Average: max(avg_time, 0.1);
                                    Maximum: max(max_time, avg_time, 0.1))
    H_eff  = max(H, T, 1)
    N_opt  = max(1, (arrival_rate * T + worker_q / H_eff * T) * safety)
    active = max(0, E - (worker_q + result_q + output_q))        # tasks inside workers
    A      = min(W, max(0, active - (1 if active > 0 else 0)))
    busy   = A / H_eff * T * adjustment
    delta  = N_opt - (W - busy);  >= 0.5 -> +1, <= -0.5 -> -1, else 0

``E`` is the farm's ``enqueued_total`` counter as last mirrored from a *step's* ``info``.
Interpretation (documented because docs/baselines.md only says "0 after reset"): the original scripts
copied ``info["enqueued_total"]`` into the policy after every ``env.step`` and cleared it on
reset, so the first decision of an episode (taken on the reset observation) sees ``E = 0`` even
though the reset ``info`` may already count tasks; every later decision sees the
``enqueued_total`` of the step that produced the observation it acts on. We detect the reset
``info`` by ``info["step"] == 0`` as well, so a caller that forgets ``reset()`` gets the same
result.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..observation import Obs
from .base import Policy


def action_for_delta(action_deltas: Sequence[int], delta: int) -> int:
    """Index of the action applying ``delta`` (-1, 0 or +1) in ``action_deltas``.

    With a wider delta set the smallest step of the same sign is used (e.g. +1 before +2).
    Raises ``ValueError`` if no action has that sign.
    """
    deltas = [int(d) for d in action_deltas]
    if delta in deltas:
        return deltas.index(delta)
    if delta > 0:
        same = [d for d in deltas if d > 0]
        pick = min(same) if same else None
    elif delta < 0:
        same = [d for d in deltas if d < 0]
        pick = max(same) if same else None
    else:
        pick = None
    if pick is None:
        raise ValueError(f"action_deltas {tuple(deltas)} offer no action for delta {delta:+d}")
    return deltas.index(pick)


class StepPolicy(Policy):
    """A policy that decides a worker delta in {-1, 0, +1}; maps it to an action index."""

    def __init__(self, action_deltas: Sequence[int] = (-1, 0, 1)) -> None:
        self.action_deltas = tuple(int(d) for d in action_deltas)
        # Validate once, up front: every policy must be able to go down, stay and go up.
        self._index = {d: action_for_delta(self.action_deltas, d) for d in (-1, 0, 1)}

    def action(self, delta: int) -> int:
        """Action index for a worker delta in {-1, 0, +1}."""
        return self._index[int(np.sign(delta))]


class ReactivePolicy(StepPolicy):
    """docs/baselines.md reactive rule; subclasses choose the service-time estimate ``T``.

    Args:
        horizon: H, seconds over which the queue should be drained (default 8).
        safety_factor: multiplies the needed workers N_opt.
        adjustment_factor: weight of workers busy with in-flight tasks.
        action_deltas: the env's worker delta per action index (default (-1, 0, 1)).
    """

    name = "Reactive"

    def __init__(self, horizon: float = 8.0, safety_factor: float = 1.0,
                 adjustment_factor: float = 0.5,
                 action_deltas: Sequence[int] = (-1, 0, 1)) -> None:
        super().__init__(action_deltas)
        if horizon <= 0:
            raise ValueError(f"horizon must be > 0, got {horizon}")
        self.horizon = float(horizon)
        self.safety_factor = float(safety_factor)
        self.adjustment_factor = float(adjustment_factor)
        self.reset()

    def reset(self) -> None:
        self.last_enqueued = 0  # E: mirrored from each step's info, 0 after reset
        self.last_decision: dict[str, float] = {}

    def service_time(self, obs: np.ndarray) -> float:
        raise NotImplementedError

    def decide(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        """The worker delta (-1, 0 or +1); details of the computation in ``last_decision``."""
        if int(info.get("step", 1)) == 0:
            self.last_enqueued = 0  # reset info: nothing mirrored yet
        elif "enqueued_total" in info:
            self.last_enqueued = int(info["enqueued_total"])
        worker_q, result_q = float(obs[Obs.WORKER_QUEUE]), float(obs[Obs.RESULT_QUEUE])
        output_q = float(obs[Obs.OUTPUT_QUEUE])
        workers, arrival = float(obs[Obs.WORKERS]), float(obs[Obs.ARRIVAL_RATE])
        t = self.service_time(obs)
        h_eff = max(self.horizon, t, 1.0)
        n_opt = max(1.0, (arrival * t + worker_q / h_eff * t) * self.safety_factor)
        active = max(0.0, self.last_enqueued - (worker_q + result_q + output_q))
        in_flight = min(workers, max(0.0, active - (1.0 if active > 0 else 0.0)))
        busy = in_flight / h_eff * t * self.adjustment_factor
        delta = n_opt - (workers - busy)
        step = 1 if delta >= 0.5 else -1 if delta <= -0.5 else 0
        self.last_decision = {"E": float(self.last_enqueued), "T": t, "H_eff": h_eff,
                              "N_opt": n_opt, "active": active, "A": in_flight,
                              "busy": busy, "delta": delta, "step": float(step)}
        return step

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        return self.action(self.decide(obs, info))


class ReactiveAverage(ReactivePolicy):
    """Reactive rule on the mean completion time: T = max(avg_time, 0.1).

    Defaults: horizon 8 s, safety 1.0, adjustment 0.5 (docs/baselines.md).
    """

    name = "ReactiveAverage"

    def __init__(self, horizon: float = 8.0, safety_factor: float = 1.0,
                 adjustment_factor: float = 0.5,
                 action_deltas: Sequence[int] = (-1, 0, 1)) -> None:
        super().__init__(horizon, safety_factor, adjustment_factor, action_deltas)

    def service_time(self, obs: np.ndarray) -> float:
        return max(float(obs[Obs.AVG_TIME]), 0.1)


class ReactiveMaximum(ReactivePolicy):
    """Reactive rule on the worst completion time: T = max(max_time, avg_time, 0.1).

    Defaults: horizon 8 s, safety 1.0, adjustment 1.0 (docs/baselines.md).
    """

    name = "ReactiveMaximum"

    def __init__(self, horizon: float = 8.0, safety_factor: float = 1.0,
                 adjustment_factor: float = 1.0,
                 action_deltas: Sequence[int] = (-1, 0, 1)) -> None:
        super().__init__(horizon, safety_factor, adjustment_factor, action_deltas)

    def service_time(self, obs: np.ndarray) -> float:
        return max(float(obs[Obs.MAX_TIME]), float(obs[Obs.AVG_TIME]), 0.1)


__all__ = ["ReactiveAverage", "ReactiveMaximum", "ReactivePolicy", "StepPolicy",
           "action_for_delta"]
