"""Reading and writing the Q-network weights of an RLlib DQN module (online and target)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch


def q_linear_layers(module: torch.nn.Module) -> list[torch.nn.Linear]:
    """The Linear layers of an RLlib DQN module's Q-network (encoder, then Q head), in order."""
    layers: list[torch.nn.Linear] = []
    for part in (module.encoder, module.af):
        layers += [m for m in part.modules() if isinstance(m, torch.nn.Linear)]
    return layers


def q_network_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The online Q-network as an ``nn.Sequential`` state dict (``build_q_network`` layout)."""
    out: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(q_linear_layers(module)):
        out[f"{2 * i}.weight"] = layer.weight.detach().cpu().clone()
        out[f"{2 * i}.bias"] = layer.bias.detach().cpu().clone()
    return out


def load_q_network_state(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor],
                         include_target: bool = True) -> None:
    """Copy a ``build_q_network`` state dict into an RLlib DQN module (and its target net)."""
    parts = [(module.encoder, module.af)]
    if include_target and hasattr(module, "_target_encoder"):
        parts.append((module._target_encoder, module._target_af))
    for encoder, head in parts:
        layers = [m for p in (encoder, head) for m in p.modules()
                  if isinstance(m, torch.nn.Linear)]
        if 2 * len(layers) != len(state_dict):
            raise ValueError(f"model has {len(layers)} linear layers, the weights "
                             f"{len(state_dict) // 2}")
        with torch.no_grad():
            for i, layer in enumerate(layers):
                layer.weight.copy_(state_dict[f"{2 * i}.weight"])
                layer.bias.copy_(state_dict[f"{2 * i}.bias"])


def learner_module(algo):
    """The (local) learner's RLModule: online and target networks."""
    return algo.learner_group._learner.module["default_policy"]


def export_pt(algorithm, path: str | Path, *, hyperparams: Mapping[str, Any],
              env_config: Mapping[str, Any], obs_low: Sequence[float],
              obs_high: Sequence[float], action_size: int, epsilon: float, episode: int,
              rllib_checkpoint: str = "") -> Path:
    """Write the online Q-network of an RLlib DQN ``algorithm`` as a weights-only ``.pt``
    model file (:func:`~rl_autoscaling.algorithms.dqn.model.save_dqn_model`); ``obs_low`` /
    ``obs_high`` are the raw env's bounds, the derived inputs follow ``hyperparams``."""
    from .model import derived_inputs_of, save_dqn_model

    return save_dqn_model(
        path, state_dict=q_network_state_dict(learner_module(algorithm)),
        obs_low=list(obs_low), obs_high=list(obs_high),
        hidden_layers=list(hyperparams["hidden_layers"]), action_size=int(action_size),
        hyperparams=dict(hyperparams), env_config=dict(env_config), epsilon=float(epsilon),
        episode=int(episode), rllib_checkpoint=rllib_checkpoint,
        derived_inputs=derived_inputs_of(hyperparams))
