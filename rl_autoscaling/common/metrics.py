"""Episode metrics, computed in one place for training, evaluation, comparison and benchmarks.

An :class:`EpisodeTrace` records every step of one episode; its methods produce the records of
docs/artefacts.md (``training_metrics.json`` episodes, evaluation summaries, comparison records) so the
numbers mean the same thing everywhere.
"""

from __future__ import annotations

from collections import Counter
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
    action_indices: list[int] = field(default_factory=list)  # the action each step chose
    queue_lengths: list[float] = field(default_factory=list)
    avg_times: list[float] = field(default_factory=list)
    max_times: list[float] = field(default_factory=list)
    arrival_rates: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)  # measured length of each step
    final_qos: float | None = None
    processed_tasks: int = 0
    qos_violations: int = 0
    unfinished_tasks: int = 0

    def record(self, obs: Sequence[float], reward: float, info: Mapping[str, Any],
               action: int | None = None) -> None:
        """Add one step: the observation after the action, its reward, the env's info and
        (when given) the action index that was played."""
        if action is not None:
            self.action_indices.append(int(action))
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
        (``timing``: also each step's measured length, ``step_seconds``). ``actions`` are the
        action indices played (the original toolkit's meaning), ``applied_deltas`` the worker
        deltas the env applied (:func:`read_actions`)."""
        if len(self.action_indices) != self.steps:
            raise ValueError("comparison records need the action index of every step "
                             "(record(..., action=a))")
        s = self.summary()
        keys = ("steps", "total_reward", "mean_reward", "mean_qos", "mean_workers",
                "max_workers", "scaling_actions", "noop_actions", "worker_seconds",
                "processed_tasks")
        rec = {
            "rewards": self.rewards, "qos_rates": self.qos_rates,
            "worker_counts": self.worker_counts, "actions": self.action_indices,
            "applied_deltas": self.actions, "queue_lengths": self.queue_lengths,
            "avg_times": self.avg_times, "max_times": self.max_times,
            "arrival_rates": self.arrival_rates,
            "summary": {**{k: s[k] for k in keys}, "final_qos_total": s["final_qos"]},
        }
        if timing:
            rec["step_seconds"] = list(self.step_seconds)
        return rec


#: the worker delta of each action index, in the original toolkit (``Discrete(3)``) and in
#: every comparison this package writes: 0 removes a worker, 1 keeps the count, 2 adds one
ACTION_DELTAS: tuple[int, ...] = (-1, 0, 1)


def _whole(value: Any) -> int | None:
    try:
        return int(round(float(value)))
    except (TypeError, ValueError, OverflowError):  # None, NaN, inf, text
        return None


def requested_deltas(record: Mapping[str, Any],
                     action_deltas: Sequence[int] = ACTION_DELTAS) -> list[int]:
    """The worker delta each of a record's ``actions`` (action indices) asks for; an unreadable
    entry asks to keep the count, an index out of range is clipped to the nearest one."""
    out = []
    for a in record.get("actions") or []:
        i = _whole(a)
        out.append(0 if i is None else int(action_deltas[min(max(i, 0), len(action_deltas) - 1)]))
    return out


def read_actions(data: Mapping[str, Any]) -> dict[str, Any]:
    """Bring every record of an ``aggregated_results.json`` to this package's layout, in place:
    ``actions`` the action indices played, ``applied_deltas`` the worker deltas applied. The
    rule (docs/artefacts.md, "compare_policies"), per record:

    1. it has ``applied_deltas``: this package wrote it; nothing to do;
    2. else, when the file has ``settings`` (only this package writes them) or any negative
       ``actions`` value: an older file of this package, whose ``actions`` are the applied
       deltas; its indices become the index of each delta (a request the env clipped shows
       as "keep");
    3. else (the original toolkit's layout): ``actions`` are indices; the applied deltas are
       the requested ones, except at steps where the recorded ``worker_counts`` show another
       change (an action that did not take effect): there they follow the counts. The count
       before the first step is the one most records imply (first count minus first
       requested delta).

    Returns ``{"layout": "applied_deltas" | "deltas" | "indices", "reason", "steps",
    "followed_counts", "initial_workers"}`` (``followed_counts``: steps where rule 3 followed
    the counts; ``initial_workers``: what rule 3 assumed, None otherwise)."""
    settings = data.get("settings") if isinstance(data.get("settings"), Mapping) else None
    deltas = tuple(int(d) for d in (settings or {}).get("action_deltas") or ACTION_DELTAS)
    entries = [e.get("records") if isinstance(e, Mapping) else e  # or a bare list of records
               for e in (data.get("agents") or {}).values()]
    records = [r for e in entries if isinstance(e, list) for r in e if isinstance(r, dict)]
    todo = [r for r in records if "applied_deltas" not in r]
    info: dict[str, Any] = {"layout": "applied_deltas", "steps": 0, "followed_counts": 0,
                            "initial_workers": None,
                            "reason": "actions are indices, applied_deltas the deltas"}
    if not todo:
        return info
    negative = any((_whole(a) or 0) < 0 for r in todo for a in r.get("actions") or [])
    if settings is not None or negative:
        info.update(layout="deltas", reason="actions read as applied deltas (an older file of "
                    "this package: " + ("it has settings" if settings is not None
                                        else "negative actions") + ", no applied_deltas)")
        for r in todo:
            applied = [_whole(a) or 0 for a in r.get("actions") or []]
            r["applied_deltas"] = applied
            r["actions"] = [min(range(len(deltas)), key=lambda i: abs(deltas[i] - d))
                            for d in applied]
            info["steps"] += len(applied)
        return info
    counts = [[_whole(c) for c in r.get("worker_counts") or []] for r in todo]
    requested = [requested_deltas(r, deltas) for r in todo]
    implied = [c[0] - q[0] for c, q in zip(counts, requested) if c and q and c[0] is not None]
    initial = Counter(implied).most_common(1)[0][0] if implied else None
    for r, c, q in zip(todo, counts, requested):
        applied = list(q)
        for i in range(min(len(c), len(q))):
            prev = initial if i == 0 else c[i - 1]
            if c[i] is not None and prev is not None and c[i] - prev != q[i]:
                applied[i] = c[i] - prev
                info["followed_counts"] += 1
        r["applied_deltas"] = applied
        info["steps"] += len(applied)
    info.update(layout="indices", initial_workers=initial,
                reason=f"actions read as indices (the original toolkit's layout: no settings, "
                       f"no applied_deltas); {info['followed_counts']} of {info['steps']} "
                       f"steps follow the recorded worker counts instead")
    return info


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
