"""How faithful is the twin to a recording? Per-step errors between recorded and twin episodes.

A *recording* is a ``compare_policies`` output (``aggregated_results.json``, or the run
directory holding it): per agent, episode records with per-step lists (``worker_counts``,
``queue_lengths``, ``qos_rates``, ``actions``, ...; docs/artefacts.md) and, when written by
this package, the ``settings`` of the run. Files of the original toolkit (floats, extra keys,
no ``settings``, ``actions`` holding action indices and no ``applied_deltas``) are read too
(``compare.load_results``). ``compare_policies --record`` adds each step's measured length
(``step_seconds``) and the farm configuration (``settings.farm_config``).

Episodes cannot be matched one to one (the real farm's randomness is not the twin's), so the
twin is compared on **per-step means over episodes**: for each metric, the mean absolute
difference between the recording's and the twin's mean at step 1, 2, ... (over the steps that
every episode of both sides reaches; ``episode_steps`` compares the mean episode lengths).
Each recorded agent is replayed on the twin in two ways:

* **closed loop** (agents the product knows: the baselines, and SARSA/DQN when their model is
  given): the agent plays the twin with the recording's settings, one twin episode per
  recorded episode, seeded like the recording (``settings.episode_seeds``);
* **open loop** (every agent): the recorded actions are replayed step by step as the worker
  deltas they applied (``applied_deltas``; in the original layout the deltas of the action
  indices, following the recorded worker counts where an action did not take effect), so both
  sides scale at the same steps. A replay that reproduces the recorded worker counts (MAE at
  most :data:`FAITHFUL_REPLAY`) is *faithful*.

Where the recording has ``step_seconds``, distances between *distributions* are added
(``distances``: the 1-Wasserstein distance of the pooled step lengths, for steps with a
scale-up and for the others, from the open-loop replay): the scale-up latency shows there.

:func:`fit_score` folds a report into one number (each error divided by its unit,
:data:`SCORE_UNITS`) for the fitting in ``service.twin_fit``: the closed-loop errors of the
agents the twin played (what training on the twin depends on) plus, at
:data:`OPEN_LOOP_WEIGHT`, the open-loop errors of the faithful replays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..common.errors import UserError
from ..config import FarmConfig, apply_overrides, from_dict, load_config, to_dict
from ..policies.base import Policy
from .agents import (
    CALIBRATED,
    AgentError,
    AgentOptions,
    build_policy,
    calibrate_agents,
    canonical_name,
)
from .compare import RESULTS_FILE, UsageError, load_results

#: report name -> (record key, factor); ``qos`` is in percentage points
METRICS: dict[str, tuple[str, float]] = {
    "workers": ("worker_counts", 1.0),
    "worker_queue": ("queue_lengths", 1.0),
    "qos": ("qos_rates", 100.0),
    "avg_time": ("avg_times", 1.0),
    "max_time": ("max_times", 1.0),
    "arrival_rate": ("arrival_rates", 1.0),
    "step_seconds": ("step_seconds", 1.0),
}

#: the unit of each error in :func:`fit_score` (an error of one unit adds 1 to the score)
SCORE_UNITS: dict[str, float] = {
    "workers": 1.0, "worker_queue": 5.0, "qos": 5.0, "avg_time": 0.25, "max_time": 0.5,
    "step_seconds": 0.25, "episode_steps": 1.0,
}
DISTANCE_UNITS: dict[str, float] = {"scale_up_step_seconds": 0.25, "step_seconds": 0.25}

#: the weight of an agent's open-loop errors in :func:`fit_score` (its closed-loop ones: 1)
OPEN_LOOP_WEIGHT = 0.5

#: the closed-loop errors a fit must not worsen (``service.twin_fit``, :func:`worse_than`):
#: what the agent does (workers) and what it is judged by (worker queue, QoS)
GUARDED = ("workers", "worker_queue", "qos")

#: an open-loop replay is faithful, and its errors count in :func:`fit_score`, when its worker
#: MAE is at most this: otherwise it did not replay what the recording did
FAITHFUL_REPLAY = 0.5

#: compare_policies' defaults, for recordings without ``settings``
DEFAULT_SETTINGS: dict[str, Any] = {
    "max_steps": 30, "step_duration": 8.0, "observation_window": 8.0, "initial_workers": 12,
    "min_workers": 1, "max_workers": 32, "phase_shuffle": False, "phase_shuffle_seed": None,
    "seed": 42, "task_seed": None, "slo": 0.99, "calibration_episodes": 20,
}


class RecordingError(UserError):
    """A recording cannot be read or used; printed as one ``error:`` line."""


@dataclass
class Recording:
    """The episodes of a recording: ``agents[name]`` are its records (dicts of per-step
    lists), ``settings`` the run's settings as recorded (possibly empty)."""

    path: Path
    agents: dict[str, list[dict[str, Any]]]
    settings: dict[str, Any] = field(default_factory=dict)
    #: how the actions were read (``common.metrics.read_actions``)
    actions_read: dict[str, Any] = field(default_factory=dict)

    def setting(self, key: str) -> Any:
        value = self.settings.get(key)
        if value is None and key == "initial_workers":  # what the original layout implies
            value = self.actions_read.get("initial_workers")
        return DEFAULT_SETTINGS.get(key) if value is None else value

    def max_steps(self) -> int:
        if self.settings.get("max_steps") is not None:
            return int(self.settings["max_steps"])
        longest = max((len(r.get("worker_counts", [])) for rs in self.agents.values()
                       for r in rs), default=0)
        return max(int(DEFAULT_SETTINGS["max_steps"]), longest)

    def seeds(self, episodes: int) -> list[int]:
        """The reset seed of each episode: the recorded ones, then ``base + i``."""
        recorded = [int(s) for s in self.settings.get("episode_seeds") or []]
        base = self.settings.get("task_seed")
        base = int(self.setting("seed") if base is None else base)
        return [recorded[i] if i < len(recorded) else base + i for i in range(episodes)]

    def env_kwargs(self, config: FarmConfig) -> dict[str, Any]:
        """The twin env with the recording's settings (compare_policies' defaults otherwise)."""
        return dict(max_steps=self.max_steps(),
                    step_duration=float(self.setting("step_duration")),
                    observation_window=float(self.setting("observation_window")),
                    initial_workers=int(self.setting("initial_workers")),
                    min_workers=int(self.setting("min_workers")),
                    max_workers=int(self.setting("max_workers")),
                    phase_shuffle=bool(self.setting("phase_shuffle")),
                    phase_shuffle_seed=self.settings.get("phase_shuffle_seed"),
                    config=config, backend="simulated")


