"""Greedy roll-outs of a trained SARSA model: ``python -m rl_autoscaling.test_sarsa --model PKL``.

Q-table lookups, no exploration, no Ray. Reports, plots and the JSON summary (default
``runs/eval_results.json``) are described in :mod:`rl_autoscaling.training.evaluation`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from .evaluation import main_for

DEFAULT_OUTPUT = Path("runs") / "eval_results.json"


def load_policy(args: argparse.Namespace, env):
    """The greedy SARSA policy of ``--model``, checked against the env's spaces."""
    from ..algorithms.sarsa.policy import SarsaPolicy

    policy = SarsaPolicy.load(args.model)
    if policy.action_size != env.action_space.n:
        raise ValueError(f"{args.model} has {policy.action_size} actions, the env "
                         f"{env.action_space.n}")
    n_dims = policy.learner.discretiser.observed
    if n_dims != env.observation_space.shape[0]:
        raise ValueError(f"{args.model} discretises {n_dims} observations, the env gives "
                         f"{env.observation_space.shape[0]}")
    return policy


def main(argv: Sequence[str] | None = None) -> int:
    return main_for("sarsa", "SARSA", argv, description="Greedy evaluation of a trained SARSA model.",
                    model_help="SARSA model file (sarsa_*.pkl)", default_output=DEFAULT_OUTPUT,
                    load=load_policy)
