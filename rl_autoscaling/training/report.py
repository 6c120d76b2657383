"""The best model of a run and its policy report.

At the end of a training (``train_sarsa``, ``train_dqn``) and of a Tune experiment, the model
delivered as ``models/<algo>_best.*`` is chosen by the project's one ranking rule
(:mod:`rl_autoscaling.common.ranking`): the candidates (every evaluated checkpoint) are ranked
on their checkpoint evaluations (*pick*), then confirmed in rank order on
:data:`CONFIRM_EPISODES` greedy episodes seeded ``CONFIRM_SEED_BASE + i`` (*confirm*: disjoint
from the training seeds, the checkpoint evaluations, the held-out seeds 500000+ of ``bench
policies`` and the calibration seeds 900000+); the first whose confirmation meets the SLO is
chosen, else the one with the highest confirmed QoS lower bound.

``policy_report.json`` then says what was chosen, with the confirmed figures (final QoS with
its lower bound and CI, mean workers with CI) beside the **static frontier** on the same
confirm episodes (Static N for the counts around the chosen model's workers) and the chosen
model's workers as a multiple of the frontier's at its QoS; ``policy_report.png`` draws it.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..common.modelio import atomic_write_json
from ..common.ranking import Choice, Evaluation, choose
from ..policies.base import Policy
from .calibration import (
    FrontierPoint,
    episode_summaries,
    frontier_workers_at,
    static_frontier,
)

#: Confirm episode i is seeded CONFIRM_SEED_BASE + i (module docstring).
CONFIRM_SEED_BASE = 80_000_000
CONFIRM_EPISODES = 100
#: Static counts of the report's frontier: this many either side of the chosen model's workers.
FRONTIER_SPAN = 5
REPORT_JSON = "policy_report.json"
REPORT_PNG = "policy_report.png"

log = logging.getLogger(__name__)


def confirm_seeds(episodes: int = CONFIRM_EPISODES) -> list[int]:
    return [CONFIRM_SEED_BASE + i for i in range(int(episodes))]


def evaluate_policy(env, policy: Policy, seeds: Sequence[int]) -> Evaluation:
    """Greedy episodes of ``policy`` on ``env``, one per seed, as an ``Evaluation``."""
    runs = episode_summaries(env, policy, seeds)
    return Evaluation(tuple(float(s["final_qos"]) for s in runs),
                      tuple(float(s["mean_workers"]) for s in runs))


@dataclass
class Candidate:
    """A model file and the checkpoint evaluation that ranks it."""

    path: Path
    evaluation: Mapping[str, Any]
    label: str = ""

    def __hash__(self) -> int:
        return hash(self.path)


def choose_model(candidates: Sequence[Candidate], load: Callable[[Path], Policy], env,
                 slo: float, seeds: Sequence[int]) -> Choice[Candidate]:
    """The candidate the ranking rule chooses (module docstring)."""
    def confirm(c: Candidate) -> Evaluation:
        return evaluate_policy(env, load(c.path), seeds)

    return choose([(c, Evaluation.of(c.evaluation)) for c in candidates], confirm, slo)


def frontier_for(env, seeds: Sequence[int], workers: float, qos: float
                 ) -> list[FrontierPoint]:
    """Static N around ``workers`` on ``seeds``, extended upwards until a count reaches
    ``qos`` (or the env's maximum)."""
    lo = max(env.min_workers, 1, int(math.floor(workers)) - FRONTIER_SPAN)
    hi = min(env.max_workers, int(math.ceil(workers)) + FRONTIER_SPAN)
    points = static_frontier(env, range(lo, hi + 1), seeds)
    while points[-1].final_qos < qos and points[-1].workers < env.max_workers:
        points += static_frontier(env, [points[-1].workers + 1], seeds)
    return points


def build_report(choice: Choice[Candidate], env, slo: float, seeds: Sequence[int], *,
                 algo: str, model: Path | None, settings: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The ``policy_report.json`` object of a choice (module docstring)."""
    report: dict[str, Any] = {"algo": algo, "slo": slo, "model": str(model) if model else None,
                              "confirm_seeds": [int(seeds[0]), int(seeds[-1])] if seeds else [],
                              "settings": dict(settings or {})}
    if choice.candidate is None:
        report.update(chosen=None, slo_met=False, note="no evaluated checkpoint to choose from")
        return report
    summary = choice.confirm.summary(slo)
    frontier = frontier_for(env, seeds, summary["mean_workers"], summary["final_qos"])
    at = frontier_workers_at(frontier, summary["final_qos"])
    report.update(
        chosen=choice.candidate.label or choice.candidate.path.name,
        source=str(choice.candidate.path),
        confirmed=choice.confirmed,
        slo_met=bool(summary["slo_met"]),
        **{k: summary[k] for k in ("final_qos", "final_qos_lower_bound", "final_qos_ci95",
                                   "mean_workers", "mean_workers_ci95", "episodes")},
        pick={"final_qos": choice.pick.mean_qos, "mean_workers": choice.pick.workers,
              "episodes": choice.pick.episodes},
        frontier=[{"workers": p.workers, "final_qos": p.final_qos,
                   "mean_workers": p.mean_workers} for p in frontier],
        frontier_workers_at_qos=at,
        x_frontier=summary["mean_workers"] / at if at == at and at > 0 else None,
        tried=[{"candidate": c.label or c.path.name, "pick_final_qos": p.mean_qos,
                "pick_mean_workers": p.workers, "confirm_final_qos": k.mean_qos,
                "confirm_qos_lower_bound": k.qos_lower_bound(), "confirm_mean_workers": k.workers}
               for c, p, k in choice.tried],
    )
    return report


def report_line(report: Mapping[str, Any]) -> str:
    """One line for the terminal and the log."""
    if not report.get("chosen"):
        return "Policy report: no model chosen (" + str(report.get("note", "")) + ")"
    x = report.get("x_frontier")
    return (f"Best model: {report['chosen']} -> {report.get('model')}: final QoS "
            f"{report['final_qos']:.4f} (lower bound {report['final_qos_lower_bound']:.4f}, "
            f"SLO {report['slo']:g} {'met' if report['slo_met'] else 'MISSED'}) at "
            f"{report['mean_workers']:.2f} +- {report['mean_workers_ci95']:.2f} workers"
            + (f" = {x:.3f}x the static frontier" if x else "")
            + f" on {report['episodes']} confirm episodes")


def write_best(candidates: Sequence[Candidate], load: Callable[[Path], Policy], env,
               slo: float, out_dir: Path | Callable[[Candidate], Path],
               best_name: str, *, algo: str, settings: Mapping[str, Any] | None = None,
               seeds: Sequence[int] | None = None) -> tuple[Path | None, dict[str, Any]]:
    """Choose among ``candidates``, copy the chosen model to ``<out_dir>/models/<best_name>``
    and write ``policy_report.json`` / ``.png`` into ``out_dir`` (a directory, or a function of
    the chosen candidate: the run directory it came from); returns (that directory, the
    report)."""
    seeds = list(seeds) if seeds is not None else confirm_seeds()
    choice = choose_model(candidates, load, env, slo, seeds)
    if choice.candidate is None:
        return None, build_report(choice, env, slo, seeds, algo=algo, model=None,
                                  settings=settings)
    root = Path(out_dir(choice.candidate) if callable(out_dir) else out_dir)
    best_path = root / "models" / best_name
    best_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(choice.candidate.path, best_path)
    report = build_report(choice, env, slo, seeds, algo=algo, model=best_path, settings=settings)
    atomic_write_json(root / REPORT_JSON, report)
    try:
        from ..reporting.policy import plot_policy_report

        plot_policy_report(report, root / REPORT_PNG)
    except Exception as exc:  # a plotting problem must not lose the report
        log.warning("Could not draw %s: %s", root / REPORT_PNG, exc)
    return root, report


def evaluation_env(env_config: Mapping[str, Any]):
    """A fresh twin env for greedy evaluation of ``env_config`` (no phase shuffle)."""
    from ..common.rollout import evaluation_env_config
    from ..env import OpenFaaSAutoscalingEnv

    return OpenFaaSAutoscalingEnv.from_env_config(evaluation_env_config(env_config))


def best_chooser(run_root: Path, best_path: Path, env_config: Mapping[str, Any], slo: float,
                 load: Callable[[Path], Policy], *, algo: str,
                 settings: Mapping[str, Any] | None = None
                 ) -> Callable[[Sequence[Candidate]], dict[str, Any]] | None:
    """The ``choose_best`` of ``run_training``: :func:`write_best` on a fresh evaluation env
    (no phase shuffle). None on the live backend, where 100 confirm episodes would take
    hours: the provisional pick stays."""
    if env_config.get("backend", "simulated") == "live":
        return None

    def go(candidates: Sequence[Candidate]) -> dict[str, Any]:
        env = evaluation_env(env_config)
        try:
            return write_best(candidates, load, env, slo, run_root, best_path.name, algo=algo,
                              settings=settings)[1]
        finally:
            env.close()
    return go


__all__ = ["CONFIRM_EPISODES", "CONFIRM_SEED_BASE", "Candidate", "REPORT_JSON", "REPORT_PNG",
           "best_chooser", "build_report", "choose_model", "confirm_seeds", "evaluate_policy",
           "evaluation_env", "frontier_for", "report_line", "write_best"]