def load_recording(path: str | Path) -> Recording:
    """Read a recording: an ``aggregated_results.json`` or a directory holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    try:
        data = load_results(p)
    except UsageError as exc:
        raise RecordingError(f"recording: {exc} (give an aggregated_results.json or the "
                             "compare_<ts> directory holding it)") from None
    agents: dict[str, list[dict[str, Any]]] = {}
    for name, entry in data["agents"].items():
        records = entry.get("records", []) if isinstance(entry, dict) else entry
        usable = [r for r in records or [] if isinstance(r, dict)
                  and isinstance(r.get("worker_counts"), list) and r["worker_counts"]]
        if usable:
            agents[str(name)] = usable
    if not agents:
        raise RecordingError(f"{p} holds no episode with per-step worker_counts")
    settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    return Recording(p, agents, dict(settings), dict(data["actions_read"]))


def twin_config(recording: Recording, config: str | Path | None = None) -> FarmConfig:
    """The twin's configuration: ``config`` when given, else the recording's own
    (``settings.farm_config``, else the file ``settings.config`` if it still exists), else the
    packaged default."""
    if config is not None:
        return load_config(config)
    embedded = recording.settings.get("farm_config")
    if isinstance(embedded, Mapping):
        return from_dict(apply_overrides(to_dict(load_config()), embedded))
    path = recording.settings.get("config")
    if path and Path(str(path)).is_file():
        return load_config(path)
    return load_config()


# --------------------------------------------------------------------------- agents


class ReplayActions(Policy):
    """Open loop: step ``t`` requests the recorded worker delta ``deltas[t]`` (a record's
    ``applied_deltas``; the nearest available delta), then keeps the worker count once the
    recording ends."""

    def __init__(self, deltas: Sequence[float], action_deltas: Sequence[int] = (-1, 0, 1)):
        self.actions = [float(a) for a in deltas]
        self.action_deltas = tuple(int(d) for d in action_deltas)
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def act(self, obs, info=None) -> int:
        want = self.actions[self.t] if self.t < len(self.actions) else 0.0
        self.t += 1
        if not math.isfinite(want):
            want = 0.0
        return min(range(len(self.action_deltas)),
                   key=lambda i: (abs(self.action_deltas[i] - want), abs(self.action_deltas[i])))


def closed_loop_agents(recording: Recording, config: FarmConfig,
                       options: AgentOptions | None = None,
                       progress=None) -> dict[str, Policy]:
    """The recorded agents the product can play, built for the recording's settings: the
    baselines, SARSA/DQN when ``options`` names their model, the calibrated baselines
    (searched on the twin with ``config`` first). Others are left out (open loop only)."""
    from ..env import OpenFaaSAutoscalingEnv
    from .calibration import calibration_seeds

    env_kw = recording.env_kwargs(config)
    opts = options or AgentOptions()
    opts.min_workers, opts.max_workers = env_kw["min_workers"], env_kw["max_workers"]
    opts.initial_workers, opts.step_duration = env_kw["initial_workers"], env_kw["step_duration"]
    known: dict[str, str] = {}
    for name in recording.agents:
        try:
            canon = canonical_name(name)
        except AgentError:
            continue
        if canon == "SARSA" and not opts.model or canon == "DQN" and not opts.dqn_model:
            continue
        known[name] = canon
    calibrated = [c for c in known.values() if c in CALIBRATED]
    if calibrated:
        env = OpenFaaSAutoscalingEnv(**env_kw)
        try:
            n = int(recording.setting("calibration_episodes"))
            found = calibrate_agents(calibrated, env, float(recording.setting("slo")),
                                     calibration_seeds(n))
        finally:
            env.close()
        opts.calibrated = {**dict(opts.calibrated), **{k: p for k, (p, _) in found.items()}}
        if progress:
            for k, (_, cal) in found.items():
                progress(f"{k}: calibrated on the twin: {cal.params}")
    policies = {}
    for name, canon in known.items():
        policies[name] = build_policy(canon, opts)
    return policies


# --------------------------------------------------------------------------- comparing


def per_step_mean(records: Sequence[Mapping[str, Any]], key: str,
                  factor: float = 1.0) -> np.ndarray:
    """Mean of ``key`` at each step over the records that reach it (empty if none has it)."""
    series = [np.asarray(r[key], dtype=float) * factor for r in records
              if isinstance(r.get(key), list) and r[key]]
    n = max((s.size for s in series), default=0)
    out = np.full(n, np.nan)
    for k in range(n):
        vals = [s[k] for s in series if s.size > k and np.isfinite(s[k])]
        if vals:
            out[k] = float(np.mean(vals))
    return out


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Mean |a - b| over the steps both have (NaN, 0 when none)."""
    n = min(a.size, b.size)
    diff = np.abs(a[:n] - b[:n])
    diff = diff[np.isfinite(diff)]
    return (float(diff.mean()), n) if diff.size else (math.nan, 0)


