"""Shared command-line helpers: the env flags every trainer/tester takes, and one-line errors.

``add_env_args(parser)`` adds ``--max-steps --step-duration --observation-window
--initial-workers --task-seed --phase-shuffle --phase-shuffle-seed --config --backend`` with
the CLI defaults of docs/env.md/§5 (30 steps of 8 s, 8 s window, 12 workers, task seed 42);
``env_config_from_args(args)`` turns them into the env's ``env_config`` (also Ray's).

``run_guarded(fn)`` runs ``fn()`` and turns a ``ConfigError`` / ``ValueError`` /
``FileNotFoundError`` into ``error: <first line>`` on stderr and exit code 2 (never a
traceback); ``fn``'s own return value is the exit code otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Mapping

from ..common.errors import UserError, run_guarded

#: CLI defaults of the env flags (docs/algorithms.md#sarsalambda; the env's own defaults are docs/env.md's).
ENV_DEFAULTS: dict[str, Any] = {
    "max_steps": 30,
    "step_duration": 8.0,
    "observation_window": 8.0,
    "initial_workers": 12,
    "task_seed": 42,
    "phase_shuffle": False,
    "phase_shuffle_seed": None,
    "config": None,
    "backend": "simulated",
}
BACKENDS = ("simulated", "live")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_env_args(parser: argparse.ArgumentParser, *, task_seed: bool = True,
                 defaults: Mapping[str, Any] | None = None) -> argparse._ArgumentGroup:
    """Add the env flags to ``parser`` (``task_seed=False`` omits ``--task-seed``, e.g. for
    testers that seed every episode themselves)."""
    d = {**ENV_DEFAULTS, **(defaults or {})}
    g = parser.add_argument_group("environment")
    g.add_argument("--max-steps", type=positive_int, default=d["max_steps"],
                   help="steps per episode before truncation (default %(default)s)")
    g.add_argument("--step-duration", type=positive_float, default=d["step_duration"],
                   help="seconds per step, scaling included (default %(default)s)")
    g.add_argument("--observation-window", type=positive_float,
                   default=d["observation_window"],
                   help="seconds of collected tasks behind the time/QoS observations "
                        "(default %(default)s)")
    g.add_argument("--initial-workers", type=int, default=d["initial_workers"],
                   help="workers at reset (default %(default)s)")
    if task_seed:
        g.add_argument("--task-seed", type=int, default=d["task_seed"],
                       help="workload seed: training episode e uses task_seed + e "
                            "(default %(default)s)")
    g.add_argument("--phase-shuffle", action="store_true", default=d["phase_shuffle"],
                   help="shuffle the workload's phase order (training episodes only)")
    g.add_argument("--phase-shuffle-seed", type=int, default=d["phase_shuffle_seed"],
                   help="fix the shuffled phase order (default: a new order each episode)")
    g.add_argument("--config", default=d["config"], metavar="YAML",
                   help="farm configuration file (default: the packaged one)")
    g.add_argument("--backend", choices=BACKENDS, default=d["backend"],
                   help="farm backend (default %(default)s)")
    from ..farm.live import add_live_arguments

    add_live_arguments(g)  # --redis-url, --scaler, --time-scale (used with --backend live)
    return g


REWARD_PROFILES = ("slo_cost", "seed")


def add_training_args(parser: argparse.ArgumentParser, algo: str,
                      episodes: int, reward_profile: str = "slo_cost") -> None:
    """``--episodes``, the env flags, ``--reward-profile`` and ``--output-dir`` of a trainer."""
    parser.add_argument("--episodes", type=positive_int, default=episodes,
                        help="training episodes (default %(default)s)")
    g = add_env_args(parser)
    g.add_argument("--reward-profile", choices=REWARD_PROFILES, default=reward_profile,
                   help="training reward (sets reward.profile, over --config's): slo_cost = "
                        "meet the final-QoS SLO with the fewest worker-seconds; seed = the "
                        "original shaped reward (default %(default)s)")
    parser.add_argument("--output-dir", default="runs",
                        help=f"base directory of {algo}_run_<ts>/ (default %(default)s)")


def add_checkpoint_args(parser: argparse.ArgumentParser, eval_episodes: int,
                        seed_help: str, title: str = "checkpoints, evaluation",
                        checkpoint_every: int = 10) -> argparse._ArgumentGroup:
    """``--checkpoint-every``, ``--eval-episodes`` and ``--seed`` of a trainer."""
    g = parser.add_argument_group(title)
    g.add_argument("--checkpoint-every", type=nonnegative_int, default=checkpoint_every,
                   help="save and evaluate every N episodes; 0 = only at the end "
                        "(default %(default)s)")
    g.add_argument("--eval-episodes", type=nonnegative_int, default=eval_episodes,
                   help="greedy episodes per checkpoint evaluation; 0 = none "
                        "(default %(default)s)")
    g.add_argument("--seed", type=int, default=42, help=f"{seed_help} (default %(default)s)")
    return g


def env_config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The env's ``env_config`` from :func:`add_env_args` flags (``config`` only if given)."""
    cfg: dict[str, Any] = {
        "max_steps": int(args.max_steps),
        "step_duration": float(args.step_duration),
        "observation_window": float(args.observation_window),
        "initial_workers": int(args.initial_workers),
        "phase_shuffle": bool(args.phase_shuffle),
        "phase_shuffle_seed": args.phase_shuffle_seed,
        "backend": args.backend,
    }
    if getattr(args, "task_seed", None) is not None:
        cfg["task_seed"] = int(args.task_seed)
    if args.config:
        cfg["config"] = str(args.config)
    if getattr(args, "reward_profile", None):
        cfg["reward.profile"] = args.reward_profile
    if args.backend == "live":
        from ..farm.live import live_backend_options

        cfg["backend_options"] = live_backend_options(args)
    return cfg


def check_trusted_checkpoint(path: str | Path, trusted: bool) -> None:
    """Refuse an RLlib checkpoint directory unless ``trusted`` (``--trust-checkpoint``): RLlib
    checkpoints are pickles, and loading one can run code from it (docs/artefacts.md)."""
    if Path(path).is_dir() and not trusted:
        raise UserError(f"{path} is an RLlib checkpoint directory: loading it unpickles (and can "
                        "run) code from it; pass --trust-checkpoint if you trust its source, "
                        "or give a .pt model file")


def trainer_main(parser: argparse.ArgumentParser,
                 train: Callable[[argparse.Namespace], int], argv=None) -> int:
    """A trainer's ``main``: parse, train; one-line errors (exit 2); Ctrl+C, SIGTERM or
    SIGHUP before the training loop (which handles its own) exits 130."""
    args = parser.parse_args(argv)
    return run_guarded(lambda: train(args), interrupted="interrupted before training started")


__all__ = [
    "BACKENDS", "ENV_DEFAULTS", "add_checkpoint_args", "add_env_args", "add_training_args",
    "check_trusted_checkpoint", "env_config_from_args", "nonnegative_int", "positive_float",
    "positive_int", "trainer_main",
]
