"""Twin validation plots: per agent, the recording's per-step means against the twin's."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .comparison import _per_step

PANELS = (("worker_counts", "workers", 1.0), ("queue_lengths", "worker queue", 1.0),
          ("qos_rates", "QoS %", 100.0), ("avg_times", "avg time (s)", 1.0))


def plot_twin_validation(recorded: Mapping[str, Sequence[Mapping[str, Any]]],
                         closed_loop: Mapping[str, Sequence[Mapping[str, Any]]],
                         open_loop: Mapping[str, Sequence[Mapping[str, Any]]],
                         path: Path) -> None:
    """One row per agent, one column per metric: the recording (mean +- std per step), the
    twin closed loop (when the agent was played) and the twin replaying the recorded actions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(recorded)
    fig, axes = plt.subplots(len(names), len(PANELS), squeeze=False,
                             figsize=(4.2 * len(PANELS), 2.8 * max(1, len(names))))
    sides = (("recording", recorded, "black", "-"), ("twin closed loop", closed_loop, "C0", "-"),
             ("twin open loop", open_loop, "C1", "--"))
    for row, name in enumerate(names):
        longest = max((len(r.get("worker_counts") or []) for r in recorded[name]), default=0)
        for col, (key, label, factor) in enumerate(PANELS):
            ax = axes[row][col]
            for side, data, color, style in sides:
                if name not in data:
                    continue
                steps, mean, std = _per_step(data[name], key, factor)
                if longest:  # only the recorded steps (the twin may run longer)
                    steps, mean, std = steps[:longest], mean[:longest], std[:longest]
                if not steps.size:
                    continue
                ax.plot(steps, mean, style, color=color, label=side)
                if side == "recording":
                    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.12)
            ax.set_title(f"{name}: {label}", fontsize=9)
            ax.set_xlabel("step")
            if col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["plot_twin_validation"]