def wasserstein1(a: Sequence[float], b: Sequence[float]) -> float:
    """1-Wasserstein distance between two samples (mean |quantile difference|)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not a.size or not b.size:
        return math.nan
    q = (np.arange(200) + 0.5) / 200
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def step_lengths(records: Sequence[Mapping[str, Any]], scale_up: bool) -> list[float]:
    """Pooled ``step_seconds`` of the steps with (or without) a scale-up."""
    out = []
    for r in records:
        secs, acts = r.get("step_seconds") or [], r.get("applied_deltas") or []
        out += [float(s) for s, a in zip(secs, acts) if (float(a) > 0) == scale_up]
    return out


def errors(recorded: Sequence[Mapping[str, Any]],
           twin: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float], int]:
    """Per-metric MAE of the per-step means over the steps every episode of both sides
    reaches (so an episode ending a step earlier on one side does not skew the last means),
    plus ``episode_steps``: the difference of the mean episode lengths. Returns the errors
    and the number of steps compared."""
    lengths = [len(r.get("worker_counts") or []) for r in [*recorded, *twin]]
    horizon = min(lengths, default=0)
    out: dict[str, float] = {}
    steps = 0
    for name, (key, factor) in METRICS.items():
        mae, n = mean_abs_error(per_step_mean(recorded, key, factor)[:horizon],
                                per_step_mean(twin, key, factor)[:horizon])
        if n:
            out[name] = mae
            steps = max(steps, n)
    if recorded and twin:
        out["episode_steps"] = abs(float(np.mean(lengths[:len(recorded)]))
                                   - float(np.mean(lengths[len(recorded):])))
    return out, steps


def distances(recorded: Sequence[Mapping[str, Any]],
              twin: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Distribution distances of the step lengths (when both sides have them)."""
    out = {}
    for name, up in (("scale_up_step_seconds", True), ("step_seconds", False)):
        d = wasserstein1(step_lengths(recorded, up), step_lengths(twin, up))
        if math.isfinite(d):
            out[name] = d
    return out


