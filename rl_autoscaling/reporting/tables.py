"""Comparison tables: the per-step table of an episode, the summary table of the agents and
the comparison log."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def _fmt(value: Any, width: int, digits: int = 2) -> str:
    if isinstance(value, (int, np.integer)):
        return f"{int(value):>{width}d}"
    return f"{float(value):>{width}.{digits}f}"


def step_table(record: Mapping[str, Any]) -> list[str]:
    """The per-step table of one record (``delta``: the applied worker delta)."""
    header = (f"{'step':>4} {'delta':>5} {'workers':>7} {'worker_q':>8} {'avg_t':>7} "
              f"{'max_t':>7} {'arrival':>7} {'qos':>6} {'reward':>8} {'cum_rew':>9}")
    lines = [header]
    cum = 0.0
    n = len(record.get("rewards", []))
    get = lambda key, i: record.get(key, [math.nan] * n)[i]  # noqa: E731
    delta = "applied_deltas" if "applied_deltas" in record else "actions"  # an unread file
    for i in range(n):
        cum += float(record["rewards"][i])
        lines.append(
            f"{i + 1:>4d} {int(get(delta, i)):>+5d} {_fmt(get('worker_counts', i), 7, 0)} "
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
