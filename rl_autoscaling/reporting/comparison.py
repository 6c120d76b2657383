"""Comparison plots: per-step means of every agent, and QoS against mean workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..common.metrics import mean_std


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


def plot_scatter(agents: Mapping[str, Mapping[str, Any]], path: Path,
                 frontier: Sequence[Mapping[str, float]] | None = None) -> None:
    """Final QoS (%) against mean workers, one point per episode, one marker per agent, with
    the static frontier (``{"workers", "mean_workers", "final_qos"}`` per fixed count N, the
    same episodes) drawn as a line under the points: an agent left of the line saves
    workers at its QoS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    agent_qos = [100.0 * r["summary"]["final_qos_total"] for e in agents.values()
                 for r in e["records"]]
    if frontier:
        floor = min(agent_qos, default=0.0) - 5.0  # keep the axis on the agents' QoS range
        pts = sorted(frontier, key=lambda p: p["mean_workers"])
        first = max([i for i, p in enumerate(pts) if 100.0 * p["final_qos"] < floor],
                    default=0)
        pts = pts[first:]
        ax.plot([p["mean_workers"] for p in pts], [100.0 * p["final_qos"] for p in pts],
                color="0.55", linewidth=1.5, zorder=1, label="static frontier (Static N)")
        for p in pts:
            ax.annotate(str(int(p["workers"])), (p["mean_workers"], 100.0 * p["final_qos"]),
                        fontsize=6, color="0.45", textcoords="offset points", xytext=(2, -8))
    for i, (name, entry) in enumerate(agents.items()):
        xs = [r["summary"]["mean_workers"] for r in entry["records"]]
        ys = [100.0 * r["summary"]["final_qos_total"] for r in entry["records"]]
        ax.scatter(xs, ys, marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}", s=42,
                   alpha=0.8, label=name, zorder=2)
    ax.set_xlabel("Mean workers per episode")
    ax.set_ylabel("Final QoS (%)")
    ax.set_title("QoS vs cost (one point per episode)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