def run_twin(env_kw: Mapping[str, Any], episodes: Sequence[tuple[Policy, int]]) -> list[dict]:
    """One twin episode per ``(policy, seed)``; comparison records with ``step_seconds``."""
    from ..common.rollout import run_episode
    from ..env import OpenFaaSAutoscalingEnv

    env = OpenFaaSAutoscalingEnv(**env_kw)
    try:
        out = []
        for policy, seed in episodes:
            policy.reset()
            out.append(run_episode(env, policy.act, seed=int(seed)).comparison_record(timing=True))
        return out
    finally:
        env.close()


def _action_deltas(env_kw: Mapping[str, Any]) -> tuple[int, ...]:
    from ..env import OpenFaaSAutoscalingEnv

    probe = OpenFaaSAutoscalingEnv(**env_kw)
    try:
        return tuple(probe.action_deltas)
    finally:
        probe.close()


@dataclass
class Validation:
    """The report (``as_dict``) and, per agent, the records of each side (for plots)."""

    report: dict[str, Any]
    recorded: dict[str, list[dict]]
    closed_loop: dict[str, list[dict]]
    open_loop: dict[str, list[dict]]


def validate(recording: Recording, config: FarmConfig, policies: Mapping[str, Policy],
             episodes: int | None = None) -> Validation:
    """Replay every recorded agent on the twin with ``config``: closed loop for the agents in
    ``policies`` (see :func:`closed_loop_agents`), open loop for all. Returns the report
    ``{"agents": {name: {"mae", "mae_open_loop", "distances", "steps", "loop",
    "episodes"}}}`` where ``mae`` is the closed-loop error when the agent was played, else the
    open-loop one."""
    env_kw = recording.env_kwargs(config)
    deltas = _action_deltas(env_kw)
    agents_out: dict[str, Any] = {}
    recorded, closed, opened = {}, {}, {}
    for name, all_records in recording.agents.items():
        records = all_records[:episodes] if episodes else all_records
        seeds = recording.seeds(len(records))
        twin_open = run_twin(env_kw, [(ReplayActions(r["applied_deltas"], deltas), s)
                                      for r, s in zip(records, seeds)])
        mae_open, steps_open = errors(records, twin_open)
        entry: dict[str, Any] = {"loop": "open", "mae": mae_open, "mae_open_loop": mae_open,
                                 "steps": steps_open, "episodes": len(records),
                                 "faithful_replay": bool(
                                     mae_open.get("workers", math.inf) <= FAITHFUL_REPLAY),
                                 "distances": distances(records, twin_open)}
        if name in policies:
            twin_closed = run_twin(env_kw, [(policies[name], s) for s in seeds])
            mae_closed, steps_closed = errors(records, twin_closed)
            entry.update(loop="closed", mae=mae_closed, steps=steps_closed)
            closed[name] = twin_closed
        recorded[name], opened[name] = records, twin_open
        agents_out[name] = entry
    report = {"agents": agents_out, "recording": str(recording.path),
              "actions": recording.actions_read.get("reason", ""),
              "units": {"qos": "percentage points", "worker_queue": "tasks",
                        "workers": "workers", "avg_time": "s", "max_time": "s",
                        "arrival_rate": "tasks/s", "step_seconds": "s",
                        "episode_steps": "steps"}}
    report["score"] = fit_score(report)
    return Validation(report, recorded, closed, opened)


