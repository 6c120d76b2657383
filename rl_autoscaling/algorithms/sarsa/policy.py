"""Greedy SARSA inference from a ``sarsa_*.pkl`` model (no Ray needed).

The model file holds plain values only (docs/algorithms.md#sarsalambda: ``action_size``, ``hyperparams``,
``discretisation`` with its edges, ``epsilon``, ``q_table``); it is read through the
restricted unpickler of :mod:`rl_autoscaling.common.modelio`, so a tampered file is refused with a
``ModelFileError`` and never runs code. Files of the original toolkit load too.

The policy discretises each observation with the model's own edges and takes
argmax_a Q(state, a), ties (including states never visited, all zeros) going to the highest
action index, as in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...policies.base import Policy
from .tabular import SarsaLambdaLearner


class SarsaPolicy(Policy):
    """Greedy Q-table lookups of a trained SARSA(lambda) learner.

    Args:
        learner: the tabular learner (its Q-table and discretiser are used read-only).
        metadata: extra model-file fields (``episode``, ``env_config``, ...).
    """

    name = "SARSA"

    def __init__(self, learner: SarsaLambdaLearner,
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.learner = learner
        self.metadata = dict(metadata or {})
        self.unseen_states = 0  # lookups of states absent from the Q-table
        self._state = None  # the state of the last observation acted on

    @classmethod
    def load(cls, path: str | Path) -> SarsaPolicy:
        """Load a SARSA model file (ModelFileError, a ValueError, if it is not one)."""
        from ...common.modelio import load_pickle

        model = load_pickle(path, "SARSA model file")
        learner = SarsaLambdaLearner.from_model(model, source=str(path))
        extra = {k: v for k, v in model.items() if k not in (
            "q_table", "discretisation", "hyperparams", "action_size", "epsilon")}
        return cls(learner, extra)

    @property
    def action_size(self) -> int:
        return self.learner.action_size

    def reset(self) -> None:
        """A new episode: the discretiser forgets the last one's arrival rates (trend)."""
        self.learner.discretiser.reset()
        self._state = None

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        state = self._state = self.learner.state(obs)
        if state not in self.learner.q:
            self.unseen_states += 1
        return self.learner.greedy(state)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q(state(obs), .) (zeros for an unseen state); with trend edges, the state of the
        last observation ``act`` was given (the trend depends on the episode so far)."""
        disc = self.learner.discretiser
        if len(disc.edges) > disc.observed + 1 and getattr(self, "_state", None) is not None:
            return self.learner.q_values(self._state).copy()
        return self.learner.q_values(self.learner.state(obs)).copy()


__all__ = ["SarsaPolicy"]
