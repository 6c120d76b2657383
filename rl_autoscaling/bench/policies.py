"""Policy benchmark: ``python -m rl_autoscaling.bench policies [options]``.

For each workload (the default, the default with phase shuffle, a spike) and each agent (every
baseline, plus SARSA / DQN when ``--model`` / ``--dqn-model`` are given) it runs the same
seeded episodes (episode i: ``reset(seed=seed + i)``, identical for every agent) and prints a
table of mean +- std over episodes: final QoS, mean and max workers, scaling actions, total
reward, and mean workers divided by the work-conserving lower bound
``LB = total processing seconds / episode seconds`` (the fewest workers that could have done
the episode's work in the time it took; a ratio near 1 runs close to the limit, below 1 means
work was left undone). Every per-episode figure comes from ``metrics.EpisodeTrace``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..common.metrics import mean_std
from ..training.agents import BASELINES, AgentError, AgentOptions, build_policies, resolve_agents
from ..training.compare import UsageError, run_policy_episode


def spike_phases() -> list[dict[str, Any]]:
    """The spike workload: 60 s steady at x1.0, then a 60 s phase at x1.0 with a x3.0 spike
    from 15 s to 30 s, then 60 s steady at x1.0 (300 + 450 + 300 = 1050 tasks).

    Built as a ``phase_definitions`` override of the default configuration.
    """
    return [
        {"name": "Steady", "multiplier": 1.0, "phase_duration": 60, "pattern": "steady"},
        {"name": "Spike", "multiplier": 1.0, "phase_duration": 60, "pattern": "spike",
         "spike_multiplier": 3.0, "spike_start": 15, "spike_duration": 15},
        {"name": "Steady After Spike", "multiplier": 1.0, "phase_duration": 60,
         "pattern": "steady"},
    ]


#: Workload name -> extra env keyword arguments.
WORKLOADS: dict[str, dict[str, Any]] = {
    "default": {},
    "shuffle": {"phase_shuffle": True, "phase_shuffle_seed": None},
    "spike": {"config": {"phase_definitions": spike_phases()}},
}

COLUMNS = (("final_qos", "final QoS", 3), ("mean_workers", "mean W", 2),
           ("max_workers", "max W", 1), ("scaling_actions", "scalings", 1),
           ("total_reward", "reward", 1), ("lb_ratio", "mean W / LB", 2))


def bench_workload(workload: str, agents: Sequence[str], opts: AgentOptions, episodes: int,
                   seed: int, env_args: Mapping[str, Any]) -> dict[str, Any]:
    """Run every agent on ``episodes`` seeded episodes of ``workload``.

    Returns ``{"lower_bound": (mean, std), "agents": {name: {metric: (mean, std)}}}``; the
    lower bound is averaged over every agent's episodes (episode length varies by agent).
    """
    from ..env import OpenFaaSAutoscalingEnv

    kwargs = {**env_args, **WORKLOADS[workload]}
    policies = build_policies(agents, opts)
    seeds = [seed + i for i in range(episodes)]
    out: dict[str, Any] = {"agents": {}}
    bounds: list[float] = []
    for name, policy in policies.items():
        env = OpenFaaSAutoscalingEnv(**kwargs)
        rows: dict[str, list[float]] = {key: [] for key, _, _ in COLUMNS}
        lbs = []
        for s in seeds:
            trace, extra = run_policy_episode(env, policy, s)
            summary = trace.summary()
            lb = extra["total_work"] / extra["episode_seconds"]
            lbs.append(lb)
            for key, _, _ in COLUMNS[:-1]:
                rows[key].append(float(summary[key]))
            rows["lb_ratio"].append(summary["mean_workers"] / lb if lb > 0 else math.nan)
        env.close()
        bounds += lbs
        out["agents"][name] = {key: mean_std(vals) for key, vals in rows.items()}
    out["lower_bound"] = mean_std(bounds)
    return out


def format_table(workload: str, result: Mapping[str, Any], episodes: int) -> str:
    """A Markdown table for one workload."""
    lb_mean, lb_std = result["lower_bound"]
    lines = [f"### {workload} ({episodes} episodes; work-conserving LB "
             f"{lb_mean:.2f} +- {lb_std:.2f} workers)", "",
             "| agent | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, row in result["agents"].items():
        cells = [f"{row[key][0]:.{d}f} +- {row[key][1]:.{d}f}" for key, _, d in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl_autoscaling.bench policies",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=20, help="seeded episodes per agent (>= 1)")
    p.add_argument("--seed", type=int, default=42, help="episode i uses reset(seed=seed + i)")
    p.add_argument("--workloads", nargs="+", choices=tuple(WORKLOADS), default=list(WORKLOADS),
                   help="workloads to run")
    p.add_argument("--agents", nargs="+", metavar="NAME",
                   help="agents (default: every baseline, plus sarsa/dqn when a model is given)")
    p.add_argument("--model", help="SARSA model (.pkl)")
    p.add_argument("--dqn-model", help="DQN model (.pt)")
    p.add_argument("--max-steps", type=int, default=30, help="steps per episode")
    p.add_argument("--step-duration", type=float, default=8.0, help="seconds per step")
    p.add_argument("--observation-window", type=float, default=8.0, help="observation window, s")
    p.add_argument("--initial-workers", type=int, default=12, help="workers at reset")
    p.add_argument("--static-workers", type=int, default=None,
                   help="N for agent 'static' (default: --initial-workers)")
    p.add_argument("--keda-target", type=float, default=5.0,
                   help="KEDA queued tasks per worker (listLength)")
    p.add_argument("--keda-window", type=float, default=300.0,
                   help="KEDA scale-down stabilisation window, seconds")
    p.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bench policies``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.episodes < 1:
            raise UsageError("--episodes must be >= 1")
        names = [n for v in (args.agents or []) for n in v.split(",") if n.strip()]
        if not names:
            names = (["sarsa"] if args.model else []) + (["dqn"] if args.dqn_model else []) + [
                b.lower() for b in BASELINES]
        agents = resolve_agents(names)
        opts = AgentOptions(initial_workers=args.initial_workers,
                            step_duration=args.step_duration, model=args.model,
                            dqn_model=args.dqn_model, static_workers=args.static_workers,
                            keda_target=args.keda_target, keda_window=args.keda_window)
        build_policies(agents, opts)  # fail fast: unknown names, missing models
        env_args = dict(max_steps=args.max_steps, step_duration=args.step_duration,
                        observation_window=args.observation_window,
                        initial_workers=args.initial_workers)
        results = {}
        for workload in args.workloads:
            results[workload] = bench_workload(workload, agents, opts, args.episodes,
                                               args.seed, env_args)
            print(format_table(workload, results[workload], args.episodes) + "\n", flush=True)
    except (UsageError, AgentError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


bench_policies = main  # the name the issue asks for

if __name__ == "__main__":
    sys.exit(main())