def _scaled(errors_: Mapping[str, float], units: Mapping[str, float]) -> float:
    return sum(errors_[k] / u for k, u in units.items()
               if k in errors_ and math.isfinite(errors_[k]))


def fit_score(report: Mapping[str, Any], open_loop_weight: float = OPEN_LOOP_WEIGHT) -> float:
    """One number for a report (lower is better), averaged over the agents that count: per
    agent, its closed-loop errors each divided by its unit (:data:`SCORE_UNITS`) when the twin
    played it, plus ``open_loop_weight`` times its open-loop errors and step-length distances
    (:data:`DISTANCE_UNITS`) when its replay is faithful. The closed loop is what training on
    the twin depends on; the open loop changes smoothly with the parameters (both sides scale
    at the same steps) but says nothing when the replay is not what the recording did. NaN
    when no agent counts."""
    totals = []
    for entry in report["agents"].values():
        closed = entry["loop"] == "closed"
        faithful = entry.get("faithful_replay", False)
        if not closed and not faithful:
            continue
        total = _scaled(entry["mae"], SCORE_UNITS) if closed else 0.0
        if faithful:
            total += open_loop_weight * (_scaled(entry["mae_open_loop"], SCORE_UNITS)
                                         + _scaled(entry.get("distances", {}), DISTANCE_UNITS))
        totals.append(total)
    return float(np.mean(totals)) if totals else math.nan


def closed_loop_errors(report: Mapping[str, Any],
                       metrics: Sequence[str] = GUARDED) -> dict[tuple[str, str], float]:
    """The closed-loop errors of a report in ``metrics``, by (agent, metric)."""
    return {(name, k): float(entry["mae"][k]) for name, entry in report["agents"].items()
            if entry["loop"] == "closed" for k in metrics
            if k in entry["mae"] and math.isfinite(entry["mae"][k])}


@dataclass(frozen=True)
class Guard:
    """How much worse than the start a fit may leave a guarded closed-loop error: up to
    ``max_worse`` (a fraction) above it, or ``floor`` units of the score (:data:`SCORE_UNITS`:
    1 worker, 5 tasks, 5 QoS points) above it when that is more (default 0: the fraction
    alone; small errors are mostly the noise of few episodes, which a floor tolerates)."""

    max_worse: float = 0.10
    floor: float = 0.0

    def limit(self, metric: str, start: float) -> float:
        return max(start * (1.0 + self.max_worse), start + self.floor * SCORE_UNITS[metric])

    def describe(self) -> str:
        return f"the start's error + {100 * self.max_worse:g} %" + (
            f" or + {self.floor:g} score units" if self.floor else "")


