"""Greedy inference straight from an RLlib checkpoint directory (only with ``--trust-checkpoint``:
checkpoints are pickles).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from .model import DERIVED_INPUTS, ObservationScaler

RL_MODULE_SUBDIR = ("learner_group", "learner", "rl_module", "default_policy")


class RllibDqnPolicy:
    """Greedy policy straight from an RLlib DQN module (an algorithm checkpoint or a live one).

    ``act`` scales the raw observation with the same ``ObservationScaler`` as training and
    returns ``forward_inference``'s greedy action.
    """

    name = "DQN"

    def __init__(self, module, scaler: ObservationScaler) -> None:
        self.module = module
        self.scaler = scaler

    @classmethod
    def from_checkpoint(cls, path, scaler: ObservationScaler) -> RllibDqnPolicy:
        """Load the module of an algorithm checkpoint dir (or of an RLModule checkpoint).

        ``scaler`` scales by the env's bounds; a module that reads more inputs than it gives
        was trained with derived inputs (``load_input``): they are added in
        :data:`~rl_autoscaling.algorithms.dqn.model.DERIVED_INPUTS` order, the only order
        training uses.
        """
        from pathlib import Path

        from ray.rllib.core.rl_module.rl_module import RLModule

        path = Path(path)
        module_dir = path.joinpath(*RL_MODULE_SUBDIR)
        if not module_dir.is_dir():
            module_dir = path
        module = RLModule.from_checkpoint(str(module_dir.resolve()))
        size = int(np.prod(module.observation_space.shape))
        extra = size - len(scaler.low)
        if size != scaler.size and not scaler.derived and 0 < extra <= len(DERIVED_INPUTS):
            scaler = ObservationScaler(scaler.low, scaler.high, list(DERIVED_INPUTS)[:extra])
        if size != scaler.size:
            raise ValueError(f"{path}: the network reads {size} inputs, the env gives "
                             f"{len(scaler.low)} observation values")
        return cls(module, scaler)

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> int:
        from ray.rllib.core.columns import Columns

        x = torch.as_tensor(self.scaler(obs)).unsqueeze(0)
        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: x})
        return int(out[Columns.ACTIONS][0])

    def __call__(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> int:
        return self.act(obs, info)
