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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..common.metrics import EpisodeTrace, mean_std
from ..common.rollout import run_episode
from ..farm.live import add_live_arguments, live_backend_options
from ..policies.base import Policy
from .agents import (
    BASELINES,
    AgentError,
    AgentOptions,
    build_policies,
    canonical_name,
    is_baseline,
    resolve_agents,
)
from .cli import BACKENDS

RESULTS_FILE = "aggregated_results.json"
LOG_FILE = "comparison.log"
PLOTS_FILE = "comparison_plots.png"
SCATTER_FILE = "qos_vs_workers.png"
SUMMARY_KEYS = ("steps", "total_reward", "mean_reward", "mean_qos", "final_qos_total",
                "mean_workers", "max_workers", "scaling_actions", "noop_actions")
STEP_LISTS = ("rewards", "qos_rates", "worker_counts", "actions", "queue_lengths",
              "avg_times", "max_times", "arrival_rates")
# Settings that must match for cached records to be like-for-like.
FAIR_KEYS = ("max_steps", "step_duration", "observation_window", "initial_workers",
             "min_workers", "max_workers", "phase_shuffle", "phase_shuffle_seed", "config")


class UsageError(Exception):
    """A problem with the command line or its inputs; printed as one ``error:`` line."""


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rl_autoscaling.compare_policies",
        description="Compare SARSA / DQN models with the reactive, KEDA and static baselines "
                    "on the same seeded episodes.")
    p.add_argument("--model", help="SARSA model (.pkl) for agent 'sarsa'")
    p.add_argument("--dqn-model", help="DQN model (.pt) for agent 'dqn'")
    p.add_argument("--agents", nargs="+", metavar="NAME",
                   help="agents to run: sarsa dqn reactiveaverage reactivemaximum keda static "
                        "static<N> (case-insensitive; spaces, '-' and '_' ignored; default: "
                        "the baselines, plus sarsa/dqn when their model is given)")
    p.add_argument("--episodes", type=int, default=1, help="episodes per agent")
    p.add_argument("--max-steps", type=int, default=30, help="steps per episode")
    p.add_argument("--step-duration", type=float, default=8.0, help="seconds per step")
    p.add_argument("--observation-window", type=float, default=8.0,
                   help="seconds of completed tasks behind the time/QoS observations")
    p.add_argument("--initial-workers", type=int, default=12, help="workers at reset")
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
    return p


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _split_names(values: Sequence[str] | None) -> list[str]:
    return [n for v in (values or []) for n in v.split(",") if n.strip()]


def episode_seeds(base: int, episodes: int) -> list[int]:
    """The reset seed of each episode index, shared by every agent."""
    return [int(base) + i for i in range(episodes)]


def env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(max_steps=args.max_steps, step_duration=args.step_duration,
                observation_window=args.observation_window,
                initial_workers=args.initial_workers, min_workers=args.min_workers,
                max_workers=args.max_workers, phase_shuffle=args.phase_shuffle,
                phase_shuffle_seed=args.phase_shuffle_seed, config=args.config,
                backend=args.backend,
                backend_options=live_backend_options(args) if args.backend == "live" else None)


def settings_of(args: argparse.Namespace, seeds: Sequence[int]) -> dict[str, Any]:
    s = env_kwargs(args)
    s.pop("backend_options")
    s["config"] = None if args.config is None else str(Path(args.config).resolve())
    return {**s, "episode_seeds": list(seeds), "seed": args.seed, "task_seed": args.task_seed}


# --------------------------------------------------------------------------- simulation


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
        mean, std = mean_std(values)
        summary[key] = {"mean": mean, "std": std}
    return {"records": list(records), "summary": summary}


def load_results(path: str | Path) -> dict[str, Any]:
    """Read ``aggregated_results.json`` from a compare directory (or the file itself)."""
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


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- output


def _fmt(value: Any, width: int, digits: int = 2) -> str:
    if isinstance(value, (int, np.integer)):
        return f"{int(value):>{width}d}"
    return f"{float(value):>{width}.{digits}f}"


def step_table(record: Mapping[str, Any]) -> list[str]:
    """The per-step table of one record."""
    header = (f"{'step':>4} {'delta':>5} {'workers':>7} {'worker_q':>8} {'avg_t':>7} "
              f"{'max_t':>7} {'arrival':>7} {'qos':>6} {'reward':>8} {'cum_rew':>9}")
    lines = [header]
    cum = 0.0
    n = len(record.get("rewards", []))
    get = lambda key, i: record.get(key, [math.nan] * n)[i]  # noqa: E731
    for i in range(n):
        cum += float(record["rewards"][i])
        lines.append(
            f"{i + 1:>4d} {int(get('actions', i)):>+5d} {_fmt(get('worker_counts', i), 7, 0)} "
            f"{_fmt(get('queue_lengths', i), 8, 0)} {_fmt(get('avg_times', i), 7)} "
            f"{_fmt(get('max_times', i), 7)} {_fmt(get('arrival_rates', i), 7)} "
            f"{_fmt(get('qos_rates', i), 6, 3)} {_fmt(record['rewards'][i], 8)} {_fmt(cum, 9)}")
    return lines


