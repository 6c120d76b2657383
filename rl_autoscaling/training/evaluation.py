"""Greedy roll-outs of a trained policy, shared by ``test_sarsa`` and ``test_dqn``.

Plays ``--episodes`` greedy episodes, episode i (0-based) seeded ``--seed + i`` (so two
policies tested with the same flags see the same workloads), prints a per-step table and a
per-episode summary (``total_reward``, ``mean_reward``, ``mean_qos``, ``final_qos``, mean/max
workers, scaling/no-op counts), and writes ``<output dir>/<algo>_eval_<UTC ts>/`` with
``logs/evaluation.log`` and ``plots/episode_NNN.png``; the JSON summary (docs/artefacts.md) goes to
``--output`` and into that directory.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..common.metrics import EpisodeTrace
from ..common.modelio import atomic_write_json
from ..common.rollout import run_episode
from ..common.rundir import new_run_dir
from ..observation import Obs
from ..policies.base import Policy
from .cli import add_env_args, env_config_from_args, positive_int, run_guarded
from .harness import close_logger

STEP_HEADER = (f"{'ep':>3} {'step':>4} {'delta':>5} {'workers':>7} {'queue':>6} {'avg_t':>6} "
               f"{'max_t':>6} {'arrival':>7} {'qos':>6} {'reward':>8}")


def build_parser(algo: str, description: str, model_help: str,
                 default_output: Path) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m rl_autoscaling.test_{algo}",
                                description=description)
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--episodes", type=positive_int, default=5,
                   help="evaluation episodes (default %(default)s)")
    add_env_args(p, task_seed=False)
    p.add_argument("--seed", type=int, default=42,
                   help="episode i is seeded seed + i (default %(default)s)")
    p.add_argument("--output", default=str(default_output),
                   help="summary JSON path (default %(default)s)")
    p.add_argument("--output-dir", default=None,
                   help=f"where {algo}_eval_<ts>/ goes (default: --output's directory)")
    p.add_argument("--no-plots", action="store_true", help="skip the per-episode plots")
    p.add_argument("--quiet", action="store_true", help="do not print the per-step table")
    return p


def step_row(episode: int, obs: Sequence[float], reward: float, info: Mapping[str, Any]) -> str:
    """One row of the per-step table."""
    return (f"{episode:>3} {info['step']:>4} {info['applied_delta']:>+5d} {obs[Obs.WORKERS]:>7.0f} "
            f"{obs[Obs.WORKER_QUEUE]:>6.0f} {obs[Obs.AVG_TIME]:>6.2f} {obs[Obs.MAX_TIME]:>6.2f} "
            f"{obs[Obs.ARRIVAL_RATE]:>7.2f} {obs[Obs.QOS_RATE]:>6.3f} "
            f"{reward:>8.2f}")


def episode_summary_line(rec: Mapping[str, Any]) -> str:
    return (f"Episode {rec['episode']}: total_reward={rec['total_reward']:.2f} "
            f"mean_reward={rec['mean_reward']:.3f} mean_qos={rec['mean_qos']:.4f} "
            f"final_qos={rec['final_qos']:.4f} mean_workers={rec['mean_workers']:.2f} "
            f"max_workers={rec['max_workers']:.0f} scaling_actions={rec['scaling_actions']} "
            f"noop_actions={rec['noop_actions']} steps={rec['steps']}")


def plot_episode(trace: EpisodeTrace, path: Path, title: str) -> Path:
    """Stacked per-step panels: workers, worker queue, mean/max completion time, QoS, reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, trace.steps + 1)
    fig, axes = plt.subplots(5, 1, figsize=(9, 11), sharex=True)
    axes[0].step(steps, trace.worker_counts, where="post")
    axes[0].set_ylabel("workers")
    axes[1].plot(steps, trace.queue_lengths, marker=".")
    axes[1].set_ylabel("worker queue")
    axes[2].plot(steps, trace.avg_times, marker=".", label="mean")
    axes[2].plot(steps, trace.max_times, marker=".", label="max")
    axes[2].set_ylabel("completion time (s)")
    axes[2].legend(fontsize=8)
    axes[3].plot(steps, trace.qos_rates, marker=".")
    axes[3].set_ylabel("QoS rate")
    axes[4].bar(steps, trace.rewards)
    axes[4].set_ylabel("reward")
    axes[4].set_xlabel("step")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def summarize(records: Sequence[Mapping[str, Any]], run_dir: Path) -> dict[str, Any]:
    """The docs/artefacts.md evaluation summary (plus ``mean_final_qos``)."""
    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in records])) if records else 0.0

    return {"episodes": [dict(r) for r in records], "mean_reward": mean("mean_reward"),
            "mean_qos": mean("mean_qos"), "mean_final_qos": mean("final_qos"),
            "mean_workers": mean("mean_workers"), "mean_steps": mean("steps"),
            "run_directory": str(run_dir)}


