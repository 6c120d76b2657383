"""Shared command-line helpers: the env flags every trainer/tester takes, and one-line errors.

``add_env_args(parser)`` adds one flag per field of :class:`rl_autoscaling.env.EnvSettings`
(``--max-steps --step-duration --observation-window --initial-workers --task-seed
--phase-shuffle --phase-shuffle-seed --config --backend``, and ``--reward-profile`` for the
trainers) with the chosen recipe's defaults; ``env_config_from_args(args)`` turns them into
the env's ``env_config`` (also Ray's). The trainers' own flags come from their settings models
the same way (:mod:`rl_autoscaling.common.settings`).

The flags' bounds are the settings models' (``setting(..., ge=...)``): a value outside them is
refused when the model is built from the flags, as one ``error:`` line (exit 2), before
anything runs.

``run_guarded(fn)`` runs ``fn()`` and turns a ``ConfigError`` / ``ValueError`` /
``FileNotFoundError`` into ``error: <first line>`` on stderr and exit code 2 (never a
traceback); ``fn``'s own return value is the exit code otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from ..common.errors import UserError, run_guarded
from ..common.settings import (
    DEFAULT_RECIPE,
    add_flags,
    add_recipe_flag,
    parse_recipe,
    values_from_flags,
)


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


def add_env_args(parser: argparse.ArgumentParser, *, task_seed: bool = True,
                 reward_profile: bool = False, recipe: str = DEFAULT_RECIPE
                 ) -> argparse._ArgumentGroup:
    """Add the env flags of :class:`rl_autoscaling.env.EnvSettings` (``recipe``'s defaults) to
    ``parser`` (``task_seed=False`` omits ``--task-seed``, e.g. for testers that seed every
    episode themselves; ``reward_profile`` adds ``--reward-profile``)."""
    from ..env import EnvSettings
    from ..farm.live import add_live_arguments

    g = parser.add_argument_group("environment")
    skip = [name for name, keep in (("task_seed", task_seed),
                                    ("reward_profile", reward_profile)) if not keep]
    add_flags(g, EnvSettings, recipe, skip=skip)  # bounds: EnvSettings (checked when built)
    add_live_arguments(g)  # --redis-url, --scaler, --time-scale (used with --backend live)
    return g


def add_training_args(parser: argparse.ArgumentParser, algo: str, run_settings: type,
                      recipe: str = DEFAULT_RECIPE) -> None:
    """``--recipe``, ``--episodes``, the env flags, ``--reward-profile``, the algorithm's
    ``--qos-headroom`` and ``--miss-penalty`` and ``--output-dir`` of a trainer (defaults:
    ``recipe``'s)."""
    add_recipe_flag(parser, recipe)
    add_flags(parser, run_settings, recipe, only=("episodes",))
    env = add_env_args(parser, reward_profile=True, recipe=recipe)
    add_flags(env, run_settings, recipe, only=("qos_headroom", "miss_penalty"))
    parser.add_argument("--output-dir", default="runs",
                        help=f"base directory of {algo}_run_<ts>/ (default %(default)s)")


def add_checkpoint_args(parser: argparse.ArgumentParser, run_settings: type, seed_help: str,
                        recipe: str = DEFAULT_RECIPE, title: str = "checkpoints, evaluation"
                        ) -> argparse._ArgumentGroup:
    """``--checkpoint-every``, ``--eval-episodes`` and ``--seed`` of a trainer."""
    g = parser.add_argument_group(title)
    add_flags(g, run_settings, recipe, only=("checkpoint_every", "eval_episodes"))
    g.add_argument("--seed", type=int, default=42, help=f"{seed_help} (default %(default)s)")
    return g


def run_settings_of(run_settings: type, args: argparse.Namespace) -> Any:
    """The trainer settings (``SarsaRun`` / ``DqnRun``) of parsed flags; their bounds are
    checked as they are built (``ValueError``, one line)."""
    return run_settings(**values_from_flags(run_settings, args))


def env_config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The env's ``env_config`` from :func:`add_env_args` flags (and a trainer's
    ``--qos-headroom`` and ``--miss-penalty``, :func:`add_training_args`)."""
    from ..env import EnvSettings

    overrides = {} if hasattr(args, "reward_profile") else {"reward_profile": None}
    if not hasattr(args, "task_seed"):
        overrides["task_seed"] = None
    cfg = EnvSettings(**values_from_flags(EnvSettings, args, **overrides)).env_config(
        qos_headroom=getattr(args, "qos_headroom", 0.0),
        miss_penalty=getattr(args, "miss_penalty", None))
    if cfg.get("reward.profile") is None:
        cfg.pop("reward.profile")
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


def trainer_main(build_parser: Callable[[str], argparse.ArgumentParser],
                 train: Callable[[argparse.Namespace], int], argv=None) -> int:
    """A trainer's ``main``: read ``--recipe``, build the parser with that recipe's defaults,
    parse, train; one-line errors (exit 2); Ctrl+C, SIGTERM or SIGHUP before the training loop
    (which handles its own) exits 130."""
    parser = build_parser(DEFAULT_RECIPE)
    recipe = parse_recipe(argv, parser.prog)  # exits 2 on an unknown recipe
    args = build_parser(recipe).parse_args(argv)
    return run_guarded(lambda: train(args), interrupted="interrupted before training started")


__all__ = [
    "add_checkpoint_args", "add_env_args", "add_training_args",
    "check_trusted_checkpoint", "env_config_from_args", "nonnegative_int", "positive_int",
    "run_settings_of", "trainer_main",
]
