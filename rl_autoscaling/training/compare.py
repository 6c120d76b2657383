"""Compare trained agents with the baselines: ``python -m rl_autoscaling.compare_policies``.

Every agent plays the same episodes: episode ``i`` of every agent runs on
``env.reset(seed=base + i)`` with ``base = --task-seed`` (or ``--seed`` when no task seed is
given), so all agents face identical workloads, processing times and farm latencies. (The
original toolkit re-drew the workload for each agent, so its comparisons mixed policy and luck.)

Output (docs/artefacts.md): ``<output-dir>/compare_<UTC YYYYmmdd_HHMMSS>/`` with
``aggregated_results.json`` (``{"agents": {Name: {"records": [...], "summary": {metric:
{"mean", "std"}}}}, "settings": {...}}``), ``comparison.log`` (a per-step table per episode
and agent, then the summary), ``comparison_plots.png`` (2x2: processing time, QoS %, workers,
worker queue; mean +- std per step) and ``qos_vs_workers.png`` (final QoS against mean workers,
one point per episode, one marker per agent).

In the records, ``actions`` are the action indices the agents played (0 removes a worker, 1
keeps, 2 adds one: the original toolkit's meaning) and ``applied_deltas`` the worker deltas the
env applied. :func:`load_results` reads either layout (``common.metrics.read_actions``);
``--original-layout`` writes the original toolkit's exact layout (no ``settings``, no
additions to the records).

``--plot-only --input-dir D`` re-renders the plots from ``D/aggregated_results.json`` without
simulating (``--agents`` filters). ``--baseline-cache D`` / ``--sarsa-cache D`` reuse the
baseline / SARSA records stored in ``D`` instead of simulating them again (missing episodes
are simulated with the same seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..common.errors import UserError, run_guarded
from ..common.metrics import ACTION_DELTAS, EpisodeTrace, mean_std, read_actions
from ..common.modelio import atomic_write_json
from ..common.rollout import run_episode
from ..common.rundir import new_run_dir
from ..common.settings import add_flags
from ..config import config_path
from ..env import EnvSettings
from ..farm import BACKENDS
from ..farm.live import add_live_arguments, live_backend_options
from ..policies.base import Policy
from ..reporting.comparison import plot_comparison, plot_scatter
from ..reporting.tables import summary_table, write_log
from .agents import (
    BASELINES,
    CALIBRATED,
    AgentError,
    AgentOptions,
    build_policies,
    calibrate_agents,
    canonical_name,
    is_baseline,
    resolve_agents,
)

RESULTS_FILE = "aggregated_results.json"


LOG_FILE = "comparison.log"


PLOTS_FILE = "comparison_plots.png"


SCATTER_FILE = "qos_vs_workers.png"


SUMMARY_KEYS = ("steps", "total_reward", "mean_reward", "mean_qos", "final_qos_total",
                "mean_workers", "max_workers", "scaling_actions", "noop_actions",
                "worker_seconds", "processed_tasks")


STEP_LISTS = ("rewards", "qos_rates", "worker_counts", "actions", "queue_lengths",
              "avg_times", "max_times", "arrival_rates")


#: the record summary of the original toolkit (the others are this package's additions)
ORIGINAL_SUMMARY_KEYS = SUMMARY_KEYS[:9]


# Settings that must match for cached records to be like-for-like.
FAIR_KEYS = ("max_steps", "step_duration", "observation_window", "initial_workers",
             "min_workers", "max_workers", "phase_shuffle", "phase_shuffle_seed", "config")


class UsageError(UserError):
    """A problem with the command line or its inputs; printed as one ``error:`` line."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rl_autoscaling.compare_policies",
        description="Compare SARSA / DQN models with the reactive, KEDA and static baselines "
                    "on the same seeded episodes.")
    p.add_argument("--model", help="SARSA model (.pkl) for agent 'sarsa'")
    p.add_argument("--dqn-model", help="DQN model (.pt) for agent 'dqn'")
    p.add_argument("--agents", nargs="+", metavar="NAME",
                   help="agents to run: sarsa dqn reactiveaverage reactivemaximum keda hpa "
                        "static static<N> staticbest kedacalibrated hpacalibrated "
                        "(case-insensitive; spaces, '-' "
                        "and '_' ignored; default: the baselines, plus sarsa/dqn when their "
                        "model is given)")
    p.add_argument("--episodes", type=int, default=1, help="episodes per agent")
    # the env settings' one owner (rl_autoscaling.env.EnvSettings): --max-steps,
    # --step-duration, --observation-window, --initial-workers
    add_flags(p, EnvSettings, skip=("task_seed", "phase_shuffle", "phase_shuffle_seed",
                                    "config", "backend", "reward_profile"))
    p.add_argument("--min-workers", type=int, default=1, help="lowest worker count")
    p.add_argument("--max-workers", type=int, default=32, help="highest worker count")
    p.add_argument("--seed", type=int, default=42,
                   help="seeds the agents' RNGs, and the episodes when --task-seed is not set")
    p.add_argument("--task-seed", type=int, default=None,
                   help="episode i of every agent uses reset(seed=task_seed + i)")
    p.add_argument("--phase-shuffle", action="store_true", help="shuffle the phase order")
    p.add_argument("--phase-shuffle-seed", type=int, default=None,
                   help="fixed phase order seed (default: a per-episode order, same for all agents)")
    p.add_argument("--config", help="farm configuration YAML (default: the packaged one)")
    p.add_argument("--backend", choices=BACKENDS, default="simulated",
                   help="farm backend (default %(default)s)")
    add_live_arguments(p)
    p.add_argument("--output-dir", default=None,
                   help="base directory for compare_<ts>/ (default runs/comparison; with "
                        "--plot-only: the input directory)")
    p.add_argument("--plot-only", action="store_true",
                   help="re-plot from --input-dir without simulating")
    p.add_argument("--input-dir", help="a compare_<ts> directory (for --plot-only)")
    p.add_argument("--baseline-cache", metavar="DIR",
                   help="reuse baseline records from DIR/aggregated_results.json")
    p.add_argument("--sarsa-cache", metavar="DIR",
                   help="reuse SARSA records from DIR/aggregated_results.json")
    p.add_argument("--static-workers", type=int, default=None,
                   help="N for agent 'static' (default: --initial-workers)")
    p.add_argument("--keda-target", type=float, default=5.0,
                   help="KEDA queued tasks per worker (listLength)")
    p.add_argument("--keda-window", type=float, default=300.0,
                   help="KEDA scale-down stabilisation window, seconds")
    p.add_argument("--slo", type=float, default=None,
                   help="final-QoS SLO the calibrated baselines (staticbest, kedacalibrated, "
                        "hpacalibrated) "
                        "must meet (default: the config's reward.slo_cost.qos_target, 0.99)")
    p.add_argument("--record", action="store_true",
                   help="make the output a twin-calibration recording: each record also keeps "
                        "its measured step lengths (step_seconds) and the settings embed the "
                        "farm configuration (farm_config); read by python -m "
                        "rl_autoscaling.calibrate")
    p.add_argument("--original-layout", action="store_true",
                   help="write aggregated_results.json in the original toolkit's exact layout "
                        "(no settings, no applied_deltas or other additions; actions are the "
                        "action indices): for tools that read only that layout")
    p.add_argument("--calibration-episodes", type=int, default=20,
                   help="episodes per candidate when calibrating, on seeds disjoint from the "
                        "evaluation seeds (default %(default)s)")
    return p