def evaluate(args: argparse.Namespace, algo: str, label: str,
             load: Callable[[argparse.Namespace, Any], Policy]) -> dict[str, Any]:
    """Run the evaluation described by parsed ``args`` with ``load(args, env)``'s policy."""
    from ..env import OpenFaaSAutoscalingEnv

    env = OpenFaaSAutoscalingEnv.from_env_config(env_config_from_args(args))
    try:
        policy = load(args, env)
        output = Path(args.output)
        base = Path(args.output_dir) if args.output_dir else output.parent
        run_dir = new_run_dir(base, f"{algo}_eval")
        (run_dir / "logs").mkdir()
        log = logging.getLogger(f"rl_autoscaling.test_{algo}")
        log.setLevel(logging.INFO)
        log.propagate = False
        handler = logging.FileHandler(run_dir / "logs" / "evaluation.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        try:
            log.info("model %s, %d episodes, seeds %d..%d", args.model, args.episodes,
                     args.seed, args.seed + args.episodes - 1)
            records = []
            for i in range(args.episodes):
                ep = i + 1
                _emit(log, STEP_HEADER, args.quiet)
                policy.reset()
                trace = run_episode(
                    env, policy, seed=args.seed + i,
                    on_step=lambda o, r, inf, ep=ep: _emit(log, step_row(ep, o, r, inf),
                                                           args.quiet))
                rec = trace.evaluation_record(ep)
                records.append(rec)
                _emit(log, episode_summary_line(rec), False)
                if not args.no_plots:
                    plot_episode(trace, run_dir / "plots" / f"episode_{ep:03d}.png",
                                 f"{label} greedy, episode {ep} (seed {args.seed + i})")
            summary = summarize(records, run_dir)
            atomic_write_json(output, summary)
            atomic_write_json(run_dir / output.name, summary)
            _emit(log, f"mean_reward={summary['mean_reward']:.3f} "
                       f"mean_qos={summary['mean_qos']:.4f} "
                       f"mean_final_qos={summary['mean_final_qos']:.4f} "
                       f"mean_workers={summary['mean_workers']:.2f} "
                       f"mean_steps={summary['mean_steps']:.1f} -> {output}", False)
            return summary
        finally:
            close_logger(log)
    finally:
        env.close()


def _emit(log: logging.Logger, line: str, quiet: bool) -> None:
    log.info(line)
    if not quiet:
        print(line, flush=True)


def main_for(algo: str, label: str, argv: Sequence[str] | None, *, description: str,
             model_help: str, default_output: Path,
             load: Callable[[argparse.Namespace, Any], Policy],
             add_args: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """A tester's ``main``: parse, evaluate, exit 0; user errors -> one line, exit 2.
    ``add_args`` adds the tester's own flags to the shared parser."""
    parser = build_parser(algo, description, model_help, default_output)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    return run_guarded(lambda: (evaluate(args, algo, label, load), 0)[1])
