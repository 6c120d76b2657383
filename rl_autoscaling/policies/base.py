"""The one policy interface shared by baselines and trained agents (SARSA .pkl, DQN .pt)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping

import numpy as np


class Policy(ABC):
    """Maps an observation (and the env's info dict) to an action index.

    ``reset()`` is called after every ``env.reset()``; ``act`` after every observation.
    Policies never step the env themselves, so the same object runs on any backend.
    """

    #: Display name used in comparison tables and plots.
    name: str = "Policy"

    def reset(self) -> None:
        """Forget per-episode state."""

    @abstractmethod
    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        """Return the action index for ``obs``."""

    def __call__(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        return self.act(obs, info)
