"""Policy benchmark: ``python -m rl_autoscaling.bench policies [options]``.

The evaluation protocol of docs/baselines.md#comparing-fairly, as one command:

1. **Calibrated baselines** per workload: the static frontier (Static N for every N, on the
   evaluation seeds), ``StaticBest``, ``KedaCalibrated`` and ``HpaCalibrated`` (searched on
   calibration seeds), next to KEDA and the HPA with their defaults and ``ReactiveMaximum``;
   and the **clairvoyant** anchor (bench/clairvoyant.py: a look-ahead on copies of the
   episode, which knows the future) on the first ``--clairvoyant-episodes`` evaluation seeds,
   its frontier ratio against the frontier on those seeds.
2. **Trained agents**: each algorithm is trained by its default command (``python -m
   rl_autoscaling.train_<algo> --output-dir ...`` plus the workload's flags) with
   ``--train-seeds`` training seeds k = ``--first-train-seed`` (0) on; training seed k uses
   ``--seed 42 + k`` and workload seeds from ``--task-seed (k + 1) * 10000`` on, so no two
   seeds share a workload (training is deterministic per seed: ``--first-train-seed 3
   --train-seeds 3`` adds seeds 3-5 to a run of seeds 0-2 instead of repeating them).
3. **Evaluation** greedily on ``--eval-episodes`` episode seeds from 500 000 on: disjoint from
   every training seed and from the calibration seeds (900 000 on). Each trained model is
   also evaluated on the other workloads (train-on-one / evaluate-on-another).

Workloads: ``default``, ``shuffle`` (phase-shuffled default), ``spike`` and ``ramp`` (30 steps,
as before), any packaged profile (``day``, ``flash``, ``mixed``, ...) or a farm YAML path, run
for ``--max-steps`` steps (default for those: the workload's nominal seconds over the step, plus
2 steps to drain; farm.workload.episode_steps). Trainers get the same ``--config`` and
``--max-steps``.

Reported per agent and workload: mean +- 95 % CI over training seeds (t distribution; for
baselines over episodes) of final QoS, mean workers, worker-seconds per completed task and
the ratio of mean workers to the static frontier at the same QoS (below 1: cheaper than any
fixed count reaching that QoS; NaN above the frontier's best QoS), the final QoS minus the
frontier's at the same mean workers (above 0: better than a fixed count that dear; where the
frontier is flat, as on flash crowds, this says more than the ratio), and the frontier's
workers at the SLO. Writes ``report.md``, ``results.json`` (a trained agent's row also
holds each training seed's means, ``per_unit``, to pool with a ``--first-train-seed`` run),
``pareto_<workload>.png``,
``load_<workload>.png`` (workers against the load, per step, on the first evaluation seed, for
every agent) and ``steps_<workload>.png`` (the same, each step the mean over every evaluation
episode and training seed) to ``<output-dir>/bench_<UTC ts>/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..common.errors import UserError, run_guarded
from ..common.modelio import atomic_write_json, atomic_write_text
from ..common.rundir import new_run_dir
from ..config import load_config
from ..env import EnvSettings
from ..farm.workload import episode_steps
from ..policies.hpa import SERVICE_TIME
from ..training.calibration import (
    calibrated_policy,
    calibration_seeds,
    frontier_qos_at,
    frontier_workers_at,
    static_frontier,
)

log = logging.getLogger(__name__)

EVAL_SEED_BASE = 500_000
#: Built-in workload name -> (env keyword arguments, trainer flags); they run 30 steps.
WORKLOADS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "default": ({}, []),
    "shuffle": ({"phase_shuffle": True, "phase_shuffle_seed": None}, ["--phase-shuffle"]),
    "spike": ({"config": "spike"}, ["--config", "spike"]),
    "ramp": ({"config": "ramp"}, ["--config", "ramp"]),
}
#: The recipe's env on the default workload (30 steps of 8 s, 8 s window, 12 workers).
ENV_ARGS = {k: v for k, v in EnvSettings().env_config().items()
            if k in ("max_steps", "step_duration", "observation_window", "initial_workers")}
BASELINES = ("StaticBest", "KedaCalibrated", "HpaCalibrated", "Keda", "Hpa", "ReactiveMaximum")
CLAIRVOYANT = "Clairvoyant"
METRICS = (("final_qos", "final QoS", 4), ("mean_workers", "mean workers", 2),
           ("wsec_per_task", "worker-s / task", 2), ("frontier_ratio", "W / frontier W", 3),
           ("frontier_qos_gap", "QoS - frontier QoS at W", 4))
#: Two-sided 95 % t quantiles by degrees of freedom (1.96 beyond the table).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (t distribution)."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), math.nan
    t = _T95[x.size - 2] if x.size - 2 < len(_T95) else 1.96
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(x.size))


def workload_spec(workload: str, max_steps: int | None = None) -> tuple[dict[str, Any],
                                                                        list[str]]:
    """(env keyword arguments, trainer flags) of ``workload``: a built-in name, a packaged
    profile or a YAML path (ConfigError, a one-line user error, if it cannot be loaded);
    ``max_steps`` None: 30 for the built-ins, else the workload's episode_steps."""
    if workload in WORKLOADS:
        env, flags = WORKLOADS[workload]
        steps = ENV_ARGS["max_steps"] if max_steps is None else max_steps
    else:
        cfg = load_config(workload)
        env, flags = {"config": workload}, ["--config", workload]
        steps = (episode_steps(cfg, ENV_ARGS["step_duration"]) if max_steps is None
                 else max_steps)
    return {**ENV_ARGS, **env, "max_steps": int(steps)}, [*flags, "--max-steps", str(steps)]


