"""Episode metrics, computed in one place for training, evaluation, comparison and benchmarks.

An :class:`EpisodeTrace` records every step of one episode; its methods produce the records of
docs/artefacts.md (``training_metrics.json`` episodes, evaluation summaries, comparison records) so the
numbers mean the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..observation import Obs


@dataclass
class EpisodeTrace:
    """Per-step values of one episode (after each action)."""

    rewards: list[float] = field(default_factory=list)
    qos_rates: list[float] = field(default_factory=list)
    worker_counts: list[float] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)  # applied worker delta per step
    queue_lengths: list[float] = field(default_factory=list)
    avg_times: list[float] = field(default_factory=list)
    max_times: list[float] = field(default_factory=list)
    arrival_rates: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)  # measured length of each step
    final_qos: float | None = None
    processed_tasks: int = 0
    qos_violations: int = 0
    unfinished_tasks: int = 0

    def record(self, obs: Sequence[float], reward: float, info: Mapping[str, Any]) -> None:
        """Add one step: the observation after the action, its reward and the env's info."""
        self.rewards.append(float(reward))
        self.qos_rates.append(float(obs[Obs.QOS_RATE]))
        self.worker_counts.append(float(obs[Obs.WORKERS]))
        self.actions.append(int(info.get("applied_delta", 0)))
        self.queue_lengths.append(float(obs[Obs.WORKER_QUEUE]))
        self.avg_times.append(float(obs[Obs.AVG_TIME]))
        self.max_times.append(float(obs[Obs.MAX_TIME]))
        self.arrival_rates.append(float(obs[Obs.ARRIVAL_RATE]))
        self.step_seconds.append(float(info.get("step_duration", 0.0)))
        self.processed_tasks = int(info.get("processed_tasks", self.processed_tasks))
        self.qos_violations = int(info.get("qos_violations", self.qos_violations))
        self.unfinished_tasks = int(info.get("unfinished_tasks", self.unfinished_tasks))
        if info.get("episode_final_qos") is not None:
            self.final_qos = float(info["episode_final_qos"])

    @property
    def steps(self) -> int:
        return len(self.rewards)

    def summary(self) -> dict[str, Any]:
        """Every per-episode figure, by its docs/artefacts.md name."""
        n = max(1, self.steps)
        deltas = np.asarray(self.actions, dtype=int)
        workers = np.asarray(self.worker_counts, dtype=float)
        total = float(np.sum(self.rewards))
        final_qos = 1.0 if self.final_qos is None else self.final_qos
        return {
            "steps": self.steps,
            "total_reward": total,
            "mean_reward": total / n,
            "mean_qos": float(np.mean(self.qos_rates)) if self.qos_rates else 1.0,
            "final_qos": final_qos,
            "mean_workers": float(workers.mean()) if workers.size else 0.0,
            "max_workers": float(workers.max()) if workers.size else 0.0,
            "scaling_actions": int(np.count_nonzero(deltas)),
            "noop_actions": int(np.count_nonzero(deltas == 0)),
            "scale_up_count": int(np.count_nonzero(deltas > 0)),
            "scale_down_count": int(np.count_nonzero(deltas < 0)),
            "processed_tasks": self.processed_tasks,
            "qos_violations": self.qos_violations,
            "unfinished_tasks": self.unfinished_tasks,
            "worker_seconds": self.worker_seconds,
        }

    @property
    def worker_seconds(self) -> float:
        """Workers held over the episode, in worker-seconds (each step's worker count after
        its action, times the step's measured length)."""
        return float(np.dot(self.worker_counts, self.step_seconds)) if self.step_seconds else 0.0

    def training_record(self, episode: int, epsilon: float,
                        mean_loss: float | None = None) -> dict[str, Any]:
        """One ``training_metrics.json`` episode record."""
        s = self.summary()
        rec = {
            "episode": episode, "steps": s["steps"], "total_reward": s["total_reward"],
            "mean_qos": s["mean_qos"], "final_qos": s["final_qos"],
            "processed_tasks": s["processed_tasks"], "epsilon": float(epsilon),
            "scale_up_count": s["scale_up_count"], "scale_down_count": s["scale_down_count"],
            "noop_count": s["noop_actions"], "max_workers": s["max_workers"],
            "mean_workers": s["mean_workers"], "qos_violations": s["qos_violations"],
            "unfinished_tasks": s["unfinished_tasks"],
        }
        if mean_loss is not None:
            rec["mean_loss"] = float(mean_loss)
        return rec

    def evaluation_record(self, episode: int) -> dict[str, Any]:
        """One episode of an evaluation summary (``eval_results.json``)."""
        s = self.summary()
        keys = ("steps", "total_reward", "mean_reward", "mean_qos", "final_qos",
                "mean_workers", "max_workers", "scaling_actions", "noop_actions")
        return {"episode": episode, **{k: s[k] for k in keys}}

    def comparison_record(self, timing: bool = False) -> dict[str, Any]:
        """One record of ``aggregated_results.json``: per-step lists plus a summary
        (``timing``: also each step's measured length, ``step_seconds``)."""
        s = self.summary()
        keys = ("steps", "total_reward", "mean_reward", "mean_qos", "mean_workers",
                "max_workers", "scaling_actions", "noop_actions", "worker_seconds",
                "processed_tasks")
        rec = {
            "rewards": self.rewards, "qos_rates": self.qos_rates,
            "worker_counts": self.worker_counts, "actions": self.actions,
            "queue_lengths": self.queue_lengths, "avg_times": self.avg_times,
            "max_times": self.max_times, "arrival_rates": self.arrival_rates,
            "summary": {**{k: s[k] for k in keys}, "final_qos_total": s["final_qos"]},
        }
        if timing:
            rec["step_seconds"] = list(self.step_seconds)
        return rec


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and population standard deviation (0, 0 for no values)."""
    arr = np.asarray(list(values), dtype=float)
    if not arr.size:
        return 0.0, 0.0
    return float(arr.mean()), float(arr.std())


PER_EPISODE_KEYS = ("final_qos", "mean_workers")
EVAL_KEYS = ("total_reward", "mean_reward", "final_qos", "mean_qos", "scaling_actions",
             "noop_actions", "max_workers", "mean_workers")


def checkpoint_evaluation(episode: int, traces: Sequence[EpisodeTrace]) -> dict[str, Any]:
    """One ``evaluation_metrics.json`` checkpoint: mean_X / std_X over the eval episodes, and
    ``episodes``: each episode's final QoS and mean workers (what the ranking rule's bootstrap
    bound reads, :mod:`rl_autoscaling.common.ranking`)."""
    summaries = [t.summary() for t in traces]
    out: dict[str, Any] = {"episode": episode, "eval_episodes": len(traces)}
    for key in EVAL_KEYS:
        out[f"mean_{key}"], out[f"std_{key}"] = mean_std(s[key] for s in summaries)
    out["episodes"] = {key: [round(float(s[key]), 6) for s in summaries]
                       for key in PER_EPISODE_KEYS}
    return out
