"""The training harness shared by every trainer (``train_sarsa``, ``train_dqn``): run
directories, logging, metric files, checkpoint evaluation and Ctrl+C handling (docs/artefacts.md).

A trainer supplies three callables and :func:`run_training` does the rest::

    run = RunDirectory.create("runs", "sarsa")           # runs/sarsa_run_<UTC ts>/
    log = setup_run_logger(run)                           # logs/training.log + console
    outcome = run_training(
        run, log, episodes=100, checkpoint_every=10, model_suffix=".pkl",
        train_episode=lambda ep: {...training_metrics.json record...},
        save_model=lambda path, completed: ...,
        evaluate=lambda ep: evaluate_checkpoint(env, policy, ep, 3, seed=42))
    sys.exit(outcome.exit_code)                           # 0, or 130 after Ctrl+C

- ``training_metrics.json`` / ``evaluation_metrics.json`` are rewritten atomically after
  every episode / checkpoint, so a crash never loses finished episodes.
- One log line per episode (every docs/artefacts.md field as ``key=value``, then progress and ETA)
  in ``logs/training.log``; ``plot_training`` can rebuild the curves from it alone. The console
  gets a live progress line and a summary every tenth of the run instead (:mod:`.progress`).
- Every ``checkpoint_every`` episodes: ``models/<algo>_epNNNN<suffix>``, then a greedy
  evaluation; at the end ``models/<algo>_final<suffix>``, a last evaluation if the last
  checkpoint was earlier, and ``plots/training_curves.png``.
- Ctrl+C (and SIGTERM / SIGHUP: ``common.errors.signals_interrupt``):
  ``models/<algo>_interrupt<suffix>`` is saved, the number of completed episodes is
  logged, the curves are plotted, and the outcome's exit code is 130.

Checkpoint evaluation (:func:`evaluate_checkpoint`) is greedy, on a fresh env without phase
shuffle (:func:`evaluation_env_config`), episode i seeded ``seed + checkpoint_episode * 1000 +
i``, and summarised by ``metrics.checkpoint_evaluation``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..common.errors import EXIT_INTERRUPTED, error_message
from ..common.modelio import atomic_write_json
from ..common.ranking import Evaluation, rank_key
from ..common.rundir import new_run_dir
from .progress import FILE_ONLY, ConsoleHandler, ConsoleProgress, not_console_only
from .report import Candidate, report_line

TRAINING_METRICS = "training_metrics.json"
EVALUATION_METRICS = "evaluation_metrics.json"
TRAINING_LOG = "training.log"
TRAINING_CURVES = "training_curves.png"
#: Order of the fields in an episode log line (the docs/artefacts.md record).
EPISODE_FIELDS = ("total_reward", "final_qos", "mean_qos", "max_workers", "mean_workers",
                  "scale_up_count", "scale_down_count", "noop_count", "epsilon", "steps",
                  "processed_tasks", "qos_violations", "unfinished_tasks", "mean_loss")


@dataclass(frozen=True)
class RunDirectory:
    """``<output_dir>/<algo>_run_<UTC ts>/`` and the paths inside it."""

    root: Path
    algo: str

    @classmethod
    def create(cls, output_dir: str | Path, algo: str,
               timestamp: str | None = None) -> RunDirectory:
        """Create the run directory with ``logs/``, ``models/`` and ``plots/``
        (:func:`~rl_autoscaling.common.rundir.new_run_dir`: a clash gets a ``_2`` suffix)."""
        run = cls(new_run_dir(output_dir, f"{algo}_run", timestamp), algo)
        for sub in (run.logs, run.models, run.plots):
            sub.mkdir(exist_ok=True)
        return run

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def training_log(self) -> Path:
        return self.logs / TRAINING_LOG

    @property
    def training_metrics(self) -> Path:
        return self.root / TRAINING_METRICS

    @property
    def evaluation_metrics(self) -> Path:
        return self.root / EVALUATION_METRICS

    @property
    def training_curves(self) -> Path:
        return self.plots / TRAINING_CURVES

    def model_path(self, tag: int | str, suffix: str = ".pkl") -> Path:
        """``models/<algo>_epNNNN<suffix>`` for an episode number, else
        ``models/<algo>_<tag><suffix>`` (``final``, ``interrupt``)."""
        name = f"ep{tag:04d}" if isinstance(tag, int) else str(tag)
        return self.models / f"{self.algo}_{name}{suffix}"


def setup_run_logger(run: RunDirectory, name: str | None = None, console: bool = True,
                     console_level: int = logging.INFO) -> logging.Logger:
    """A logger writing DEBUG and up to ``logs/training.log`` and ``console_level`` and up to
    stdout, below a live progress line on stderr (:mod:`.progress`: the per-episode lines go
    to the file only, the console gets summaries). Handlers from an earlier call with the
    same name are replaced."""
    logger = logging.getLogger(name or f"rl_autoscaling.train.{run.algo}")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    file_handler = logging.FileHandler(run.training_log, encoding="utf-8")
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(fmt)
    file_handler.addFilter(not_console_only)
    logger.addHandler(file_handler)
    if console:
        stream = ConsoleHandler(sys.stdout)
        stream.setLevel(console_level)
        stream.setFormatter(fmt)
        logger.addHandler(stream)
    return logger


def close_logger(logger: logging.Logger) -> None:
    """Flush and detach every handler (so the log file is complete and closed)."""
    for handler in list(logger.handlers):
        handler.flush()
        handler.close()
        logger.removeHandler(handler)


@contextmanager
def logged_failure(logger: logging.Logger) -> Iterator[None]:
    """Log an exception escaping the block (one ERROR line; the traceback at DEBUG level, so
    only ``training.log`` gets it) and re-raise it: a run that dies (a bad flag found late,
    Redis gone during live training) says why in its own log, not only on the console."""
    try:
        yield
    except Exception as exc:
        logger.error("Training failed: %s: %s", type(exc).__name__, error_message(exc))
        logger.debug("Traceback of the failure", exc_info=True)
        raise


class MetricsRecorder:
    """Keeps the episode and checkpoint records; rewrites their JSON files after each one."""

    def __init__(self, run: RunDirectory) -> None:
        self.run = run
        self.episodes: list[dict[str, Any]] = []
        self.checkpoints: list[dict[str, Any]] = []

    #: After the first ``write_every_upto`` episodes, rewrite training_metrics.json at most
    #: every ``write_interval`` seconds (flush() writes it now; checkpoints, the end and an
    #: interrupt flush). Rewriting it after every episode is O(episodes^2): minutes for 5000
    #: twin episodes. Slow runs (the live farm) still write after every episode.
    write_every_upto = 100
    write_interval = 1.0

    def add_episode(self, record: Mapping[str, Any]) -> None:
        self.episodes = [*self.episodes, dict(record)]
        if (len(self.episodes) <= self.write_every_upto
                or time.perf_counter() - getattr(self, "_written", -math.inf)
                >= self.write_interval):
            self.flush()

    def flush(self) -> None:
        """Write every episode record kept so far to training_metrics.json."""
        atomic_write_json(self.run.training_metrics, {"episodes": self.episodes})
        self._written = time.perf_counter()

    def add_checkpoint(self, record: Mapping[str, Any]) -> None:
        checkpoints = [*self.checkpoints, dict(record)]
        atomic_write_json(self.run.evaluation_metrics, {"checkpoints": checkpoints})
        self.checkpoints = checkpoints

    @property
    def last_checkpoint_episode(self) -> int | None:
        return int(self.checkpoints[-1]["episode"]) if self.checkpoints else None


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 1e9):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e-3 or abs(value) >= 1e6 else f"{value:.4f}"
    return str(value)


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (or ``?`` for an unknown duration)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def episode_line(record: Mapping[str, Any], total: int | None = None) -> str:
    """``Episode N/T key=value ...`` with every docs/artefacts.md field present in ``record``."""
    ep = int(record["episode"])
    head = f"Episode {ep}/{total}" if total else f"Episode {ep}"
    parts = [f"{k}={_fmt(record[k])}" for k in EPISODE_FIELDS if record.get(k) is not None]
    return " ".join([head, *parts])


@dataclass
class Progress:
    """Progress and ETA over ``total`` episodes, measured from construction."""

    total: int
    done_before: int = 0
    start: float = field(default_factory=time.perf_counter)

    def line(self, done: int) -> str:
        elapsed = time.perf_counter() - self.start
        new = done - self.done_before
        rate = new / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - done) / rate if rate > 0 and math.isfinite(rate) else float("nan")
        pct = 100.0 * done / self.total if self.total else 100.0
        return (f"{pct:3.0f}% {rate:.1f} ep/s elapsed {format_duration(elapsed)} "
                f"ETA {format_duration(eta if done < self.total else 0.0)}")


def evaluation_line(record: Mapping[str, Any]) -> str:
    """One log line for a checkpoint evaluation record (mean +- std of the key figures)."""
    def pm(key: str, digits: int) -> str:
        return (f"{record.get('mean_' + key, float('nan')):.{digits}f}"
                f"+-{record.get('std_' + key, float('nan')):.{digits}f}")
    return (f"Evaluation at episode {record['episode']} ({record['eval_episodes']} greedy "
            f"episodes): total_reward={pm('total_reward', 2)} final_qos={pm('final_qos', 4)} "
            f"mean_workers={pm('mean_workers', 2)} max_workers={pm('max_workers', 2)} "
            f"scaling_actions={pm('scaling_actions', 2)}")


# ---------------------------------------------------------------------------- training loop

@dataclass
class TrainingOutcome:
    """What :func:`run_training` did."""

    completed: int
    interrupted: bool
    final_model: Path | None
    final_evaluation: dict[str, Any] | None
    wall_time: float

    @property
    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.interrupted else 0


def run_training(
    run: RunDirectory,
    logger: logging.Logger,
    *,
    episodes: int,
    train_episode: Callable[[int], Mapping[str, Any]],
    save_model: Callable[[Path, int], Any],
    evaluate: Callable[[int], Mapping[str, Any]] | None = None,
    checkpoint_every: int = 10,
    model_suffix: str = ".pkl",
    log_interval: int = 0,
    debug_summary: Callable[[], str] | None = None,
    plot: bool = True,
    recorder: MetricsRecorder | None = None,
    slo: float | None = None,
    choose_best: Callable[[list[Candidate]], Mapping[str, Any]] | None = None,
) -> TrainingOutcome:
    """Train ``episodes`` episodes with checkpoints, evaluations and Ctrl+C handling.

    Args:
        run, logger: from :meth:`RunDirectory.create` and :func:`setup_run_logger`.
        episodes: number of training episodes.
        train_episode: plays episode ``n`` (1-based) and returns its training record.
        save_model: writes the model to the given path; gets the completed episode count.
        evaluate: checkpoint evaluation for a completed episode count (None: never).
        checkpoint_every: save (and evaluate) every N episodes; <= 0: only at the end.
        model_suffix: model file suffix (``.pkl``, ``.pt``).
        log_interval: every N episodes, log ``debug_summary()`` at DEBUG level (0: never).
        plot: write ``plots/training_curves.png`` at the end (and after an interrupt).
        recorder: metric files writer (default: a new one for ``run``).
        slo: final-QoS SLO for picking the best checkpoint: after every evaluation, the model
            it evaluated is copied to ``models/<algo>_best<suffix>`` when it ranks above the
            best so far (:func:`checkpoint_score`, the one ranking rule; a provisional pick
            that an interrupted run keeps). None: no best model.
        choose_best: at the end of a finished run, gets every evaluated model (a
            :class:`~rl_autoscaling.training.report.Candidate`) and makes the final choice
            confirmed on fresh episodes (``training.report.write_best``: it overwrites the
            provisional ``<algo>_best`` and writes the policy report); returns the report.
    """
    recorder = recorder or MetricsRecorder(run)
    already = len(recorder.episodes)
    progress = Progress(episodes)
    console = ConsoleProgress(logger, episodes)
    completed, final_model, final_eval, interrupted = 0, None, None, False
    best: tuple[float, float] | None = None
    candidates: list[Candidate] = []

    def evaluated(path: Path, ep: int) -> dict[str, Any]:
        nonlocal best
        record = _evaluate(evaluate, ep, recorder, logger)
        candidates.append(Candidate(path, record, label=path.stem))
        score = checkpoint_score(record, slo) if slo is not None else None
        if score is not None and (best is None or score > best):
            best = score
            target = run.model_path("best", model_suffix)
            shutil.copyfile(path, target)
            logger.info("Best checkpoint so far: episode %d (final QoS %.4f, mean workers "
                        "%.2f) -> %s", ep, record.get("mean_final_qos", float("nan")),
                        record.get("mean_mean_workers", float("nan")), target)
        return record

    def checkpoint(ep: int) -> None:
        nonlocal final_eval
        path = run.model_path(ep, model_suffix)
        save_model(path, ep)
        logger.info("Saved checkpoint %s", path)
        if evaluate is not None:
            final_eval = evaluated(path, ep)

    logger.info("Run directory: %s", run.root)
    try:
        for ep in range(1, episodes + 1):
            record = dict(train_episode(ep))
            record.setdefault("episode", ep)
            recorder.add_episode(record)
            completed = ep
            status = progress.line(ep)
            logger.info("%s | %s", episode_line(record, episodes), status, extra=FILE_ONLY)
            console.episode(record, status, recorder.checkpoints)
            if debug_summary is not None and log_interval > 0 and ep % log_interval == 0:
                logger.debug("Episode %d summary: %s", ep, debug_summary())
            if checkpoint_every > 0 and ep % checkpoint_every == 0:
                recorder.flush()
                checkpoint(ep)
        recorder.flush()
        final_model = run.model_path("final", model_suffix)
        save_model(final_model, completed)
        logger.info("Saved final model %s", final_model)
        if evaluate is not None and recorder.last_checkpoint_episode != completed:
            final_eval = evaluated(final_model, completed)
        if choose_best is not None and candidates:
            logger.info("Choosing the best of %d evaluated models (confirmed on fresh "
                        "episodes)...", len(candidates))
            logger.info("%s", report_line(choose_best(candidates)))
    except KeyboardInterrupt:
        interrupted = True
        recorder.flush()
        completed = len(recorder.episodes) - already  # what is on disk, however late it came
        _save_interrupt(run, logger, save_model, model_suffix, completed, episodes)
    console.finish()
    wall = time.perf_counter() - progress.start
    if plot and recorder.episodes:
        _plot_curves(run, recorder, logger)
    logger.info("Finished %d episode(s) in %.2f s%s", completed, wall,
                " (interrupted)" if interrupted else "")
    if final_eval is not None:
        logger.info("Final evaluation: %s; training wall time %.2f s",
                    evaluation_line(final_eval), wall)
    return TrainingOutcome(completed=completed, interrupted=interrupted, final_model=final_model,
                           final_evaluation=final_eval, wall_time=wall)


def _save_interrupt(run: RunDirectory, logger: logging.Logger,
                    save_model: Callable[[Path, int], Any], model_suffix: str,
                    completed: int, episodes: int) -> None:
    path = run.model_path("interrupt", model_suffix)
    try:
        save_model(path, completed)
        logger.warning("Interrupted: saved %s", path)
    except Exception as exc:  # never lose the interrupt report to a failed save
        logger.error("Interrupted: could not save %s: %s", path, exc)
    logger.warning("Training interrupted: %d of %d episodes completed", completed, episodes)


def _plot_curves(run: RunDirectory, recorder: MetricsRecorder, logger: logging.Logger) -> None:
    try:
        from ..reporting.curves import plot_training_curves

        plot_training_curves(recorder.episodes, run.training_curves,
                             evaluation=recorder.checkpoints or None, title=run.root.name)
        logger.info("Saved training curves %s", run.training_curves)
    except Exception as exc:  # a plotting problem must not fail a finished training
        logger.warning("Could not plot the training curves: %s", exc)


def stop_algorithm(algo) -> None:
    """Stop an RLlib algorithm built outside Tune and remove the empty scratch dir its
    Trainable made under ~/ray_results."""
    logdir = getattr(algo, "logdir", None)
    algo.stop()
    if logdir:
        try:
            os.rmdir(logdir)
        except OSError:
            pass  # not empty (or gone): leave it


def slo_of(env_config: Mapping[str, Any]) -> float:
    """The final-QoS SLO of the farm an ``env_config`` builds (``reward.slo_cost.qos_target``)."""
    from ..env import OpenFaaSAutoscalingEnv

    env = OpenFaaSAutoscalingEnv.from_env_config(env_config)
    try:
        return float(env.farm_config.reward.slo_cost.qos_target)
    finally:
        env.close()


def checkpoint_score(record: Mapping[str, Any], slo: float) -> tuple[float, float]:
    """Rank of a checkpoint evaluation record (higher is better): the project's one ranking
    rule, :func:`rl_autoscaling.common.ranking.rank_key`."""
    return rank_key(Evaluation.of(record), slo)


def _evaluate(evaluate: Callable[[int], Mapping[str, Any]], episode: int,
              recorder: MetricsRecorder, logger: logging.Logger) -> dict[str, Any]:
    record = dict(evaluate(episode))
    record["episode"] = episode
    recorder.add_checkpoint(record)
    logger.info("%s", evaluation_line(record))
    return record


__all__ = [
    "EPISODE_FIELDS", "EXIT_INTERRUPTED", "MetricsRecorder", "Progress", "RunDirectory",
    "checkpoint_score", "slo_of",
    "TrainingOutcome", "close_logger", "episode_line", "evaluation_line", "format_duration",
    "logged_failure", "run_training", "setup_run_logger", "stop_algorithm",
]