def file_tag(workload: str) -> str:
    """``workload`` as a file-name part (a YAML path: its stem)."""
    return Path(workload).stem if workload not in WORKLOADS else workload


def make_env(workload: str, max_steps: int | None = None):
    from ..env import OpenFaaSAutoscalingEnv

    return OpenFaaSAutoscalingEnv(**workload_spec(workload, max_steps)[0])


def _figures(traces, frontier) -> dict[str, list[float]]:
    """Per-episode figures of ``traces``; ``example``: the first episode's steps."""
    out: dict[str, Any] = {key: [] for key, _, _ in METRICS}
    out["worker_counts"], out["arrival_rate_rows"] = [], []
    for trace in traces:
        s = trace.summary()
        out["final_qos"].append(s["final_qos"])
        out["mean_workers"].append(s["mean_workers"])
        out["wsec_per_task"].append(s["worker_seconds"] / max(1, s["processed_tasks"]))
        out["frontier_ratio"].append(math.nan)
        out["frontier_qos_gap"].append(math.nan)
        out["worker_counts"].append(list(trace.worker_counts))
        out["arrival_rate_rows"].append(list(trace.arrival_rates))
        if "example" not in out:
            out["example"] = {"worker_counts": list(trace.worker_counts),
                              "arrival_rates": list(trace.arrival_rates),
                              "step_seconds": list(trace.step_seconds)}
    # the ratio compares the policy's mean figures with the frontier at its mean QoS
    q, w = float(np.mean(out["final_qos"])), float(np.mean(out["mean_workers"]))
    out["frontier_ratio"] = [w / frontier_workers_at(frontier, q)] * len(out["final_qos"])
    # and its QoS with the QoS a fixed count reaches with its mean workers
    out["frontier_qos_gap"] = [q - frontier_qos_at(frontier, w)] * len(out["final_qos"])
    return out


def episode_figures(env, policy, seeds: Sequence[int], frontier) -> dict[str, Any]:
    """Per-episode figures of ``policy`` on ``env`` (greedy, one episode per seed)."""
    from ..common.rollout import run_episode

    traces = []
    for seed in seeds:
        policy.reset()
        traces.append(run_episode(env, policy.act, seed=int(seed)))
    return _figures(traces, frontier)


def clairvoyant_figures(env, seeds: Sequence[int], slo: float) -> tuple[dict[str, Any], list]:
    """The clairvoyant's figures on ``seeds`` and the static frontier on those seeds."""
    from .clairvoyant import clairvoyant_episode

    frontier = static_frontier(env, range(env.min_workers, env.max_workers + 1), seeds)
    traces = [clairvoyant_episode(env, int(seed), slo) for seed in seeds]
    return _figures(traces, frontier), frontier