def worse_than(start: Mapping[tuple[str, str], float], report: Mapping[str, Any],
               guard: Guard) -> list[tuple[str, str]]:
    """The closed-loop errors of ``report`` above their ``guard`` limit from their value in
    ``start`` (:func:`closed_loop_errors` of the start's report); an error the report lacks
    counts as worse."""
    now = closed_loop_errors(report)
    return [(name, metric) for (name, metric), value in start.items()
            if now.get((name, metric), math.inf) > guard.limit(metric, value) + 1e-9]


def compare_reports(before: Mapping[str, Any], after: Mapping[str, Any],
                    guard: Guard | None = None) -> list[str]:
    """A before/after table, one line per agent, loop and metric of the score: both errors,
    the change, and for the closed-loop errors a fit guards (:data:`GUARDED`) the ``guard``'s
    limit."""
    lines = [f"{'agent':<18} {'loop':<6} {'metric':<14} {'before':>10} {'after':>10} "
             f"{'change':>8} {'limit':>10}"]
    for name, entry in before["agents"].items():
        other = after["agents"].get(name, {})
        loops = ([("closed", "mae")] if entry["loop"] == "closed" else []) + [
            ("open", "mae_open_loop")]
        for loop, key in loops:
            note = "" if loop == "closed" or entry.get("faithful_replay") else \
                "  (replay not faithful: not in the score)"
            for metric in SCORE_UNITS:
                if metric not in entry[key]:
                    continue
                b, a = entry[key][metric], other.get(key, {}).get(metric, math.nan)
                change = f"{(a - b) / b:+8.1%}" if b else f"{'':>8}"
                guarded = loop == "closed" and metric in GUARDED and guard is not None
                limit = f"{guard.limit(metric, b):>10.3f}" if guarded else f"{'':>10}"
                flag = "  OVER" if guarded and a > guard.limit(metric, b) + 1e-9 else ""
                lines.append(f"{name:<18} {loop:<6} {metric:<14} {b:>10.3f} {a:>10.3f} "
                             f"{change} {limit}{flag}{note}")
                note = ""
    lines.append(f"score {before['score']:.4f} -> {after['score']:.4f} (lower is better)")
    return lines


def format_report(report: Mapping[str, Any]) -> list[str]:
    """A table: one line per agent and loop, the errors in the report's units."""
    cols = ["workers", "worker_queue", "qos", "avg_time", "max_time", "step_seconds"]
    lines = [f"{'agent':<18} {'loop':<6} {'steps':>5} " + " ".join(f"{c:>12}" for c in cols)
             + "   (qos in percentage points)"]
    for name, entry in report["agents"].items():
        rows = [("closed", entry["mae"])] if entry["loop"] == "closed" else []
        rows.append(("open", entry["mae_open_loop"]))
        for loop, mae in rows:
            vals = " ".join(f"{mae[c]:>12.3f}" if c in mae else f"{'-':>12}" for c in cols)
            unfaithful = loop == "open" and not entry.get("faithful_replay", True)
            lines.append(f"{name:<18} {loop:<6} {entry['steps']:>5} {vals}"
                         + ("   (replay not faithful)" if unfaithful else ""))
        if entry.get("distances"):
            lines.append(f"{'':<18} W1 step lengths: " + ", ".join(
                f"{k} {v:.3f} s" for k, v in entry["distances"].items()))
    lines.append(f"score {report['score']:.4f} (lower is better)")
    return lines


__all__ = ["DISTANCE_UNITS", "FAITHFUL_REPLAY", "GUARDED", "METRICS", "OPEN_LOOP_WEIGHT",
           "SCORE_UNITS", "Guard", "Recording", "RecordingError", "ReplayActions", "Validation",
           "closed_loop_agents", "closed_loop_errors", "compare_reports", "errors", "fit_score",
           "format_report", "load_recording", "per_step_mean", "twin_config", "validate",
           "wasserstein1", "worse_than"]
