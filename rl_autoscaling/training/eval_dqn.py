"""Greedy roll-outs of a trained DQN: ``python -m rl_autoscaling.test_dqn --model PATH``.

``--model`` is a ``.pt`` model file (plain PyTorch inference, weights only, Ray is not imported)
or, with ``--trust-checkpoint``, an RLlib algorithm checkpoint directory (e.g.
``models/dqn_final_rllib``; its RLModule is loaded and observations are scaled by the
evaluation env's bounds, as in training). RLlib checkpoints are pickles that can run code, so
a directory without ``--trust-checkpoint`` is refused. Reports, plots and
the JSON summary (default ``runs/dqn_eval_results.json``) are described in
:mod:`rl_autoscaling.training.evaluation`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from .cli import check_trusted_checkpoint
from .evaluation import main_for

DEFAULT_OUTPUT = Path("runs") / "dqn_eval_results.json"


def load_policy(args: argparse.Namespace, env):
    """A greedy policy from a ``.pt`` file (plain torch) or an RLlib checkpoint directory."""
    path = Path(args.model)
    if not path.exists():
        raise ValueError(f"model not found: {path}")
    check_trusted_checkpoint(path, args.trust_checkpoint)
    if path.is_dir():
        from ..algorithms.dqn.model import ObservationScaler
        from ..algorithms.dqn.rllib_policy import RllibDqnPolicy

        return RllibDqnPolicy.from_checkpoint(path, ObservationScaler.from_space(
            env.observation_space))
    from ..algorithms.dqn.policy import DqnPolicy

    policy = DqnPolicy.load(path)
    low = np.asarray(policy.metadata.get("obs_low", []), dtype=np.float32)
    if low.shape != env.observation_space.shape:
        raise ValueError(f"{path} expects {low.shape[0] if low.ndim else 0} observations, "
                         f"the env gives {env.observation_space.shape[0]}")
    return policy


def main(argv: Sequence[str] | None = None) -> int:
    return main_for("dqn", "DQN", argv,
                    description="Greedy evaluation of a DQN model (.pt file or RLlib checkpoint).",
                    model_help="DQN model: a .pt file, or an RLlib checkpoint directory with "
                               "--trust-checkpoint",
                    default_output=DEFAULT_OUTPUT, load=load_policy, add_args=_add_args)


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow --model to be an RLlib checkpoint directory (pickles: "
                             "loading one can run code from it)")