def _split_names(values: Sequence[str] | None) -> list[str]:
    return [n for v in (values or []) for n in v.split(",") if n.strip()]


def episode_seeds(base: int, episodes: int) -> list[int]:
    """The reset seed of each episode index, shared by every agent."""
    return [int(base) + i for i in range(episodes)]


def env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    max_steps = EnvSettings(max_steps=args.max_steps, step_duration=args.step_duration,
                            config=args.config).resolved_max_steps()
    return dict(max_steps=max_steps, step_duration=args.step_duration,
                observation_window=args.observation_window,
                initial_workers=args.initial_workers, min_workers=args.min_workers,
                max_workers=args.max_workers, phase_shuffle=args.phase_shuffle,
                phase_shuffle_seed=args.phase_shuffle_seed, config=args.config,
                backend=args.backend,
                backend_options=live_backend_options(args) if args.backend == "live" else None)


def settings_of(args: argparse.Namespace, seeds: Sequence[int]) -> dict[str, Any]:
    s = env_kwargs(args)
    s.pop("backend_options")
    s["config"] = None if args.config is None else str(config_path(args.config).resolve())
    out = {**s, "episode_seeds": list(seeds), "seed": args.seed, "task_seed": args.task_seed,
           "slo": slo_of(args), "calibration_episodes": args.calibration_episodes,
           "action_deltas": list(ACTION_DELTAS)}
    if args.backend == "live":  # what a replay on the twin needs to know about the live run
        opts = live_backend_options(args)
        out.update(time_scale=opts["time_scale"], scaler=opts["scaler"])
    if getattr(args, "record", False):
        from ..config import load_config, to_dict

        out["recording"] = True
        out["farm_config"] = to_dict(load_config(args.config))
    return out