def summarise(per_unit: Sequence[Mapping[str, list[float]]],
              trained: bool = False) -> dict[str, Any]:
    """mean +- CI over units (training seeds), each unit the mean over its episodes; a single
    unit (a baseline) gets its CI over episodes instead. ``trained``: the row also keeps each
    training seed's means (``per_unit``), so runs of other seeds can be pooled with it."""
    means = {key: [float(np.nanmean(u[key])) for u in per_unit] for key, _, _ in METRICS}
    row: dict[str, Any] = {}
    for key, _, _ in METRICS:
        row[key] = mean_ci95(per_unit[0][key] if len(per_unit) == 1 else means[key])
    if trained:
        row["per_unit"] = means
    row["units"] = len(per_unit)
    row["episodes"] = len(per_unit[0]["final_qos"])
    row["example"] = per_unit[0].get("example")
    # step by step over every episode (of every unit) still running at that step: episodes
    # that drain early (the default workload's end at 25-30 steps) leave the later means
    row["per_step_workers"] = _ragged_mean([r for u in per_unit for r in u["worker_counts"]])
    row["per_step_arrival_rate"] = _ragged_mean(
        [r for u in per_unit for r in u.get("arrival_rate_rows", [])])
    return row


def _ragged_mean(rows: Sequence[Sequence[float]]) -> list[float]:
    """Per-index mean of rows of unequal length (each index over the rows that reach it)."""
    if not rows:
        return [math.nan]
    padded = np.full((len(rows), max(len(r) for r in rows)), np.nan)
    for i, r in enumerate(rows):
        padded[i, :len(r)] = r
    return np.nanmean(padded, axis=0).tolist()


