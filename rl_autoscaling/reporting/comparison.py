"""Comparison plots: per-step means of every agent (and of its recorded actions), and QoS
against mean workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..common.metrics import ACTION_DELTAS, mean_std, requested_deltas


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


def with_requested_deltas(records: Sequence[Mapping[str, Any]],
                          action_deltas: Sequence[int] = ACTION_DELTAS) -> list[dict[str, Any]]:
    """The records with ``requested_deltas``: the worker delta of each recorded action."""
    return [{**r, "requested_deltas": requested_deltas(r, action_deltas)} for r in records]


def plot_comparison(agents: Mapping[str, Mapping[str, Any]], path: Path,
                    action_deltas: Sequence[int] = ACTION_DELTAS
                    ) -> dict[str, dict[str, np.ndarray]]:
    """2x2 panels (processing time, QoS %, workers, worker queue) over a row of the recorded
    actions (the worker delta each asked for, ``action_deltas[index]``), mean +- std per
    step. Returns the drawn means: ``{record key: {agent: per-step mean}}`` (the actions
    under ``requested_deltas``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [("avg_times", "Processing time (s)", 1.0, (0.0, None)),
              ("qos_rates", "QoS (%)", 100.0, (0.0, 100.0)),
              ("worker_counts", "Workers", 1.0, (0.0, None)),
              ("queue_lengths", "Worker queue (tasks)", 1.0, (0.0, None)),
              ("requested_deltas", "Action (worker delta asked for)", 1.0,
               (min(action_deltas), max(action_deltas)))]
    fig = plt.figure(figsize=(13, 10.5))
    grid = fig.add_gridspec(3, 2, height_ratios=(1.0, 1.0, 0.7))
    axes = [fig.add_subplot(grid[i // 2, i % 2]) for i in range(4)]
    axes.append(fig.add_subplot(grid[2, :], sharex=axes[0]))
    for ax in axes[1:4]:
        ax.sharex(axes[0])
    drawn: dict[str, dict[str, np.ndarray]] = {}
    for ax, (key, title, scale, (bottom, top)) in zip(axes, panels):
        drawn[key] = {}
        for i, (name, entry) in enumerate(agents.items()):
            records = entry["records"]
            if key == "requested_deltas":
                records = with_requested_deltas(records, action_deltas)
            steps, mean, std = _per_step(records, key, scale)
            if not steps.size:
                continue
            drawn[key][name] = mean
            color = f"C{i % 10}"
            ax.plot(steps, mean, color=color, label=f"{name} (n={len(entry['records'])})")
            low, high = mean - std, mean + std
            low = np.maximum(low, bottom)  # bands stay in range
            if top is not None:
                high = np.minimum(high, top)
            ax.fill_between(steps, low, high, color=color, alpha=0.18, lw=0)
        ax.set_title(title)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[4].set_xlabel("Step")
    axes[4].xaxis.set_major_locator(MaxNLocator(integer=True))
    if tuple(action_deltas) == ACTION_DELTAS:
        axes[4].set_yticks([-1, 0, 1], ["-1 remove", "0 keep", "+1 add"])
    axes[0].legend(fontsize=8)
    fig.suptitle("Policy comparison (mean ± std per step, same seeded episodes)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


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
