"""Train the DQN autoscaler with RLlib: ``python -m rl_autoscaling.train_dqn [flags]``.

RLlib's ``DQN`` (configured by :func:`rl_autoscaling.algorithms.dqn.config.dqn_config`,
docs/algorithms.md#dqn) is
driven by its local env runner on the farm env (the simulated twin unless ``--backend live``).
Each ``algo.train()`` call samples ``--max-steps`` env steps with one gradient update per step;
episodes are reported in the order the env runner finishes them, and training stops once
``--episodes`` episodes are done (the last iteration may have sampled, and learned from, a few
steps of one more episode; that partial episode is not reported).

The shared harness (:mod:`rl_autoscaling.training.harness`) writes
``<output-dir>/dqn_run_<UTC YYYYmmdd_HHMMSS>/``:

- ``logs/training.log``: one line per episode (every docs/artefacts.md field, progress, ETA),
  checkpoints and evaluations
- ``models/dqn_epNNNN.pt`` every ``--checkpoint-every`` episodes, ``models/dqn_final.pt``,
  ``models/dqn_interrupt.pt`` on Ctrl+C; next to each, the RLlib checkpoint
  ``models/dqn_<tag>_rllib/`` (``.pt`` format: :mod:`rl_autoscaling.algorithms.dqn.model`)
- ``training_metrics.json`` (one record per episode, with ``mean_loss``: the mean Huber loss
  of the updates made in the training iteration(s) that finished the episode, shared by every
  episode they finished; absent before learning starts), ``evaluation_metrics.json``,
  ``plots/training_curves.png``

Checkpoint evaluation: greedy roll-outs of the exported ``.pt`` network (plain PyTorch) on a
fresh env without phase shuffle, episode i seeded ``seed + checkpoint_episode * 1000 + i``;
also once at the end if the last checkpoint was earlier.

Resume: ``--resume-model`` takes a ``.pt`` file: both networks start from its weights (loaded
with ``torch.load(weights_only=True)``: no code in the file can run) and learning waits for
``--warmup-steps`` again. An RLlib checkpoint is a set of pickles, so it is never loaded
implicitly: only with ``--trust-checkpoint`` does ``--resume-model`` accept a checkpoint
directory, or restore the one named in the ``.pt`` (beside it): the full learner state, online
and target networks, Adam's moments, and the replay buffer when the checkpoint carries it
(``checkpoint_replay_buffer``). Epsilon
continues from the model's value (the epsilon its next episode would have used), unless
``--epsilon-start`` is given.

Ctrl+C saves ``models/dqn_interrupt.pt`` (and its RLlib checkpoint), logs how many episodes
completed and exits with status 130.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..common.errors import signals_interrupt
from ..common.metrics import EpisodeTrace
from ..common.rollout import evaluate_checkpoint, evaluation_env_config
from ..common.settings import (
    DEFAULT_RECIPE,
    add_flags,
    check_values,
    recipe_instance,
    values_from_flags,
)
from .cli import (
    add_checkpoint_args,
    add_training_args,
    check_trusted_checkpoint,
    env_config_from_args,
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

ALGO = "dqn"


# ---------------------------------------------------------------------- flags

def build_parser(recipe: str = DEFAULT_RECIPE) -> argparse.ArgumentParser:
    """The flags of ``DqnHyperparams``, ``DqnRun`` and the env settings, with ``recipe``'s
    defaults (``--recipe seed``: the original toolkit's)."""
    from ..algorithms.dqn.config import DqnHyperparams, DqnRun

    p = argparse.ArgumentParser(
        prog="python -m rl_autoscaling.train_dqn",
        description="Train the two-layer, Polyak-updated DQN autoscaler with RLlib (docs/algorithms.md#dqn).")
    add_training_args(p, "dqn", DqnRun, recipe)
    g = p.add_argument_group("DQN")
    eps = recipe_instance(DqnHyperparams, recipe).epsilon_start
    g.add_argument("--epsilon-start", type=float, default=None,
                   help=f"exploration rate of the first episode (default {eps}; on resume: "
                        "the model's)")
    add_flags(g, DqnHyperparams, recipe)
    add_checkpoint_args(p, DqnRun, "RLlib seed (network init, exploration, replay) and "
                                   "evaluation seed base", recipe)
    g = p.add_argument_group("resuming")
    g.add_argument("--resume-model", default=None, metavar="PT",
                   help="continue from a dqn_*.pt model (weights only; an RLlib checkpoint "
                        "directory needs --trust-checkpoint)")
    g.add_argument("--trust-checkpoint", action="store_true",
                   help="allow loading RLlib checkpoints (pickles: they can run code) for "
                        "--resume-model: a checkpoint directory, or the one beside the .pt "
                        "(restores the optimizer state too)")
    return p


def hyperparams_of(args: argparse.Namespace):
    """(``DqnHyperparams`` from the flags, the ``--resume-model`` .pt contents or None).

    Raises ``ValueError`` (one line) for invalid values or an unreadable / missing model.
    """
    from ..algorithms.dqn.config import DqnHyperparams
    from ..algorithms.dqn.model import derived_inputs_of, load_dqn_model

    resumed = None
    if args.resume_model:
        path = Path(args.resume_model)
        if not path.exists():
            raise ValueError(f"--resume-model not found: {path}")
        check_trusted_checkpoint(path, args.trust_checkpoint)
        if path.is_file():
            resumed = load_dqn_model(path)
    eps_start = args.epsilon_start
    if eps_start is None:
        default = recipe_instance(DqnHyperparams, args.recipe).epsilon_start
        eps_start = default if resumed is None else float(resumed.get("epsilon", default))
    flags = values_from_flags(DqnHyperparams, args, epsilon_start=eps_start)
    check_values(DqnHyperparams, **flags)  # before epsilon_end is capped at epsilon_start
    hp = DqnHyperparams(**{**flags, "epsilon_end": min(args.epsilon_end, eps_start)}).validate()
    if resumed is not None and list(resumed["hidden_layers"]) != list(hp.hidden_layers):
        raise ValueError(f"{args.resume_model} has hidden layers {resumed['hidden_layers']}, "
                         f"--hidden-layers is {list(hp.hidden_layers)}")
    if resumed is not None and (list(resumed.get("derived_inputs") or [])
                                != list(derived_inputs_of(hp.to_dict()))):
        raise ValueError(f"{args.resume_model} reads the derived inputs "
                         f"{list(resumed.get('derived_inputs') or []) or 'none'}; "
                         f"--{'' if hp.load_input else 'no-'}load-input reads "
                         f"{list(derived_inputs_of(hp.to_dict())) or 'none'}")
    return hp, resumed


# ---------------------------------------------------------------------- the trainer

class DqnTrainer:
    """The RLlib DQN algorithm behind the harness's ``train_episode`` / ``save_model`` /
    ``evaluate`` callables.

    ``algo.train()`` samples ``max_steps`` env steps per call; finished episodes are taken from
    the training env wrapper in order, so ``train_episode(n)`` returns episode n's record.
    """

    def __init__(self, args: argparse.Namespace, env_config: Mapping[str, Any], hp,
                 resumed: Mapping[str, Any] | None, log: logging.Logger) -> None:
        from ..algorithms.dqn.config import dqn_config
        from ..algorithms.dqn.schedule import epsilon_schedule
        from ..algorithms.dqn.training_env import register_dqn_env, training_envs

        self.args, self.env_config, self.hp, self.log = args, dict(env_config), hp, log
        self.schedule = epsilon_schedule(hp.epsilon_start, hp.epsilon_end, hp.epsilon_decay,
                                         int(self.env_config["max_steps"]))
        register_dqn_env()
        self.algo = dqn_config(hp, self.env_config, seed=args.seed).build_algo()
        (self.train_env,) = training_envs(self.algo)
        self.obs_low, self.obs_high = self.train_env.scaler.low, self.train_env.scaler.high
        self.action_size = int(self.train_env.action_space.n)
        self.env_steps = 0                # env steps of the episodes reported so far
        self._pending: list[tuple[EpisodeTrace, float | None]] = []  # (trace, mean loss)
        self._loss_sum, self._loss_count = 0.0, 0
        self._eval_env = None
        if args.resume_model:
            self._resume(Path(args.resume_model), resumed)

    def _module(self):
        from ..algorithms.dqn.weights import learner_module

        return learner_module(self.algo)

    def _resume(self, path: Path, data: Mapping[str, Any] | None) -> None:
        from ..algorithms.dqn.weights import load_q_network_state

        # RLlib checkpoints are pickles: only with --trust-checkpoint (hyperparams_of refused
        # an untrusted directory already)
        trusted = bool(getattr(self.args, "trust_checkpoint", False))
        ckpt = path if path.is_dir() and trusted else None
        if ckpt is None and trusted and data and data.get("rllib_checkpoint"):
            candidate = path.parent / str(data["rllib_checkpoint"])
            ckpt = candidate if candidate.is_dir() else None
        if ckpt is not None:
            self.algo.learner_group.restore_from_path(str((ckpt / "learner_group").resolve()))
            self.log.info("Resumed learner state (online, target, optimizer) from %s", ckpt)
            from ..algorithms.dqn.learner import (
                replay_buffer_size,
                restore_replay_buffer_from_path,
            )

            if restore_replay_buffer_from_path(self.algo, ckpt):
                self.log.info("Resumed the replay buffer (%d env steps)",
                              replay_buffer_size(self.algo))
        else:
            load_q_network_state(self._module(), data["state_dict"])
            self.log.info("Resumed online and target Q-network weights from %s", path)
        self.algo.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.algo.learner_group, inference_only=True)

    def epsilon(self) -> float:
        """Epsilon of the next episode (RLlib's schedule at its first env step)."""
        from ..algorithms.dqn.schedule import epsilon_at

        return epsilon_at(self.schedule, self.env_steps)

    # -- harness callables ---------------------------------------------------------------

    def train_episode(self, episode: int) -> dict[str, Any]:
        from ..algorithms.dqn.learner import MEAN_LOSS_COUNT, MEAN_LOSS_SUM
        from ..algorithms.dqn.training_env import training_records

        while not self._pending:
            result = self.algo.train()
            learner = (result.get("learners") or {}).get("default_policy") or {}
            if learner.get(MEAN_LOSS_COUNT):
                self._loss_sum += float(learner.get(MEAN_LOSS_SUM, 0.0))
                self._loss_count += int(learner[MEAN_LOSS_COUNT])
            finished = self.train_env.pop_finished()
            if finished:  # every episode the iteration(s) finished gets their mean loss
                mean_loss = self._loss_sum / self._loss_count if self._loss_count else None
                self._loss_sum, self._loss_count = 0.0, 0
                self._pending.extend((trace, mean_loss) for trace in finished)
        trace, mean_loss = self._pending.pop(0)
        (record,) = training_records([trace], episode, self.env_steps, self.schedule, mean_loss)
        self.env_steps += trace.steps
        return record

    def save_model(self, path: Path, completed: int) -> None:
        """``path`` (.pt) and, beside it, the RLlib checkpoint ``<stem>_rllib/``."""
        from ..algorithms.dqn.learner import replay_buffer_size
        from ..algorithms.dqn.weights import export_pt

        ckpt = path.with_name(f"{path.stem}_rllib")
        try:
            self.algo.save_to_path(str(ckpt.resolve()))
            if self.hp.checkpoint_replay_buffer:
                self.log.info("RLlib checkpoint %s holds the replay buffer (%d env steps)",
                              ckpt.name, replay_buffer_size(self.algo))
        except Exception as exc:  # the .pt must still be written (e.g. after Ctrl+C)
            self.log.warning("RLlib checkpoint %s failed: %s", ckpt, exc)
            ckpt = None
        export_pt(self.algo, path, hyperparams=self.hp.to_dict(), env_config=self.env_config,
                  obs_low=self.obs_low, obs_high=self.obs_high, action_size=self.action_size,
                  epsilon=self.epsilon(), episode=completed,
                  rllib_checkpoint=ckpt.name if ckpt else "")

    def greedy_policy(self):
        """The current online network as a plain-torch ``DqnPolicy`` (what the .pt holds)."""
        from ..algorithms.dqn.model import build_q_network
        from ..algorithms.dqn.policy import DqnPolicy
        from ..algorithms.dqn.weights import q_network_state_dict

        scaler = self.train_env.scaler  # the training env's: the same transform
        net = build_q_network(scaler.size, self.hp.hidden_layers, self.action_size)
        net.load_state_dict(q_network_state_dict(self._module()))
        return DqnPolicy(net, scaler)

    def evaluate(self, episode: int) -> dict[str, Any]:
        from ..env import OpenFaaSAutoscalingEnv

        if self._eval_env is None:
            self._eval_env = OpenFaaSAutoscalingEnv.from_env_config(
                evaluation_env_config(self.env_config))
        return evaluate_checkpoint(self._eval_env, self.greedy_policy(), episode,
                                   self.args.eval_episodes, self.args.seed)

    def stop(self) -> None:
        if self._eval_env is not None:
            self._eval_env.close()
        stop_algorithm(self.algo)