def slo_of(args: argparse.Namespace) -> float:
    """``--slo``, else the farm config's SLO (``reward.slo_cost.qos_target``), else 0.99."""
    if args.slo is not None:
        if not 0.0 < args.slo <= 1.0:
            raise UsageError(f"--slo must be in (0, 1], got {args.slo}")
        return float(args.slo)
    from ..config import load_config

    slo_cost = getattr(load_config(args.config).reward, "slo_cost", None)
    return float(slo_cost.qos_target) if slo_cost is not None else 0.99


def run_policy_episode(env, policy: Policy, seed: int) -> tuple[EpisodeTrace, dict[str, float]]:
    """One episode of ``policy`` on ``env.reset(seed=seed)``.

    Returns the trace and extras: ``episode_seconds`` (simulated seconds up to the last
    observation) and ``total_work`` (processing seconds of the episode's workload; NaN when
    the backend does not expose its workload).
    """
    policy.reset()
    elapsed = [0.0]

    def on_step(obs, reward, info) -> None:
        elapsed[0] += float(info.get("step_duration", 0.0))

    trace = run_episode(env, policy.act, seed=seed, on_step=on_step)
    workload = getattr(env.backend, "workload", None)
    total_work = float(workload.total_work) if workload is not None else math.nan
    return trace, {"episode_seconds": elapsed[0], "total_work": total_work}


def aggregate(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"records": records, "summary": {metric: {"mean", "std"}}}`` (population std)."""
    summary = {}
    for key in SUMMARY_KEYS:
        values = [r["summary"][key] for r in records if key in r.get("summary", {})]
        if not values and key in ("worker_seconds", "processed_tasks"):
            continue  # records of the original toolkit have neither
        mean, std = mean_std(values)
        summary[key] = {"mean": mean, "std": std}
    return {"records": list(records), "summary": summary}


def original_layout(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"agents": results}`` in the original toolkit's exact layout: per record the eight
    per-step lists (``actions``: the action indices) and the nine summary values, numbers as
    floats; per agent the summary of those nine. Everything this package adds is left out
    (``settings``, ``applied_deltas``, ``step_seconds``, ``worker_seconds``, ...)."""
    agents = {}
    for name, entry in results.items():
        records = [{**{k: [float(v) for v in r[k]] for k in STEP_LISTS},
                    "summary": {k: float(r["summary"][k]) for k in ORIGINAL_SUMMARY_KEYS}}
                   for r in entry["records"]]
        summary = aggregate(records)["summary"]
        agents[name] = {"records": records,
                        "summary": {k: summary[k] for k in ORIGINAL_SUMMARY_KEYS}}
    return {"agents": agents}


