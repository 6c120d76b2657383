"""Workers against the load: one episode, step by step, for each agent (``bench policies``).

Each agent's trace gives, per step, its worker count, the measured step length and the arrival
rate it observed; the load is drawn in workers (arrival rate x mean service time: the workers
the arrivals keep busy at full utilisation), so an agent that follows the load tracks the grey
area with the margin its SLO needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np


def plot_workers_vs_load(title: str, traces: Mapping[str, Mapping[str, Any]], path: Path,
                         service_time: float) -> Path:
    """Plot ``traces`` (agent -> ``{"worker_counts", "arrival_rates", "step_seconds"}`` of the
    same episode) to ``path``: the load in workers as a grey area, each agent's workers as a
    step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (name, tr) in enumerate(traces.items()):
        t = np.cumsum(np.asarray(tr["step_seconds"], dtype=float))
        if i == 0:
            load = np.asarray(tr["arrival_rates"], dtype=float) * service_time
            ax.fill_between(t, load, step="pre", color="0.85",
                            label=f"load: arrival rate x {service_time:g} s")
        ax.step(t, tr["worker_counts"], where="pre", color=f"C{i % 10}", lw=1.4, label=name)
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Workers")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["plot_workers_vs_load"]