# ---------------------------------------------------------------------- entry point

def _quiet_ray_logs() -> None:
    for name in ("ray.rllib", "ray.tune", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


def train(args: argparse.Namespace) -> int:
    """Run the training described by parsed ``args``; returns the exit code."""
    from ..algorithms.dqn.config import DqnRun
    from ..env import OpenFaaSAutoscalingEnv

    env_config = env_config_from_args(args)
    run_settings = run_settings_of(DqnRun, args)  # refuse bad --episodes etc. before running
    checkpoint_every = run_settings.checkpoint_interval(int(env_config["max_steps"]))
    episodes = run_settings.episode_count(int(env_config["max_steps"]))
    hp, resumed = hyperparams_of(args)
    OpenFaaSAutoscalingEnv.from_env_config(env_config).close()  # fail fast on bad env flags

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    run = RunDirectory.create(args.output_dir, ALGO)
    log = setup_run_logger(run)
    _quiet_ray_logs()
    started_ray = not ray.is_initialized()
    if started_ray:  # a local Ray on ports it picks itself (never 6379), no dashboard
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    trainer = None
    try:
        # ray.init installed its own SIGTERM handler: SIGTERM/SIGHUP are Ctrl+C again here
        with signals_interrupt(), logged_failure(log):
            trainer = DqnTrainer(args, env_config, hp, resumed, log)
            log.info("Command: %s", " ".join(sys.argv))
            log.info("Environment: %s", env_config)
            log.info("Hyperparameters: %s; seed %d; checkpoints every %d episodes",
                     hp.to_dict(), args.seed, checkpoint_every)
            from ..algorithms.dqn.policy import DqnPolicy

            slo = slo_of(env_config)
            outcome = run_training(
                run, log, episodes=episodes, train_episode=trainer.train_episode,
                save_model=trainer.save_model,
                evaluate=trainer.evaluate if args.eval_episodes > 0 else None,
                slo=slo, checkpoint_every=checkpoint_every, model_suffix=".pt",
                choose_best=best_chooser(
                    run.root, run.model_path("best", ".pt"), env_config, slo, DqnPolicy.load,
                    algo=ALGO, settings={"recipe": args.recipe, "hyperparams": hp.to_dict(),
                                         "env_config": env_config, "seed": args.seed}))
            return outcome.exit_code
    finally:
        if trainer is not None:
            trainer.stop()
        if started_ray:
            ray.shutdown()
        close_logger(log)


def main(argv: Sequence[str] | None = None) -> int:
    return trainer_main(build_parser, train, argv)
