"""Fit the twin's timing parameters to a recording, with Ray Tune as the search engine.

The objective is :func:`~rl_autoscaling.training.twin_validation.fit_score` of the validation
report (the closed-loop errors of the agents the twin plays, plus the open-loop errors and
step-length distances of the faithful replays at half weight), which is deterministic for a
given configuration: every candidate replays the same episode seeds, so candidates differ only
by their parameters (common random numbers).

A candidate is *admissible* when none of its closed-loop errors in workers, worker queue and
QoS (``twin_validation.GUARDED``, each agent the twin plays) is more than ``max_worse``
(default 10 %) above the start's (or more than an optional absolute floor: ``Guard``): a
lower score bought with a worse closed loop (e.g. by fitting open-loop terms) is not a better
twin for training. The searcher sees inadmissible candidates with a penalty; the result is the
admissible candidate with the lowest score, the start when none beats it.

The search is a Tune search algorithm of our own, :class:`TwinSearch` (Tune ships no
model-based searcher without extra packages): the starting configuration first (so a fit never
reports a worse error than its start), a fifth of the budget uniformly at random over the
bounds, then a compass search from the best candidate so far: one dimension at a time, a step
up and down (from 25 % of its range), the step halved after a sweep without improvement.
``num_samples`` is the budget; trials run locally.

Parameters (``--params``; docs/farm.md, "Scaling and latencies"): ``scale_up_latency``,
``scale_down_removal_delay`` and ``step_overhead`` (uniform distributions, searched as
centre and half-width),
``wait_time``, ``collector_wait_time`` and ``processing_delay``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml
from ray.tune.search import Searcher

from ..common.envvars import environ
from ..common.errors import UserError
from ..config import FarmConfig, from_dict, load_config, to_dict
from ..training.twin_validation import (
    Guard,
    Recording,
    closed_loop_errors,
    fit_score,
    validate,
    worse_than,
)

#: parameter name -> its dimensions (dotted config key, lower bound, upper bound)
#: (a uniform distribution is searched as its centre and half-width: the centre, the mean,
#: is what the recordings pin down best)
PARAMETERS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "scale_up_latency": (("timing.scale_up_latency.center", 0.0, 30.0),
                         ("timing.scale_up_latency.spread", 0.0, 10.0)),
    "scale_down_removal_delay": (("timing.scale_down_removal_delay.center", 0.0, 15.0),
                                 ("timing.scale_down_removal_delay.spread", 0.0, 5.0)),
    "wait_time": (("timing.wait_time", 0.005, 1.0),),
    "collector_wait_time": (("timing.collector_wait_time", 0.005, 1.0),),
    "processing_delay": (("timing.processing_delay", 0.0, 3.0),),
    "step_overhead": (("timing.step_overhead.center", 0.0, 2.0),
                      ("timing.step_overhead.spread", 0.0, 1.0)),
}
DISTRIBUTIONS = ("scale_up_latency", "scale_down_removal_delay", "step_overhead")

#: added to the objective of an inadmissible candidate (scores are a few units)
PENALTY = 1000.0


class FitError(UserError):
    """A fit cannot run (unknown parameter, bad budget); printed as one ``error:`` line."""


def dimensions(params: Sequence[str] | None) -> list[tuple[str, float, float]]:
    """The search dimensions of ``params`` (names of :data:`PARAMETERS`, ``timing.`` prefix
    optional; default: all)."""
    names = list(params) if params else list(PARAMETERS)
    dims: list[tuple[str, float, float]] = []
    for raw in names:
        name = str(raw).removeprefix("timing.")
        if name not in PARAMETERS:
            raise FitError(f"unknown parameter {raw!r}; choose from {', '.join(PARAMETERS)}")
        dims += [d for d in PARAMETERS[name] if d not in dims]
    return dims


def _distribution_bounds(dist: Mapping[str, Any]) -> tuple[float, float]:
    if dist["distribution"] == "fixed":
        return dist["value"], dist["value"]
    if dist["distribution"] == "normal":
        return max(0.0, dist["mean"] - dist["std"]), dist["mean"] + dist["std"]
    return dist["low"], dist["high"]


def start_point(config: FarmConfig, dims: Sequence[tuple[str, float, float]]) -> dict[str, float]:
    """The values of ``dims`` in ``config`` (a fixed or normal distribution as its range)."""
    timing = to_dict(config.timing)
    point = {}
    for key, lo, hi in dims:
        parts = key.split(".")[1:]
        if len(parts) == 2:
            low, high = _distribution_bounds(timing[parts[0]])
            value = (low + high) / 2 if parts[1] == "center" else (high - low) / 2
        else:
            value = timing[parts[0]]
        point[key] = float(min(hi, max(lo, value)))
    return point


def overrides_for(point: Mapping[str, float]) -> dict[str, Any]:
    """Config overrides for a candidate: a ``center``/``spread`` pair becomes
    uniform(max(0, center - spread), center + spread)."""
    out: dict[str, Any] = {}
    for name in DISTRIBUTIONS:
        center, spread = f"timing.{name}.center", f"timing.{name}.spread"
        if center in point:
            c, w = float(point[center]), float(point.get(spread, 0.0))
            out[f"timing.{name}"] = {"distribution": "uniform", "low": max(0.0, c - w),
                                     "high": c + w}
    for key, value in point.items():
        if key.split(".")[1] not in DISTRIBUTIONS:
            out[key] = float(value)
    return out


def candidate_config(base: FarmConfig, point: Mapping[str, float]) -> FarmConfig:
    return base.replace(overrides_for(point))


class TwinSearch(Searcher):
    """The start point, random exploration, then a compass search from the best point (see
    the module docstring)."""

    def __init__(self, dims, start, budget, seed=0, metric="score", mode="min"):
        super().__init__(metric=metric, mode=mode)
        self.dims = list(dims)
        self.start = dict(start)
        self.budget = max(1, int(budget))
        self.explore = max(0, (self.budget - 1) // 5)
        self.rng = np.random.default_rng(seed)
        self.suggested = 0
        self.pending: dict[str, dict[str, float]] = {}
        self.done: list[tuple[float, dict[str, float]]] = []
        self.step = 0.25  # of each range; halved after a sweep without improvement
        self.moves: list[tuple[int, int]] = []
        self.improved = False

    def set_search_properties(self, metric, mode, config, **spec):
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def save(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))

    def _best(self) -> dict[str, float]:
        return min(self.done, key=lambda d: d[0])[1] if self.done else self.start

    def _next_move(self) -> tuple[int, int]:
        if not self.moves:
            if not self.improved:
                self.step = max(0.002, self.step / 2) if self.done else self.step
            self.improved = False
            order = self.rng.permutation(len(self.dims))
            self.moves = [(int(i), sign) for i in order for sign in (1, -1)]
        return self.moves.pop(0)

    def suggest(self, trial_id):
        if self.suggested >= self.budget:
            return Searcher.FINISHED
        k = self.suggested
        self.suggested += 1
        if k == 0:
            point = dict(self.start)
        elif k <= self.explore:
            point = {key: float(self.rng.uniform(lo, hi)) for key, lo, hi in self.dims}
        else:
            point = dict(self._best())
            i, sign = self._next_move()
            key, lo, hi = self.dims[i]
            point[key] = float(np.clip(point[key] + sign * self.step * (hi - lo), lo, hi))
        self.pending[trial_id] = point
        return dict(point)

    def on_trial_complete(self, trial_id, result=None, error=False):
        point = self.pending.pop(trial_id, None)
        if point is not None and result and not error and self.metric in result:
            value = float(result[self.metric])
            if math.isfinite(value):
                if self.done and value < min(d[0] for d in self.done):
                    self.improved = True
                self.done.append((value, point))


def objective(report: Mapping[str, Any], start_errors: Mapping[tuple[str, str], float],
              guard: Guard) -> dict[str, float]:
    """A candidate's result: its ``score``, ``over`` (how many guarded closed-loop errors
    exceed the ``guard``'s limit) and the searcher's ``objective`` (the score, plus
    :data:`PENALTY` and the score again per error over)."""
    score = fit_score(report)
    over = len(worse_than(start_errors, report, guard))
    return {"score": score, "over": float(over),
            "objective": score + (PENALTY + score) * over if over else score}


def _trial(config: dict, payload: dict) -> None:
    """One candidate: the validation score of the twin with these parameters."""
    from ray import tune

    cfg = candidate_config(from_dict(payload["base"]), config)
    report = validate(payload["recording"], cfg, payload["policies"],
                      payload["episodes"]).report
    tune.report(objective(report, payload["start_errors"], payload["guard"]))


@dataclass
class FitResult:
    """The fit's outcome: the start and best points, their scores and reports."""

    start: dict[str, float]
    best: dict[str, float]
    start_score: float
    best_score: float
    start_report: dict[str, Any]
    best_report: dict[str, Any]
    config: FarmConfig
    trials: int
    rejected: int = 0  # trials that left a guarded closed-loop error above its limit