def load_results(path: str | Path) -> dict[str, Any]:
    """Read ``aggregated_results.json`` from a compare directory (or the file itself), in
    either layout: every record comes back with ``actions`` (indices) and ``applied_deltas``
    (``common.metrics.read_actions``), and ``data["actions_read"]`` says how they were read."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"{p} not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {p}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("agents"), dict):
        raise UsageError(f"{p} has no 'agents' mapping (not an aggregated_results.json)")
    data["actions_read"] = read_actions(data)
    return data


def _cached_agents(data: Mapping[str, Any]) -> dict[str, list[dict]]:
    """Cached records by canonical agent name (unknown names are skipped)."""
    out = {}
    for name, entry in data["agents"].items():
        try:
            out[canonical_name(name)] = list(entry.get("records", []))
        except AgentError:
            continue
    return out


def _settings_mismatch(cached: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    if not cached:
        return []
    diffs = [f"{k} {cached[k]!r} != {current[k]!r}" for k in FAIR_KEYS
             if k in cached and cached[k] != current[k]]
    old, new = cached.get("episode_seeds"), current["episode_seeds"]
    if old is not None:
        n = min(len(old), len(new))
        if list(old[:n]) != list(new[:n]):
            diffs.append(f"episode seeds {old[:n]} != {new[:n]}")
    return diffs


def plot_only(args: argparse.Namespace) -> int:
    if not args.input_dir:
        raise UsageError("--plot-only needs --input-dir <compare_dir>")
    data = load_results(args.input_dir)
    print(f"{args.input_dir}: {data['actions_read']['reason']}")
    agents = data["agents"]
    if args.agents:
        wanted = resolve_agents(_split_names(args.agents))
        by_canon = {}
        for name in agents:
            try:
                by_canon[canonical_name(name)] = name
            except AgentError:
                by_canon[name] = name
        missing = [w for w in wanted if w not in by_canon]
        if missing:
            raise UsageError(f"{', '.join(missing)} not in {args.input_dir} "
                             f"(it has: {', '.join(agents)})")
        agents = {by_canon[w]: agents[by_canon[w]] for w in wanted}
    agents = {name: aggregate(entry.get("records", [])) for name, entry in agents.items()}
    out = Path(args.output_dir) if args.output_dir else Path(args.input_dir)
    if out.suffix == ".json":
        out = out.parent
    out.mkdir(parents=True, exist_ok=True)
    plots, scatter = out / PLOTS_FILE, out / SCATTER_FILE
    if args.agents and not args.output_dir:  # never overwrite the full comparison's plots
        tag = "_".join(agents)
        plots, scatter = (p.with_name(f"{p.stem}_{tag}{p.suffix}") for p in (plots, scatter))
    settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    plot_comparison(agents, plots, tuple(settings.get("action_deltas") or ACTION_DELTAS))
    plot_scatter(agents, scatter, data.get("static_frontier"))
    print("\n".join(summary_table(agents)))
    print(f"plots written to {plots} and {scatter}")
    return 0


def agent_options(args: argparse.Namespace, action_deltas: Sequence[int]) -> AgentOptions:
    """The agents' construction options from the CLI flags."""
    return AgentOptions(action_deltas=tuple(action_deltas), min_workers=args.min_workers,
                        max_workers=args.max_workers, initial_workers=args.initial_workers,
                        step_duration=args.step_duration, model=args.model,
                        dqn_model=args.dqn_model, static_workers=args.static_workers,
                        keda_target=args.keda_target, keda_window=args.keda_window)


def load_caches(caches: Sequence[tuple[str, str | None, Callable[[str], bool]]],
                agent_names: Sequence[str], settings: Mapping[str, Any],
                episodes: int) -> dict[str, list[dict]]:
    """Cached records per agent from ``(flag, path, wants(name))`` caches, read before any
    simulation. A cache made with other settings is refused (UsageError naming the
    differences): its records would not be like-for-like."""
    cached: dict[str, list[dict]] = {}
    for flag, path, wants in caches:
        if not path:
            continue
        data = load_results(path)
        diffs = _settings_mismatch(data.get("settings"), settings)
        if diffs:
            raise UsageError(f"{flag} {path} was simulated with other settings "
                             f"({'; '.join(diffs)}); re-run without it")
        for name, records in _cached_agents(data).items():
            if name in agent_names and wants(name):
                cached[name] = records[:episodes]
    return cached


