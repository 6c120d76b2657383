"""``KedaQueue``: the queue-length scaler OpenFaaS users actually deploy (KEDA + the HPA).

KEDA's Redis list scaler exposes the list length as an ``AverageValue`` metric, and the HPA
turns it into ``desired = ceil(worker_queue / target_per_replica)`` replicas, clamped to
[min, max]. Scale-downs are damped by the HPA's stabilisation window: the HPA acts on the
*highest* recommendation of the last ``stabilization_window`` seconds, so a short lull does not
remove workers; scale-ups act on the current recommendation at once. Our env moves one worker
per step, so the policy steps toward that target one action at a time.

Like the HPA controller, which seeds an autoscaler's recommendation history with the current
replica count the first time it sees it, the window starts holding the worker count of the
first observation after reset: with the default window the farm is never scaled below its
initial size during a 30-step episode.

Defaults are the ones a user gets without tuning: ``listLength`` 5 (KEDA's Redis list scaler)
and a 300 s scale-down window (the HPA default ``behavior.scaleDown``). Elapsed time comes
from each step's ``info["step_duration"]`` (the nominal ``step_duration`` if absent).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..observation import Obs
from .hpa import StabilisedScaler


class KedaQueue(StabilisedScaler):
    """Scale toward ``ceil(worker_queue / target_per_replica)`` with scale-down stabilisation.

    Args:
        target_per_replica: queued tasks per worker the scaler aims at (KEDA ``listLength``).
        stabilization_window: seconds of recommendations whose maximum bounds scale-downs
            (0 disables stabilisation).
        min_workers, max_workers: clamp of the desired count (the env's bounds).
        step_duration: nominal seconds per step, used when ``info`` has no ``step_duration``.
        action_deltas: the env's worker delta per action index (default (-1, 0, 1)).
    """

    name = "Keda"

    def __init__(self, target_per_replica: float = 5.0, stabilization_window: float = 300.0,
                 min_workers: int = 1, max_workers: int = 32, step_duration: float = 8.0,
                 action_deltas: Sequence[int] = (-1, 0, 1)) -> None:
        if target_per_replica <= 0:
            raise ValueError(f"target_per_replica must be > 0, got {target_per_replica}")
        self.target_per_replica = float(target_per_replica)
        super().__init__(stabilization_window, min_workers, max_workers, step_duration,
                         action_deltas)

    def desired(self, worker_queue: float) -> int:
        """The HPA recommendation for a queue length: ceil(queue / target), clamped."""
        return self.clamp(math.ceil(max(0.0, float(worker_queue)) / self.target_per_replica
                                    - 1e-9))

    def recommend(self, obs: np.ndarray, info: Mapping[str, Any], workers: int) -> int:
        return self.desired(obs[Obs.WORKER_QUEUE])


__all__ = ["KedaQueue"]
