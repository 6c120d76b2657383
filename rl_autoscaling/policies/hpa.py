"""``Hpa``: Kubernetes' Horizontal Pod Autoscaler with a target on the farm's own metric.

The HPA's target-tracking rule (Kubernetes docs, "Algorithm details"):

    desired = ceil(current x metric / target)

with ``current`` the running workers, skipped (desired = current) while the ratio
``metric / target`` is within ``tolerance`` (0.1) of 1. Scale-ups act on the current
recommendation; scale-downs are stabilised: the HPA acts on the *highest* recommendation of the
last ``stabilization_window`` seconds (300 s by default), its history seeded with the replica
count it first sees. The HPA's default rate limits (up: max(4 pods, 100 %) per 15 s; down:
100 % per 15 s) never bind under the env's one worker per 8 s step, which moves one worker
toward the target per step.

Metrics (both from one observation and the step's ``info``):

- ``utilisation``: busy workers / workers, the CPU-utilisation target a user sets by default
  (``kubectl autoscale --cpu-percent 80``); busy = tasks inside workers =
  ``enqueued_total - worker_queue - result_queue - output_queue``.
- ``load``: the offered load per worker, ``arrival_rate x service_time / workers`` (the rate
  each worker receives over the rate it serves; ``service_time`` = 1.47 s, docs/farm.md).

:class:`StabilisedScaler` holds the recommendation window; :class:`KedaQueue` is the same HPA
fed with KEDA's queue-length metric.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Mapping, Sequence

import numpy as np

from ..observation import Obs
from .reactive import StepPolicy

#: Mean processing time of a task, seconds (docs/farm.md: one worker serves ~0.68 tasks/s).
SERVICE_TIME = 1.47
METRICS = ("utilisation", "load")


class StabilisedScaler(StepPolicy):
    """An HPA-style scaler: each step a recommendation (:meth:`recommend`), scale-ups at once,
    scale-downs to the highest recommendation of the last ``stabilization_window`` seconds.

    Args:
        stabilization_window: seconds of recommendations whose maximum bounds scale-downs
            (0 disables stabilisation).
        min_workers, max_workers: clamp of the recommendation (the env's bounds).
        step_duration: nominal seconds per step, used when ``info`` has no ``step_duration``.
        action_deltas: the env's worker delta per action index (default (-1, 0, 1)).
    """

    def __init__(self, stabilization_window: float = 300.0, min_workers: int = 1,
                 max_workers: int = 32, step_duration: float = 8.0,
                 action_deltas: Sequence[int] = (-1, 0, 1)) -> None:
        super().__init__(action_deltas)
        if stabilization_window < 0:
            raise ValueError(f"stabilization_window must be >= 0, got {stabilization_window}")
        if max_workers < min_workers:
            raise ValueError(f"max_workers must be >= min_workers, got {max_workers} < {min_workers}")
        self.stabilization_window = float(stabilization_window)
        self.min_workers, self.max_workers = int(min_workers), int(max_workers)
        self.step_duration = float(step_duration)
        self.reset()

    def reset(self) -> None:
        self.clock = 0.0  # seconds since reset
        self.history: deque[tuple[float, int]] = deque()  # (time, raw recommendation)
        self.last_decision: dict[str, float] = {}

    def clamp(self, workers: float) -> int:
        return min(self.max_workers, max(self.min_workers, int(workers)))

    def recommend(self, obs: np.ndarray, info: Mapping[str, Any], workers: int) -> int:
        """The raw recommendation (workers) for this observation, clamped."""
        raise NotImplementedError

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        if int(info.get("step", 1)) == 0:
            self.reset()  # the reset observation: a fresh episode
        else:
            self.clock += float(info.get("step_duration", self.step_duration) or self.step_duration)
        now = self.clock
        workers = int(round(float(obs[Obs.WORKERS])))
        if not self.history and self.stabilization_window > 0:
            self.history.append((now, workers))  # the HPA's seed: the current replica count
        want = self.recommend(obs, info, workers)
        self.history.append((now, want))
        while self.history and self.history[0][0] < now - self.stabilization_window - 1e-9:
            self.history.popleft()
        # Scale up at once; scale down only to the highest recommendation in the window.
        target = want if want >= workers else min(workers, max(w for _, w in self.history))
        step = int(np.sign(target - workers))
        self.last_decision = {"time": now, "desired": float(want), "target": float(target),
                              "step": float(step)}
        return self.action(step)


class Hpa(StabilisedScaler):
    """The HPA's target tracking, ``desired = ceil(workers x metric / target)``.

    Args:
        target: the metric's target value (utilisation: 0.8, kubectl's default).
        metric: ``"utilisation"`` (busy / workers) or ``"load"`` (arrival rate x
            ``service_time`` / workers).
        tolerance: no scaling while ``|metric / target - 1| <= tolerance`` (the HPA's 0.1).
        service_time: seconds per task for the ``load`` metric.
        stabilization_window, min_workers, max_workers, step_duration, action_deltas: as
            :class:`StabilisedScaler` (window 300 s: the HPA's default ``behavior.scaleDown``).
    """

    name = "Hpa"

    def __init__(self, target: float = 0.8, metric: str = "utilisation",
                 tolerance: float = 0.1, service_time: float = SERVICE_TIME,
                 stabilization_window: float = 300.0, min_workers: int = 1,
                 max_workers: int = 32, step_duration: float = 8.0,
                 action_deltas: Sequence[int] = (-1, 0, 1)) -> None:
        if target <= 0:
            raise ValueError(f"target must be > 0, got {target}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if tolerance < 0 or service_time <= 0:
            raise ValueError("tolerance must be >= 0 and service_time > 0")
        self.target, self.metric = float(target), metric
        self.tolerance, self.service_time = float(tolerance), float(service_time)
        super().__init__(stabilization_window, min_workers, max_workers, step_duration,
                         action_deltas)

    def metric_value(self, obs: np.ndarray, info: Mapping[str, Any], workers: int) -> float:
        """The metric's current value (averaged over the workers, as the HPA does)."""
        per = max(workers, 1)
        if self.metric == "load":
            return float(obs[Obs.ARRIVAL_RATE]) * self.service_time / per
        queued = (float(obs[Obs.WORKER_QUEUE]) + float(obs[Obs.RESULT_QUEUE])
                  + float(obs[Obs.OUTPUT_QUEUE]))
        busy = min(float(per), max(0.0, float(info.get("enqueued_total", 0)) - queued))
        return busy / per

    def recommend(self, obs: np.ndarray, info: Mapping[str, Any], workers: int) -> int:
        ratio = self.metric_value(obs, info, workers) / self.target
        if abs(ratio - 1.0) <= self.tolerance:
            return self.clamp(workers)
        return self.clamp(math.ceil(max(workers, 1) * ratio - 1e-9))


__all__ = ["Hpa", "METRICS", "SERVICE_TIME", "StabilisedScaler"]