def simulate_agents(agent_names: Sequence[str], policies: Mapping[str, Policy],
                    env_kwargs: Mapping[str, Any], seeds: Sequence[int],
                    cached: Mapping[str, list[dict]] | None = None,
                    progress: Callable[[str], None] | None = None,
                    record_timing: bool = False,
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every agent on the same episode seeds (cached records first): ``(results, sources)``
    where ``results[name]`` is :func:`aggregate` of its records and ``sources[name]`` says
    how many were cached and simulated. ``record_timing`` keeps each step's measured length
    in the records (``step_seconds``, for twin calibration)."""
    from ..env import OpenFaaSAutoscalingEnv

    cached = cached or {}
    episodes = len(seeds)
    results: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for name in agent_names:
        records = list(cached.get(name, []))
        if records:
            sources[name] = f"{len(records)} cached"
            if progress:
                progress(f"{name}: reusing {len(records)} cached episode(s)")
        if len(records) < episodes:
            env = OpenFaaSAutoscalingEnv(**env_kwargs)
            try:
                for ep in range(len(records), episodes):
                    trace, _ = run_policy_episode(env, policies[name], seeds[ep])
                    rec = trace.comparison_record(timing=record_timing)
                    records.append(rec)
                    if progress:
                        s = rec["summary"]
                        progress(f"{name} episode {ep + 1}/{episodes} (seed {seeds[ep]}): "
                                 f"reward {s['total_reward']:.2f} final QoS "
                                 f"{s['final_qos_total']:.3f} mean workers "
                                 f"{s['mean_workers']:.2f}")
            finally:
                env.close()
            if name in sources:
                sources[name] += f" + {episodes - len(cached[name])} simulated"
        results[name] = aggregate(records)
    return results, sources


def write_comparison(run_dir: Path, results: Mapping[str, Mapping[str, Any]],
                     settings: Mapping[str, Any], sources: Mapping[str, str],
                     frontier: Sequence[Mapping[str, float]] | None = None,
                     original: bool = False) -> None:
    """``aggregated_results.json`` (with the ``static_frontier`` when given; in the original
    toolkit's layout with ``original``), ``comparison.log`` and both plots into ``run_dir``."""
    data: dict[str, Any] = {"agents": results, "settings": settings}
    if frontier:
        data["static_frontier"] = list(frontier)
    atomic_write_json(run_dir / RESULTS_FILE, original_layout(results) if original else data)
    write_log(run_dir / LOG_FILE, results, settings, sources)
    plot_comparison(results, run_dir / PLOTS_FILE)
    plot_scatter(results, run_dir / SCATTER_FILE, frontier)


def frontier_on(env_args: Mapping[str, Any], seeds: Sequence[int]) -> list[dict[str, float]]:
    """The static frontier (Static N for every N the env allows) on the twin, on the
    comparison's own episode seeds."""
    from dataclasses import asdict

    from ..env import OpenFaaSAutoscalingEnv
    from .calibration import static_frontier

    env = OpenFaaSAutoscalingEnv(**{**env_args, "backend": "simulated", "backend_options": None})
    try:
        points = static_frontier(env, range(env.min_workers, env.max_workers + 1), seeds)
    finally:
        env.close()
    return [asdict(p) for p in points]


def calibrate_for(names: Sequence[str], args: argparse.Namespace, slo: float) -> dict:
    """The calibrated baselines among ``names``, searched on the comparison's env."""
    from ..env import OpenFaaSAutoscalingEnv
    from .calibration import calibration_seeds

    if not any(n in CALIBRATED for n in names):
        return {}
    if args.calibration_episodes < 1:
        raise UsageError("--calibration-episodes must be >= 1")
    env = OpenFaaSAutoscalingEnv(**{**env_kwargs(args), "backend": "simulated",
                                    "backend_options": None})
    try:
        found = calibrate_agents(names, env, slo, calibration_seeds(args.calibration_episodes))
    finally:
        env.close()
    for name, (_, cal) in found.items():
        print(f"{name}: calibrated on the twin for SLO {slo:.3f} over "
              f"{args.calibration_episodes} seeds: {cal.params} (QoS {cal.stats.final_qos:.4f}, "
              f"mean workers {cal.stats.mean_workers:.2f})"
              + ("" if cal.met else " - no candidate meets the SLO"))
    return {name: policy for name, (policy, _) in found.items()}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def compare(args: argparse.Namespace) -> int:
    """The ``compare_policies`` run described by parsed ``args``."""
    from ..env import OpenFaaSAutoscalingEnv

    if args.episodes < 1:
        raise UsageError("--episodes must be >= 1")
    if args.original_layout and args.record:
        raise UsageError("--record needs this package's layout (step_seconds, farm_config); "
                         "drop --original-layout")
    names = _split_names(args.agents)
    if not names:
        names = (["sarsa"] if args.model else []) + (["dqn"] if args.dqn_model else []) + [
            b.lower() for b in BASELINES]
    agent_names = resolve_agents(names)
    probe = OpenFaaSAutoscalingEnv(**env_kwargs(args))
    probe.close()
    seeds = episode_seeds(args.task_seed if args.task_seed is not None else args.seed,
                          args.episodes)
    settings = settings_of(args, seeds)
    cached = load_caches((("--baseline-cache", args.baseline_cache, is_baseline),
                          ("--sarsa-cache", args.sarsa_cache, lambda n: n == "SARSA")),
                         agent_names, settings, args.episodes)
    # Build (and load) every agent that still needs simulating, before simulating any.
    to_build = [n for n in agent_names if len(cached.get(n, [])) < args.episodes]
    opts = agent_options(args, probe.action_deltas)
    opts.calibrated = calibrate_for(to_build, args, settings["slo"])
    policies = build_policies(to_build, opts)
    run_dir = new_run_dir(args.output_dir or "runs/comparison", "compare")
    _seed_everything(args.seed)
    results, sources = simulate_agents(agent_names, policies, env_kwargs(args), seeds, cached,
                                       progress=print, record_timing=args.record)
    frontier = frontier_on(env_kwargs(args), seeds) if args.backend == "simulated" else None
    write_comparison(run_dir, results, settings, sources, frontier, args.original_layout)
    print("\n".join(summary_table(results)))
    if frontier:
        print("\n".join(frontier_lines(results, frontier, settings["slo"])))
    print(f"results written to {run_dir}")
    return 0


def frontier_lines(results: Mapping[str, Any], frontier: Sequence[Mapping[str, float]],
                   slo: float) -> list[str]:
    """Each agent's mean workers as a multiple of the static frontier's at its mean final QoS
    and its final QoS against the frontier's at its mean workers (same episodes), and the
    frontier's workers at the SLO."""
    from .calibration import FrontierPoint, frontier_qos_at, frontier_workers_at

    points = [FrontierPoint(p["final_qos"], p["mean_workers"], 0.0, 0, workers=int(p["workers"]))
              for p in frontier]
    at_slo = frontier_workers_at(points, slo)
    lines = [f"static frontier (Static N, same episodes): {at_slo:.2f} mean workers at the "
             f"SLO {slo:g}" if at_slo == at_slo else
             f"static frontier (Static N, same episodes): no fixed count reaches the SLO {slo:g}"]
    for name, entry in results.items():
        records = entry["records"]
        qos = float(np.mean([r["summary"]["final_qos_total"] for r in records]))
        workers = float(np.mean([r["summary"]["mean_workers"] for r in records]))
        at = frontier_workers_at(points, qos)
        ratio = (f"{workers / at:.3f}x the frontier" if at == at and at > 0
                 else "above the frontier's best QoS")
        gap = qos - frontier_qos_at(points, workers)
        lines.append(f"  {name}: final QoS {qos:.4f} at {workers:.2f} workers = {ratio}; "
                     f"QoS {gap:+.4f} against the frontier's with as many workers")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: plot_only(args) if args.plot_only else compare(args))