def fit(recording: Recording, base: FarmConfig, policies: Mapping[str, Any],
        params: Sequence[str] | None = None, budget: int = 64, episodes: int | None = None,
        seed: int = 0, max_concurrent: int = 2, num_cpus: int | None = None,
        storage_path: str | Path | None = None, guard: Guard | None = None) -> FitResult:
    """Search the timing parameters ``params`` of ``base`` that minimise the validation score
    on ``recording``, with Ray Tune (``num_samples=budget``), among the admissible candidates
    (no guarded closed-loop error above its ``guard`` limit; default ``Guard()``: 10 % above
    the start's); starts a local Ray
    instance if none is running. The start is the first candidate, and kept unless beaten."""
    if budget < 1:
        raise FitError(f"--budget must be >= 1, got {budget}")
    guard = guard or Guard()
    if not (guard.max_worse >= 0.0 and guard.floor >= 0.0):
        raise FitError(f"--max-worse and --max-worse-floor must be >= 0, got {guard}")
    dims = dimensions(params)
    start = start_point(base, dims)
    start_cfg = candidate_config(base, start)
    start_report = validate(recording, start_cfg, policies, episodes).report
    start_score = fit_score(start_report)
    if not math.isfinite(start_score):
        raise FitError(f"nothing to fit on {recording.path}: no agent is played closed loop "
                       "(give --model/--dqn-model for SARSA/DQN) and no open-loop replay "
                       "reproduces the recorded worker counts")
    # Each trial takes milliseconds: Tune's per-trial costs (a new actor, result loggers,
    # experiment snapshots) would dominate, so actors are reused, only the JSON result
    # logger runs and the experiment state is saved rarely (a fit is restarted, never resumed).
    # Only for this fit: the process (and every later Tune run in it) keeps its own settings.
    tune_env = {k: os.environ.get(k, v) for k, v in (("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1"),
                                                     ("TUNE_GLOBAL_CHECKPOINT_S", "600"))}
    with environ(tune_env):
        return _fit_with_tune(recording, policies, episodes, base, dims, start, start_cfg,
                              start_report, start_score, budget, seed, num_cpus,
                              max_concurrent, storage_path, guard)


