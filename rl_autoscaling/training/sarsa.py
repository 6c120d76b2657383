"""Train tabular SARSA(lambda): ``python -m rl_autoscaling.train_sarsa [flags]``.

The flags are the seed toolkit's (docs/algorithms.md#sarsalambda; the seed README's command runs
as written); their defaults are the ``twin`` recipe's, or with ``--recipe seed`` the original
toolkit's (one owner each: :class:`SarsaHyperparams`, :class:`SarsaRun`,
:class:`rl_autoscaling.env.EnvSettings`). ``--config`` picks a farm YAML and ``--backend`` the
simulated twin (default) or the live farm.

One code path with Ray Tune: the loop calls ``SarsaLambda.train()`` (the RLlib ``Algorithm``
of :mod:`rl_autoscaling.algorithms.sarsa.algorithm`, one training episode per call) and
``SarsaLambda.evaluate()`` for checkpoint evaluations. The algorithm runs in this process and
needs no Ray cluster (``ray.init`` is never called); the cost over the bare tabular core is
the ~4 s import of RLlib. The shared harness (:mod:`rl_autoscaling.training.harness`) writes
``<output-dir>/sarsa_run_<UTC ts>/``: ``logs/training.log`` (one line per episode with
progress), ``models/sarsa_epNNNN.pkl`` every ``--checkpoint-every`` episodes followed by
``--eval-episodes`` greedy episodes, ``models/sarsa_final.pkl``, ``training_metrics.json``,
``evaluation_metrics.json`` and ``plots/training_curves.png``. Ctrl+C saves
``models/sarsa_interrupt.pkl``, logs the completed episode count and exits with 130.

Training episode e (0-based) runs the workload of seed ``--task-seed + e``; epsilon-greedy
draws use ``--seed``; checkpoint evaluation episode i at episode n uses ``--seed + n * 1000 +
i`` without phase shuffle.

Resuming (``--resume-model PATH``): the Q-table and discretisation come from the model; so do
its hyperparameters and epsilon, unless ``--resume-reset-hyperparams`` (use this command's
``--alpha --gamma --epsilon-* --trace-*``) or ``--resume-reset-epsilon`` (restart from
``--epsilon``). Episode numbers and workload seeds restart at 1 / ``--task-seed``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from ..algorithms.sarsa.tabular import (
    SarsaHyperparams,
    SarsaLambdaLearner,
    SarsaRun,
    named_state_edges,
)
from ..common.settings import DEFAULT_RECIPE, add_flags, recipe_instance, values_from_flags
from .cli import (
    add_checkpoint_args,
    add_training_args,
    env_config_from_args,
    nonnegative_int,
    run_settings_of,
    trainer_main,
)
from .harness import (
    RunDirectory,
    close_logger,
    logged_failure,
    run_training,
    setup_run_logger,
    slo_of,
    stop_algorithm,
)
from .report import best_chooser

ALGO = "sarsa"


def build_parser(recipe: str = DEFAULT_RECIPE) -> argparse.ArgumentParser:
    """The flags of :class:`SarsaHyperparams`, :class:`SarsaRun` and the env settings, with
    ``recipe``'s defaults (``--recipe seed``: the original toolkit's)."""
    p = argparse.ArgumentParser(
        prog="python -m rl_autoscaling.train_sarsa",
        description="Train a tabular SARSA(lambda) autoscaler (RLlib SarsaLambda algorithm).")
    add_training_args(p, "sarsa", SarsaRun, recipe)
    g = p.add_argument_group("SARSA(lambda)")
    add_flags(g, SarsaRun, recipe, skip=("episodes", "checkpoint_every", "eval_episodes",
                                     "qos_headroom", "miss_penalty"))
    add_flags(g, SarsaHyperparams, recipe, types={"tie_action": int})
    hp = recipe_instance(SarsaHyperparams, recipe)
    g.add_argument("--explore-start-range", type=int, nargs=2, metavar=("MIN", "MAX"),
                   default=[int(hp.explore_start_min), int(hp.explore_start_max)],
                   help="worker counts of exploring starts (default %(default)s)")
    g = add_checkpoint_args(p, SarsaRun, "exploration and evaluation seed", recipe,
                            title="checkpoints, evaluation, logging")
    g.add_argument("--log-interval", type=nonnegative_int, default=10,
                   help="log a DEBUG Q-table/trace summary every N episodes; 0 = never "
                        "(default %(default)s)")
    g = p.add_argument_group("resuming")
    g.add_argument("--resume-model", default=None, metavar="PKL",
                   help="continue training from a saved sarsa_*.pkl model")
    g.add_argument("--resume-reset-hyperparams", action="store_true",
                   help="with --resume-model: use this command's hyperparameters")
    g.add_argument("--resume-reset-epsilon", action="store_true",
                   help="with --resume-model: restart exploration from --epsilon")
    return p


def _quiet_ray_logs() -> None:
    for name in ("ray.rllib", "ray.tune", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _resolve_start(args: argparse.Namespace, log: logging.Logger | None = None
                   ) -> tuple[SarsaHyperparams, list[list[float]] | None, Sequence[int],
                              SarsaLambdaLearner | None]:
    """Hyperparameters, explicit edges (None: from bins), bins and the resumed learner."""
    cli_hp = SarsaHyperparams(**values_from_flags(
        SarsaHyperparams, args, explore_start_min=args.explore_start_range[0],
        explore_start_max=args.explore_start_range[1])).validate()
    run = run_settings_of(SarsaRun, args)
    if not args.resume_model:
        if args.resume_reset_hyperparams or args.resume_reset_epsilon:
            raise ValueError("--resume-reset-hyperparams/--resume-reset-epsilon need "
                             "--resume-model")
        if run.bins is not None:
            return (cli_hp, *run.state_edges(), None)
        name, why = run.resolved_state(args.config, args.step_duration)
        print(f"state: {name} ({'auto: ' if run.state == 'auto' else ''}{why})", flush=True)
        return (cli_hp, *named_state_edges(name), None)
    resumed = SarsaLambdaLearner.load(args.resume_model)
    hp = cli_hp if args.resume_reset_hyperparams else resumed.hp
    hp = replace(hp, epsilon=args.epsilon if args.resume_reset_epsilon else resumed.epsilon)
    if args.bins is not None and tuple(args.bins) != resumed.discretiser.bins:
        raise ValueError(f"--bins {' '.join(map(str, args.bins))} differs from the resumed "
                         f"model's bins {' '.join(map(str, resumed.discretiser.bins))}")
    return hp.validate(), [list(e) for e in resumed.discretiser.edges], \
        resumed.discretiser.bins, resumed


def train(args: argparse.Namespace) -> int:
    """Run the training described by parsed ``args``; returns the exit code."""
    from ..env import OpenFaaSAutoscalingEnv

    env_config = env_config_from_args(args)
    hp, edges, bins, resumed = _resolve_start(args)
    OpenFaaSAutoscalingEnv.from_env_config(env_config).close()  # fail fast on bad env flags

    run = RunDirectory.create(args.output_dir, ALGO)
    log = setup_run_logger(run)
    try:
        with logged_failure(log):
            return _train_logged(args, env_config, hp, edges, bins, resumed, run, log)
    finally:
        close_logger(log)


def _train_logged(args: argparse.Namespace, env_config: dict[str, Any], hp: SarsaHyperparams,
                  edges, bins, resumed: SarsaLambdaLearner | None, run: RunDirectory,
                  log: logging.Logger) -> int:
    _quiet_ray_logs()
    from ..algorithms.sarsa.algorithm import TRAINING_EPISODES, SarsaLambdaConfig

    # Episodes per algo.train() call: RLlib's per-iteration overhead (~50 ms) dwarfs a twin
    # episode (~4 ms), so iterate in batches that divide the run and its checkpoints.
    batch = run_settings_of(SarsaRun, args).episodes_per_iteration()
    config = (SarsaLambdaConfig()
              .environment(env_config=env_config)
              .training(**asdict(hp), bins=bins, edges=edges, episodes_per_iteration=batch)
              .evaluation(evaluation_interval=None,
                          evaluation_duration=max(1, args.eval_episodes))
              .debugging(seed=args.seed))
    algo = config.build_algo()
    learner = algo.learner
    if resumed is not None:
        learner.q = {k: list(v) for k, v in resumed.q.items()}
        log.info("Resumed %s: %d states, epsilon %.4f%s%s", args.resume_model, len(learner.q),
                 learner.epsilon,
                 " (hyperparameters reset)" if args.resume_reset_hyperparams else "",
                 " (epsilon reset)" if args.resume_reset_epsilon else "")
    log.info("Command: %s", " ".join(sys.argv))
    log.info("Environment: %s", env_config)
    log.info("Hyperparameters: %s; bins %s; seed %d", asdict(learner.hp),
             list(learner.discretiser.bins), args.seed)

    pending: list[dict[str, Any]] = []

    def train_episode(ep: int) -> dict[str, Any]:
        if not pending:
            pending.extend(algo.train()[TRAINING_EPISODES])
        return pending.pop(0)

    def save_model(path: Path, completed: int) -> None:
        learner.save(path, episode=completed, env_config=env_config, seed=args.seed)

    def evaluate(ep: int) -> dict[str, Any]:
        record = algo.evaluate()
        return {k: v for k, v in record.items() if not isinstance(v, dict)}

    def summary() -> str:
        s = learner.last_episode_stats
        max_q = max((abs(x) for row in learner.q.values() for x in row), default=0.0)
        return (f"q_table_states={len(learner.q)} epsilon={learner.epsilon:.4f} "
                f"peak_traced_states={s.get('peak_traced_states', 0)} "
                f"peak_trace={s.get('peak_trace', 0.0):.3f} max_abs_q={max_q:.3f}")

    from ..algorithms.sarsa.policy import SarsaPolicy

    slo = slo_of(env_config)
    settings = {"recipe": args.recipe, "hyperparams": asdict(learner.hp),
                "env_config": env_config, "seed": args.seed}
    try:
        outcome = run_training(
            run, log, episodes=args.episodes, train_episode=train_episode,
            save_model=save_model, evaluate=evaluate if args.eval_episodes > 0 else None,
            slo=slo, checkpoint_every=args.checkpoint_every, model_suffix=".pkl",
            log_interval=args.log_interval, debug_summary=summary,
            choose_best=best_chooser(run.root, run.model_path("best", ".pkl"), env_config, slo,
                                     SarsaPolicy.load, algo=ALGO, settings=settings))
        return outcome.exit_code
    finally:
        stop_algorithm(algo)


def main(argv: Sequence[str] | None = None) -> int:
    return trainer_main(build_parser, train, argv)
