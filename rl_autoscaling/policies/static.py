"""``Static(N)``: a fixed-size farm, the "no autoscaler" reference point."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..observation import Obs
from .reactive import StepPolicy


class Static(StepPolicy):
    """Hold ``workers`` workers: step toward N one worker at a time, then no-op.

    Args:
        workers: the worker count to hold (N).
        action_deltas: the env's worker delta per action index (default (-1, 0, 1)).
    """

    name = "Static"

    def __init__(self, workers: int, action_deltas: Sequence[int] = (-1, 0, 1)) -> None:
        super().__init__(action_deltas)
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.workers = int(workers)

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        return self.action(int(np.sign(self.workers - round(float(obs[Obs.WORKERS])))))


__all__ = ["Static"]
