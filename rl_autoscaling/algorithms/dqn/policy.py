"""The greedy DQN policy of a ``.pt`` model file: plain PyTorch inference, no Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ...policies.base import Policy
from .model import DqnModelError, ObservationScaler, build_q_network, load_dqn_model


class DqnPolicy(Policy):
    """Greedy policy of a trained DQN: ``argmax_a Q(scale(obs), a)``.

    Args:
        q_network: the MLP mapping scaled observations to Q-values.
        scaler: the observation scaler used in training.
        metadata: the rest of the model file (hyperparams, episode, ...), for reports.
    """

    name = "DQN"

    def __init__(self, q_network: nn.Module, scaler: ObservationScaler,
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.q_network = q_network.eval()
        self.scaler = scaler
        self.metadata = dict(metadata or {})

    @classmethod
    def load(cls, path: str | Path) -> DqnPolicy:
        """Build the policy from a ``.pt`` model file (see the module docstring)."""
        data = load_dqn_model(path)
        net = build_q_network(int(data["obs_size"]), data["hidden_layers"],
                              int(data["action_size"]))
        try:
            net.load_state_dict(data["state_dict"])
        except (RuntimeError, TypeError) as exc:
            raise DqnModelError(f"{path}: Q-network weights do not match hidden layers "
                                f"{data['hidden_layers']}: {exc}") from None
        meta = {k: v for k, v in data.items() if k != "state_dict"}
        return cls(net, ObservationScaler.from_model(data), meta)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values of one observation (or a batch of them)."""
        x = torch.as_tensor(self.scaler(obs))
        with torch.no_grad():
            return self.q_network(x).numpy()

    def act(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> int:
        return int(np.argmax(self.q_values(obs)))