def _fit_with_tune(recording, policies, episodes, base, dims, start, start_cfg, start_report,
                   start_score, budget, seed, num_cpus, max_concurrent, storage_path,
                   guard) -> FitResult:
    import ray
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from ray.tune.search import ConcurrencyLimiter

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    searcher = ConcurrencyLimiter(
        TwinSearch(dims, start, budget, seed=seed, metric="objective"),
        max_concurrent=max_concurrent)
    start_errors = closed_loop_errors(start_report)
    payload = {"base": to_dict(base), "recording": recording, "policies": dict(policies),
               "episodes": episodes, "start_errors": start_errors, "guard": guard}
    own_storage = storage_path is None
    storage = Path(storage_path or tempfile.mkdtemp(prefix="twin_fit_")).resolve()
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trial, payload=payload), {"cpu": 1}),
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget,
                                        metric="objective", mode="min", reuse_actors=True),
            run_config=tune.RunConfig(name="twin_fit", storage_path=str(storage), verbose=0,
                                      callbacks=[JsonLoggerCallback()]),
        )
        results = tuner.fit()
        scored = [(r.metrics["score"], r.metrics["over"], r.config) for r in results
                  if not r.error and r.metrics and "score" in r.metrics]
    finally:
        if own_storage:
            shutil.rmtree(storage, ignore_errors=True)
    best, best_score = dict(start), start_score
    for score, over, config in scored:
        if not over and math.isfinite(score) and score < best_score:
            best, best_score = {k: float(config[k]) for k in start}, float(score)
    best_cfg = candidate_config(base, best)
    best_report = validate(recording, best_cfg, policies, episodes).report
    best_score = fit_score(best_report)
    # never worse than the start (kept as a candidate), never inadmissible
    if best_score > start_score or worse_than(start_errors, best_report, guard):
        best, best_cfg, best_report, best_score = start, start_cfg, start_report, start_score
    return FitResult(start, best, start_score, best_score, start_report, best_report,
                     best_cfg, len(scored), sum(1 for _, over, _ in scored if over))


def _diff(value: Any, default: Any) -> Any:
    """The part of ``value`` that differs from ``default`` (None when nothing does)."""
    if isinstance(value, dict) and isinstance(default, dict):
        out = {}
        for key, v in value.items():
            d = _diff(v, default.get(key)) if key in default else v
            if d is not None:
                out[key] = d
        return out or None
    return None if value == default else value


def partial_config(config: FarmConfig, always: Sequence[str] = ("timing",)) -> dict[str, Any]:
    """``config`` as a partial YAML mapping: what differs from the packaged default, plus the
    whole ``always`` sections (so a fitted file states every timing it was fitted with)."""
    data, default = to_dict(config), to_dict(load_config())
    out = _diff(data, default) or {}
    for key in always:
        out[key] = data[key]
    return out


def write_fitted(result: FitResult, path: str | Path, recording: Recording) -> Path:
    """Write the fitted configuration as a partial config YAML (``--config`` loads it)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Twin timing fitted by python -m rl_autoscaling.calibrate fit to\n"
              f"# {recording.path} ({result.trials} Ray Tune trials).\n"
              f"# Validation score {result.start_score:.4f} at the start, "
              f"{result.best_score:.4f} fitted (lower is better).\n"
              f"# Fitted: " + ", ".join(f"{k} = {v:.4g}" for k, v in result.best.items()) + "\n")
    body = yaml.safe_dump(partial_config(result.config), sort_keys=False)
    p.write_text(header + body)
    load_config(p)  # what we wrote must load
    return p


__all__ = ["FitError", "FitResult", "PARAMETERS", "TwinSearch", "candidate_config",
           "dimensions", "fit", "objective", "overrides_for", "partial_config", "start_point",
           "write_fitted"]