def summary_table(agents: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One row per agent: mean +- std of the record summaries."""
    cols = [("total_reward", "reward", 1), ("mean_qos", "mean QoS", 3),
            ("final_qos_total", "final QoS", 3), ("mean_workers", "mean W", 2),
            ("max_workers", "max W", 1), ("scaling_actions", "scalings", 1),
            ("noop_actions", "no-ops", 1)]
    width = max([5] + [len(n) for n in agents])
    lines = [f"{'agent':<{width}} {'eps':>3} " + " ".join(f"{title:>17}" for _, title, _ in cols)]
    for name, entry in agents.items():
        s = entry["summary"]
        cells = []
        for key, _, digits in cols:
            m = s.get(key, {"mean": math.nan, "std": math.nan})
            cells.append(f"{m['mean']:.{digits}f} +- {m['std']:.{digits}f}".rjust(17))
        lines.append(f"{name:<{width}} {len(entry['records']):>3d} " + " ".join(cells))
    return lines


def write_log(path: Path, agents: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any],
              sources: Mapping[str, str]) -> None:
    """``comparison.log``: settings, a per-step table per episode and agent, the summary."""
    lines = ["# compare_policies", "settings: " + json.dumps(settings, sort_keys=True)]
    seeds = settings.get("episode_seeds", [])
    n_eps = max((len(e["records"]) for e in agents.values()), default=0)
    for ep in range(n_eps):
        seed = seeds[ep] if ep < len(seeds) else "?"
        for name, entry in agents.items():
            if ep >= len(entry["records"]):
                continue
            rec = entry["records"][ep]
            s = rec["summary"]
            lines += ["", f"=== episode {ep + 1}/{n_eps} | {name} | seed {seed} | "
                          f"{sources.get(name, 'simulated')} ==="]
            lines += step_table(rec)
            lines.append(
                f"summary: steps {s['steps']} total_reward {s['total_reward']:.2f} "
                f"mean_qos {s['mean_qos']:.3f} final_qos {s['final_qos_total']:.3f} "
                f"mean_workers {s['mean_workers']:.2f} max_workers {s['max_workers']:.0f} "
                f"scaling {s['scaling_actions']} noop {s['noop_actions']}")
    lines += ["", "=== summary (mean +- std over episodes) ===", *summary_table(agents)]
    path.write_text("\n".join(lines) + "\n")


def _per_step(records: Sequence[Mapping[str, Any]], key: str,
              scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean and std of ``key`` across records (episodes of unequal length allowed)."""
    series = [np.asarray(r.get(key, []), dtype=float) * scale for r in records]
    n = max((s.size for s in series), default=0)
    mean, std = np.full(n, np.nan), np.full(n, np.nan)
    for k in range(n):
        vals = [s[k] for s in series if s.size > k]
        mean[k], std[k] = mean_std(vals)
    return np.arange(1, n + 1), mean, std


def plot_comparison(agents: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """2x2 panels (processing time, QoS %, workers, worker queue), mean +- std per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [("avg_times", "Processing time (s)", 1.0, None),
              ("qos_rates", "QoS (%)", 100.0, 100.0),
              ("worker_counts", "Workers", 1.0, None),
              ("queue_lengths", "Worker queue (tasks)", 1.0, None)]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), sharex=True)
    for ax, (key, title, scale, top) in zip(axes.flat, panels):
        for i, (name, entry) in enumerate(agents.items()):
            steps, mean, std = _per_step(entry["records"], key, scale)
            if not steps.size:
                continue
            color = f"C{i % 10}"
            ax.plot(steps, mean, color=color, label=f"{name} (n={len(entry['records'])})")
            low, high = np.maximum(mean - std, 0.0), mean + std  # bands stay in range
            if top is not None:
                high = np.minimum(high, top)
            ax.fill_between(steps, low, high, color=color, alpha=0.18, lw=0)
        ax.set_title(title)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("Step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Policy comparison (mean ± std per step, same seeded episodes)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def plot_scatter(agents: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """Final QoS (%) against mean workers, one point per episode, one marker per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for i, (name, entry) in enumerate(agents.items()):
        xs = [r["summary"]["mean_workers"] for r in entry["records"]]
        ys = [100.0 * r["summary"]["final_qos_total"] for r in entry["records"]]
        ax.scatter(xs, ys, marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}", s=42,
                   alpha=0.8, label=name)
    ax.set_xlabel("Mean workers per episode")
    ax.set_ylabel("Final QoS (%)")
    ax.set_title("QoS vs cost (one point per episode)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _new_run_dir(base: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        path = base / (f"compare_{stamp}" if i == 0 else f"compare_{stamp}_{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UsageError(f"cannot create a run directory under {base}")


# --------------------------------------------------------------------------- main


def plot_only(args: argparse.Namespace) -> int:
    if not args.input_dir:
        raise UsageError("--plot-only needs --input-dir <compare_dir>")
    data = load_results(args.input_dir)
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
    plot_comparison(agents, out / PLOTS_FILE)
    plot_scatter(agents, out / SCATTER_FILE)
    print("\n".join(summary_table(agents)))
    print(f"plots written to {out / PLOTS_FILE} and {out / SCATTER_FILE}")
    return 0


def compare(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..env import OpenFaaSAutoscalingEnv

    if args.episodes < 1:
        raise UsageError("--episodes must be >= 1")
    names = _split_names(args.agents)
    if not names:
        names = (["sarsa"] if args.model else []) + (["dqn"] if args.dqn_model else []) + [
            b.lower() for b in BASELINES]
    agent_names = resolve_agents(names)
    try:
        probe = OpenFaaSAutoscalingEnv(**env_kwargs(args))
    except (ConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    opts = AgentOptions(action_deltas=probe.action_deltas, min_workers=args.min_workers,
                        max_workers=args.max_workers, initial_workers=args.initial_workers,
                        step_duration=args.step_duration, model=args.model,
                        dqn_model=args.dqn_model, static_workers=args.static_workers,
                        keda_target=args.keda_target, keda_window=args.keda_window)
    seeds = episode_seeds(args.task_seed if args.task_seed is not None else args.seed,
                          args.episodes)
    settings = settings_of(args, seeds)

    # Caches are read before any simulation, so a bad path fails fast.
    cached: dict[str, list[dict]] = {}
    for flag, path, wants in (("--baseline-cache", args.baseline_cache, is_baseline),
                              ("--sarsa-cache", args.sarsa_cache, lambda n: n == "SARSA")):
        if not path:
            continue
        data = load_results(path)
        diffs = _settings_mismatch(data.get("settings"), settings)
        if diffs:
            _warn(f"{flag} {path} was simulated with other settings ({'; '.join(diffs)}): "
                  "its records are not like-for-like")
        for name, records in _cached_agents(data).items():
            if name in agent_names and wants(name):
                cached[name] = records[: args.episodes]

    # Build (and load) every agent that still needs simulating, before simulating any.
    to_build = [n for n in agent_names if len(cached.get(n, [])) < args.episodes]
    policies = build_policies(to_build, opts)

    random.seed(args.seed)
    np.random.seed(args.seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(args.seed)

    base = Path(args.output_dir or "runs/comparison")
    run_dir = _new_run_dir(base)
    results: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for name in agent_names:
        records = list(cached.get(name, []))
        if records:
            sources[name] = f"{len(records)} cached"
            print(f"{name}: reusing {len(records)} cached episode(s)")
        if len(records) < args.episodes:
            env = OpenFaaSAutoscalingEnv(**env_kwargs(args))
            for ep in range(len(records), args.episodes):
                trace, _ = run_policy_episode(env, policies[name], seeds[ep])
                rec = trace.comparison_record()
                records.append(rec)
                s = rec["summary"]
                print(f"{name} episode {ep + 1}/{args.episodes} (seed {seeds[ep]}): "
                      f"reward {s['total_reward']:.2f} final QoS {s['final_qos_total']:.3f} "
                      f"mean workers {s['mean_workers']:.2f}")
            env.close()
            if name in sources:
                sources[name] += f" + {args.episodes - len(cached[name])} simulated"
        results[name] = aggregate(records)

    (run_dir / RESULTS_FILE).write_text(
        json.dumps({"agents": results, "settings": settings}, indent=2))
    write_log(run_dir / LOG_FILE, results, settings, sources)
    plot_comparison(results, run_dir / PLOTS_FILE)
    plot_scatter(results, run_dir / SCATTER_FILE)
    print("\n".join(summary_table(results)))
    print(f"results written to {run_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return plot_only(args) if args.plot_only else compare(args)
    except (UsageError, AgentError) as exc:
        return _fail(str(exc))
