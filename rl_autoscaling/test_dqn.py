"""Greedy roll-outs of a trained DQN: ``python -m rl_autoscaling.test_dqn --model PATH``.

``--model`` is a ``.pt`` model file (plain PyTorch inference, Ray is not imported) or an RLlib
algorithm checkpoint directory (e.g. ``models/dqn_final_rllib``; its RLModule is loaded and
observations are scaled by the evaluation env's bounds, as in training).

Episode i (0-based) is seeded ``--seed + i``, so two policies tested with the same flags see the
same workload. Each run writes ``<output dir>/dqn_eval_<UTC ts>/`` with ``logs/evaluation.log``
(per-step lines and per-episode summaries) and ``plots/episode_NNN.png``; the summary JSON
(SPEC §8) goes to ``--output`` (default ``runs/dqn_eval_results.json``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .cli import add_env_args, env_config_from_args, positive_int, run_guarded
from .metrics import EpisodeTrace, run_episode
from .modelio import atomic_write_json

LOG = logging.getLogger("rl_autoscaling.test_dqn")
DEFAULT_OUTPUT = Path("runs") / "dqn_eval_results.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rl_autoscaling.test_dqn",
        description="Greedy evaluation of a DQN model (.pt file or RLlib checkpoint).")
    p.add_argument("--model", required=True,
                   help="DQN model: a .pt file or an RLlib checkpoint directory")
    p.add_argument("--episodes", type=positive_int, default=5,
                   help="evaluation episodes (default %(default)s)")
    add_env_args(p, task_seed=False)
    p.add_argument("--seed", type=int, default=42,
                   help="episode i is seeded seed + i (default %(default)s)")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="summary JSON path")
    p.add_argument("--output-dir", default=None,
                   help="where the dqn_eval_<ts>/ run directory goes (default: --output's dir)")
    p.add_argument("--no-plots", action="store_true", help="skip the per-episode plots")
    return p


def load_policy(model: str | Path, env):
    """A greedy policy from a ``.pt`` file (plain torch) or an RLlib checkpoint directory."""
    path = Path(model)
    if path.is_dir():
        from .algorithms.dqn import RllibDqnPolicy
        from .policies.dqn import ObservationScaler

        return RllibDqnPolicy.from_checkpoint(path, ObservationScaler.from_space(
            env.observation_space))
    from .policies.dqn import DqnPolicy

    policy = DqnPolicy.load(path)
    low = np.asarray(policy.metadata.get("obs_low", []), dtype=np.float32)
    if low.shape != env.observation_space.shape:
        raise ValueError(f"{path} expects {low.shape[0] if low.ndim else 0} observations, "
                         f"the env gives {env.observation_space.shape[0]}")
    return policy


def step_line(episode: int, obs: Sequence[float], reward: float, info: Mapping[str, Any]) -> str:
    return (f"ep {episode:3d} step {info['step']:3d} | delta {info['applied_delta']:+d} | "
            f"workers {obs[4]:4.0f} | queue {obs[1]:5.0f} | avg {obs[5]:6.2f}s | "
            f"qos {obs[8]:.3f} | reward {reward:8.2f}")


def episode_line(episode: int, rec: Mapping[str, Any]) -> str:
    return (f"Episode {episode}: total_reward={rec['total_reward']:.2f} "
            f"mean_reward={rec['mean_reward']:.3f} mean_qos={rec['mean_qos']:.4f} "
            f"final_qos={rec['final_qos']:.4f} mean_workers={rec['mean_workers']:.2f} "
            f"max_workers={rec['max_workers']:.0f} scaling={rec['scaling_actions']} "
            f"noop={rec['noop_actions']} steps={rec['steps']}")


def plot_episode(trace: EpisodeTrace, path: Path, title: str) -> None:
    """Four stacked per-step panels: workers, worker queue, QoS rate, reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, trace.steps + 1)
    panels = (("workers", trace.worker_counts), ("worker queue", trace.queue_lengths),
              ("QoS rate", trace.qos_rates), ("reward", trace.rewards))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 9), sharex=True)
    for ax, (label, values) in zip(axes, panels):
        ax.plot(steps, values, marker=".")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarize(records: Sequence[Mapping[str, Any]], run_dir: Path) -> dict[str, Any]:
    """The SPEC §8 evaluation summary."""
    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in records])) if records else 0.0

    return {"episodes": list(records), "mean_reward": mean("mean_reward"),
            "mean_qos": mean("mean_qos"), "mean_final_qos": mean("final_qos"),
            "mean_workers": mean("mean_workers"),
            "mean_steps": mean("steps"), "run_directory": str(run_dir)}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from .env import OpenFaaSAutoscalingEnv

    if not Path(args.model).exists():
        raise ValueError(f"model not found: {args.model}")
    env = OpenFaaSAutoscalingEnv.from_env_config(env_config_from_args(args))
    try:
        policy = load_policy(args.model, env)
    except BaseException:
        env.close()
        raise
    output = Path(args.output)
    base = Path(args.output_dir) if args.output_dir else output.parent
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    run_dir = base / f"dqn_eval_{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = base / f"dqn_eval_{stamp}_{n}"
    (run_dir / "logs").mkdir(parents=True)
    handler = logging.FileHandler(run_dir / "logs" / "evaluation.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    try:
        LOG.info("model %s, %d episodes, seeds %d..%d", args.model, args.episodes, args.seed,
                 args.seed + args.episodes - 1)
        records = []
        for i in range(args.episodes):
            policy.reset()
            def on_step(obs, reward, info, episode=i + 1):
                LOG.info(step_line(episode, obs, reward, info))

            trace = run_episode(env, policy, seed=args.seed + i, on_step=on_step)
            rec = trace.evaluation_record(i + 1)
            records.append(rec)
            line = episode_line(i + 1, rec)
            LOG.info(line)
            print(line, flush=True)
            if not args.no_plots:
                plot_episode(trace, run_dir / "plots" / f"episode_{i + 1:03d}.png",
                             f"DQN greedy, episode {i + 1} (seed {args.seed + i})")
        summary = summarize(records, run_dir)
        atomic_write_json(output, summary)
        atomic_write_json(run_dir / "dqn_eval_results.json", summary)
        LOG.info("mean_reward=%.3f mean_qos=%.4f mean_workers=%.2f -> %s",
                 summary["mean_reward"], summary["mean_qos"], summary["mean_workers"], output)
        return summary
    finally:
        LOG.removeHandler(handler)
        handler.close()
        env.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        summary = evaluate(args)
        print(f"mean_reward={summary['mean_reward']:.3f} mean_qos={summary['mean_qos']:.4f} "
              f"mean_final_qos={summary['mean_final_qos']:.4f} "
              f"mean_workers={summary['mean_workers']:.2f} "
              f"mean_steps={summary['mean_steps']:.1f} -> {args.output}")
        return 0

    return run_guarded(run)


if __name__ == "__main__":
    sys.exit(main())