def train(algo: str, workload: str, k: int, out: Path, extra: Sequence[str],
          max_steps: int | None = None) -> tuple[Path, float]:
    """Train ``algo`` by its default command on ``workload`` with training seed ``k``; the
    chosen model file (``<algo>_best.*`` if written, else ``<algo>_final.*``) and wall time."""
    run_base = out / "train" / f"{algo}_{file_tag(workload)}_s{k}"
    cmd = [sys.executable, "-m", f"rl_autoscaling.train_{algo}", "--output-dir", str(run_base),
           "--seed", str(42 + k), "--task-seed", str((k + 1) * 10_000),
           *workload_spec(workload, max_steps)[1], *extra]
    log.info("training: %s", " ".join(cmd[1:]))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise UserError(f"training failed ({' '.join(cmd[1:])}): "
                        f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")
    suffix = ".pkl" if algo == "sarsa" else ".pt"
    (run,) = sorted(run_base.glob(f"{algo}_run_*"))[-1:]
    for tag in ("best", "final"):
        model = run / "models" / f"{algo}_{tag}{suffix}"
        if model.is_file():
            return model, wall
    raise UserError(f"training wrote no model under {run}")


def load_trained(algo: str, path: Path):
    if algo == "sarsa":
        from ..algorithms.sarsa.policy import SarsaPolicy

        return SarsaPolicy.load(path)
    from ..algorithms.dqn.policy import DqnPolicy

    return DqnPolicy.load(path)


def baseline_rows(env, args: argparse.Namespace, eval_seeds: Sequence[int],
                  cal_seeds: Sequence[int], frontier) -> dict[str, Any]:
    """The baselines' rows on ``env``: calibrated ones (searched on ``cal_seeds``), the
    defaults, and the clairvoyant on the first ``--clairvoyant-episodes`` seeds."""
    from ..training.agents import AgentOptions, build_policy

    rows: dict[str, Any] = {}
    for name in BASELINES:
        if name in ("StaticBest", "KedaCalibrated", "HpaCalibrated"):
            policy, cal = calibrated_policy(name, env, args.slo, cal_seeds)
            extra = {"params": cal.params, "slo_met_in_calibration": cal.met}
        else:
            policy, extra = build_policy(name, AgentOptions(
                action_deltas=env.action_deltas, min_workers=env.min_workers,
                max_workers=env.max_workers, initial_workers=env.initial_workers,
                step_duration=env.step_duration)), {}
        rows[name] = {**summarise([episode_figures(env, policy, eval_seeds, frontier)]), **extra}
    if args.clairvoyant_episodes:
        seeds = eval_seeds[:args.clairvoyant_episodes]
        figures, own = clairvoyant_figures(env, seeds, args.slo)
        rows[CLAIRVOYANT] = {**summarise([figures]), "eval_seeds": list(seeds),
                             "frontier_at_slo": frontier_workers_at(own, args.slo)}
    return rows


def run_protocol(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    eval_seeds = [EVAL_SEED_BASE + i for i in range(args.eval_episodes)]
    cal_seeds = calibration_seeds(args.calibration_episodes)
    results: dict[str, Any] = {"settings": {**vars(args), "eval_seeds": eval_seeds,
                                            "calibration_seeds": cal_seeds},
                               "workloads": {}}
    frontiers: dict[str, list] = {}
    for workload in args.workloads:
        env = make_env(workload, args.max_steps)
        frontiers[workload] = static_frontier(env, range(env.min_workers, env.max_workers + 1),
                                              eval_seeds)
        rows = baseline_rows(env, args, eval_seeds, cal_seeds, frontiers[workload])
        results["workloads"][workload] = {
            "max_steps": env.max_steps,
            "frontier": [{"workers": p.workers, "final_qos": p.final_qos,
                          "mean_workers": p.mean_workers} for p in frontiers[workload]],
            "frontier_at_slo": frontier_workers_at(frontiers[workload], args.slo),
            "agents": rows}
        env.close()
        print(f"[{workload}] baselines done", flush=True)
    extra = args.trainer_args.split() if args.trainer_args else []
    for algo in args.algos:
        for train_on in args.train_workloads:
            units: dict[str, list] = {w: [] for w in args.workloads}
            walls, reported = [], []
            for k in range(args.first_train_seed, args.first_train_seed + args.train_seeds):
                model, wall = train(algo, train_on, k, out, extra, args.max_steps)
                walls.append(wall)
                report_path = model.parents[1] / "policy_report.json"
                reported.append(json.loads(report_path.read_text()).get("slo_met")
                                if report_path.is_file() else None)
                policy = load_trained(algo, model)
                for workload in args.workloads:
                    env = make_env(workload, args.max_steps)
                    units[workload].append(episode_figures(env, policy, eval_seeds,
                                                           frontiers[workload]))
                    env.close()
                print(f"[{algo} trained on {train_on}, seed {k}] {wall:.0f} s", flush=True)
            for workload in args.workloads:
                name = algo.upper() if workload == train_on else f"{algo.upper()}@{train_on}"
                if workload != train_on and not args.shift:
                    continue
                held_out = [float(np.mean(u["final_qos"])) for u in units[workload]]
                met = [q >= args.slo for q in held_out]
                results["workloads"][workload]["agents"][name] = {
                    **summarise(units[workload], trained=True), "train_wall_s": mean_ci95(walls),
                    "trained_on": train_on, "held_out_qos_per_seed": held_out,
                    "slo_met_seeds": int(sum(met)),
                    "report_slo_met": reported if workload == train_on else None,
                    "report_agrees": (int(sum(r == m for r, m in zip(reported, met)))
                                      if workload == train_on else None)}
    return results


def format_report(results: Mapping[str, Any]) -> str:
    s = results["settings"]
    lines = ["# Policy benchmark", "",
             f"SLO: final QoS >= {s['slo']}; {s['eval_episodes']} evaluation episodes "
             f"(seeds {EVAL_SEED_BASE}..); {s['train_seeds']} training seeds per trained "
             f"agent (k = {s.get('first_train_seed', 0)}..); calibration on "
             f"{s['calibration_episodes']} other seeds. Cells: mean +- "
             "95 % CI (trained: over training seeds; baselines: over episodes). "
             "`ALGO@w`: trained on workload w. "
             f"{CLAIRVOYANT}: knows the future (look-ahead on copies of the episode), on the "
             f"first {s['clairvoyant_episodes']} evaluation seeds, its ratio against the "
             "frontier on those seeds.", ""]
    for workload, data in results["workloads"].items():
        best = max(data["frontier"], key=lambda p: p["final_qos"])
        at_slo = (f"Static frontier at the SLO: {data['frontier_at_slo']:.2f} mean workers."
                  if math.isfinite(data["frontier_at_slo"]) else
                  f"No fixed count reaches the SLO (best: Static {best['workers']} at QoS "
                  f"{best['final_qos']:.4f}).")
        lines += [f"## {workload}", "", f"{data['max_steps']} steps. {at_slo}", "",
                  "| agent | " + " | ".join(t for _, t, _ in METRICS) + " |",
                  "|---|" + "---:|" * len(METRICS)]
        for name, row in data["agents"].items():
            cells = [f"{row[k][0]:.{d}f} +- {row[k][1]:.{d}f}" for k, _, d in METRICS]
            label = f"{name} ({row['episodes']} seeds)" if name == CLAIRVOYANT else name
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        for name, row in data["agents"].items():
            if "slo_met_seeds" not in row:
                continue
            n = len(row["held_out_qos_per_seed"])
            line = (f"- {name}: the chosen model meets the SLO on the held-out seeds for "
                    f"{row['slo_met_seeds']} of {n} training seeds (final QoS per seed: "
                    + ", ".join(f"{q:.4f}" for q in row["held_out_qos_per_seed"]) + ")")
            if row.get("report_agrees") is not None:
                said = sum(bool(r) for r in row["report_slo_met"])
                line += (f"; its policy report said met for {said} of {n}, agreeing with "
                         f"the held-out verdict for {row['report_agrees']} of {n}")
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def plot_load(workload: str, data: Mapping[str, Any], path: Path) -> Path:
    """Workers against the load on the first evaluation seed, for every agent."""
    from ..reporting.load import plot_workers_vs_load

    traces = {name: row["example"] for name, row in data["agents"].items() if row.get("example")}
    return plot_workers_vs_load(f"{workload}: workers against the load (first evaluation seed)",
                                traces, path, SERVICE_TIME)


def plot_mean_steps(workload: str, data: Mapping[str, Any], path: Path) -> Path:
    """Workers against the load step by step, each the mean over every evaluation episode (and
    training seed): a ratchet or a fixed count shows here even where one episode hides it."""
    from ..reporting.load import plot_workers_vs_load

    example = next((row["example"] for row in data["agents"].values() if row.get("example")),
                   None)
    step = float(np.mean(example["step_seconds"])) if example else 8.0
    traces = {name: {"worker_counts": row["per_step_workers"],
                     "arrival_rates": row["per_step_arrival_rate"],
                     "step_seconds": [step] * len(row["per_step_workers"])}
              for name, row in data["agents"].items()
              if np.isfinite(row.get("per_step_workers", [math.nan])[0])}
    return plot_workers_vs_load(f"{workload}: workers against the load, each step's mean over "
                                "every evaluation episode (and training seed)",
                                traces, path, SERVICE_TIME)


def plot_pareto(workload: str, data: Mapping[str, Any], path: Path) -> Path:
    """Final QoS against mean workers: the static frontier as a line, each agent as a point
    with its 95 % CI in both directions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    agents = data["agents"]
    lowest = min(r["final_qos"][0] for r in agents.values()) - 0.05
    pts = [p for p in data["frontier"] if p["final_qos"] >= lowest] or data["frontier"]
    ax.plot([p["mean_workers"] for p in pts], [100 * p["final_qos"] for p in pts], "-",
            color="0.55", label="static frontier (Static N)", zorder=1)
    for p in pts:
        ax.annotate(str(p["workers"]), (p["mean_workers"], 100 * p["final_qos"]), fontsize=6,
                    color="0.45", textcoords="offset points", xytext=(2, -8))
    for i, (name, row) in enumerate(agents.items()):
        (w, dw), (q, dq) = row["mean_workers"], row["final_qos"]
        ax.errorbar([w], [100 * q], xerr=[0 if math.isnan(dw) else dw],
                    yerr=[0 if math.isnan(dq) else 100 * dq], fmt="os^Dv<>P"[i % 8],
                    color=f"C{i % 10}", capsize=3, label=name, zorder=2)
    ax.set_xlabel("Mean workers")
    ax.set_ylabel("Final QoS (%)")
    ax.set_title(f"{workload}: QoS vs cost (mean, 95 % CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl_autoscaling.bench policies",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", nargs="*", choices=("sarsa", "dqn"), default=["sarsa", "dqn"],
                   help="algorithms to train (none: baselines only)")
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), metavar="WORKLOAD",
                   help="workloads to evaluate on: " + ", ".join(WORKLOADS) + ", a packaged "
                        "profile (day, flash, mixed, ...) or a farm YAML path")
    p.add_argument("--train-workloads", nargs="+", default=None, metavar="WORKLOAD",
                   help="workloads to train on (default: the --workloads; each one must be "
                        "among them unless --shift, which reports every trained model on "
                        "every workload)")
    p.add_argument("--shift", action="store_true",
                   help="also report each model on the workloads it was not trained on")
    p.add_argument("--train-seeds", type=int, default=3, help="training seeds per agent")
    p.add_argument("--first-train-seed", type=int, default=0, metavar="K",
                   help="the first training seed (seed k trains with --seed 42+k --task-seed "
                        "(k+1)*10000): extends an earlier run's seeds 0..K-1")
    p.add_argument("--eval-episodes", type=int, default=20, help="evaluation episodes")
    p.add_argument("--max-steps", type=int, default=None,
                   help="steps per episode (default: 30 for the built-in workloads, else the "
                        "workload's nominal seconds / 8 s + 2 steps to drain)")
    p.add_argument("--clairvoyant-episodes", type=int, default=10,
                   help="evaluation seeds (the first ones) the clairvoyant anchor plays "
                        "(~1 s each; 0: skip it)")
    p.add_argument("--calibration-episodes", type=int, default=20,
                   help="episodes per calibration candidate")
    p.add_argument("--slo", type=float, default=0.99, help="final-QoS SLO")
    p.add_argument("--trainer-args", default="",
                   help="extra flags for every trainer, given with '=' since they start with "
                        "'--': --trainer-args='--episodes 100' (default: none, the default "
                        "command)")
    p.add_argument("--output-dir", default="runs", help="where bench_<ts>/ goes")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bench policies``; returns the exit code."""
    args = build_parser().parse_args(argv)

    def go() -> int:
        for flag in ("train_seeds", "eval_episodes", "calibration_episodes", "max_steps"):
            if getattr(args, flag) is not None and getattr(args, flag) < 1:
                raise UserError(f"--{flag.replace('_', '-')} must be >= 1")
        for flag in ("clairvoyant_episodes", "first_train_seed"):
            if getattr(args, flag) < 0:
                raise UserError(f"--{flag.replace('_', '-')} must be >= 0")
        if args.train_workloads is None:
            args.train_workloads = list(args.workloads)
        for workload in {*args.workloads, *args.train_workloads}:
            workload_spec(workload)  # a bad name or file fails before anything runs
        unreported = [w for w in args.train_workloads if w not in args.workloads]
        if args.algos and unreported and not args.shift:
            raise UserError(f"--train-workloads {' '.join(unreported)}: not among --workloads, "
                            "so its models would be trained and reported nowhere (add it to "
                            "--workloads, or pass --shift)")
        if not 0 < args.slo <= 1:
            raise UserError(f"--slo must be in (0, 1], got {args.slo}")
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        out = new_run_dir(args.output_dir, "bench")
        results = run_protocol(args, out)
        report = format_report(results)
        for workload, data in results["workloads"].items():
            plot_pareto(workload, data, out / f"pareto_{file_tag(workload)}.png")
            plot_load(workload, data, out / f"load_{file_tag(workload)}.png")
            plot_mean_steps(workload, data, out / f"steps_{file_tag(workload)}.png")
        atomic_write_json(out / "results.json", results)
        atomic_write_text(out / "report.md", report + "\n")
        print(report)
        print(f"written to {out}")
        return 0

    return run_guarded(go)
