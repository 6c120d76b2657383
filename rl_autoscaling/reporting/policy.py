"""``policy_report.png``: the chosen model beside the static frontier (training.report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


def plot_policy_report(report: Mapping[str, Any], path: Path) -> Path:
    """Final QoS (%) against mean workers: the static frontier (Static N on the confirm
    episodes) as a line, the chosen model as a point with its 95 % CIs, the SLO as a dashed
    line; the title gives the model's workers as a multiple of the frontier's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 5.0))
    pts = sorted(report.get("frontier") or [], key=lambda p: p["mean_workers"])
    if pts:
        ax.plot([p["mean_workers"] for p in pts], [100.0 * p["final_qos"] for p in pts],
                color="0.55", marker=".", linewidth=1.5, label="static frontier (Static N)")
        for p in pts:
            ax.annotate(str(int(p["workers"])), (p["mean_workers"], 100.0 * p["final_qos"]),
                        fontsize=7, color="0.4", textcoords="offset points", xytext=(2, -9))
    ax.errorbar([report["mean_workers"]], [100.0 * report["final_qos"]],
                xerr=[report.get("mean_workers_ci95", 0.0)],
                yerr=[100.0 * report.get("final_qos_ci95", 0.0)], fmt="o", color="C3",
                capsize=4, label=f"{report.get('algo', 'model')} best ({report['chosen']})")
    ax.axhline(100.0 * report["slo"], color="C2", linestyle="--", linewidth=1,
               label=f"SLO {100.0 * report['slo']:g} %")
    x = report.get("x_frontier")
    ax.set_title(f"{report.get('algo', '')} best model: {report['mean_workers']:.2f} workers"
                 + (f" = {x:.3f}x the static frontier" if x else "")
                 + f" ({report['episodes']} held-out episodes)", fontsize=10)
    ax.set_xlabel("Mean workers per episode")
    ax.set_ylabel("Mean final QoS (%)")
    low = min([100.0 * report["final_qos"]] + [100.0 * p["final_qos"] for p in pts])
    ax.set_ylim(max(low - 1.0, 100.0 * report["slo"] - 5.0), 100.2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
