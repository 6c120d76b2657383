"""The continuous control loop of ``python -m rl_autoscaling.serve``.

Each step: look for a replaced model file (:class:`~.policy_source.ModelSource`), ask the
policy for an action on the last observation, guard it, apply it through the env's live
backend (``env.step``: scale, wait out the step, observe), log one JSON line and update the
metrics. The env was :meth:`~rl_autoscaling.env.OpenFaaSAutoscalingEnv.attach`\\ ed to the
running farm: no reset, no episodes; its observation and info are exactly what the policy saw
in training.

Guardrails:

* the worker count stays in ``[min_workers, max_workers]``: a requested delta that would
  leave the range becomes the action-set delta closest to it that stays inside (or, when the
  farm is outside the range, the one that brings it closest);
* one decision changes the count by at most one action of the set (``action_deltas``);
* *fallback*: the count is held (delta 0) when the policy raises or answers an index outside
  the action set (``model_error``) or when the last observation failed (``stale``);
* Redis (or the farm) unreachable: the step fails, the count is held, the next try waits a
  backoff (``backoff_start`` doubling to ``backoff_max`` real seconds); one log line when the
  outage starts and one when it ends;
* ``dry_run``: decide and log, never scale; ``keda``: the decision is published (for KEDA's
  ``GetMetrics``) and KEDA/the HPA apply it, so the controller never scales either.

:meth:`Controller.run` returns when ``stop`` is set (SIGTERM/SIGINT: the current step is
finished, the worker count is left as it is). The farm's workload never "ends" for the
controller: a farm with nothing to do is observed and served like any other.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..farm.functions.protocol import LiveFarmError
from ..observation import Obs
from .metrics import ControllerMetrics
from .policy_source import ModelSource


def json_log(event: str, **fields: Any) -> None:
    """One structured log line on stdout."""
    print(json.dumps({"ts": round(time.time(), 3), "event": event, **fields},
                     default=_plain), flush=True)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


@dataclass
class Guardrails:
    """Bounds of what one decision may do."""

    min_workers: int
    max_workers: int
    action_deltas: Sequence[int]

    def __post_init__(self) -> None:
        if self.min_workers < 0 or self.max_workers < max(1, self.min_workers):
            raise ValueError(f"need 0 <= --min-workers <= --max-workers (>= 1), got "
                             f"{self.min_workers}..{self.max_workers}")
        if 0 not in self.action_deltas:
            raise ValueError(f"the action set {tuple(self.action_deltas)} has no hold (0) action")

    def guard(self, current: int, requested: int) -> int:
        """The applied delta for ``requested`` at ``current`` workers (module docstring)."""
        lo, hi = self.min_workers, self.max_workers
        inside = [d for d in self.action_deltas if lo <= current + d <= hi]
        if inside:
            return min(inside, key=lambda d: (abs(d - requested), abs(d)))

        def gap(d: int) -> int:
            return max(lo - (current + d), (current + d) - hi, 0)

        return min(self.action_deltas, key=lambda d: (gap(d), abs(d)))


@dataclass
class KedaState:
    """What the KEDA external scaler answers (written by the loop, read by gRPC threads)."""

    desired: int = 0
    active: bool = False
    updated: float = 0.0


class Controller:
    """Serve ``source``'s policy on ``env`` (attached to a running farm).

    Args:
        env: an ``OpenFaaSAutoscalingEnv`` on the live backend, not yet attached.
        source: the served policy (hot reload).
        guardrails: worker bounds and the action set (the env's ``action_deltas``).
        metrics: Prometheus metrics to update (or None).
        dry_run: never scale (decide and log only).
        keda: publish decisions for KEDA instead of scaling.
        count_from_start: count the farm's tasks from its start (a farm started just before,
            the local one), not from the attach.
        backoff_start, backoff_max: real seconds between tries while the farm is unreachable.
        log: the structured logger.
        on_decision: called after every decision (wakes KEDA's ``StreamIsActive``).
    """

    def __init__(self, env, source: ModelSource, guardrails: Guardrails,
                 metrics: ControllerMetrics | None = None, *, dry_run: bool = False,
                 keda: bool = False, count_from_start: bool = False, backoff_start: float = 1.0,
                 backoff_max: float = 30.0, log: Callable[..., None] = json_log,
                 on_decision: Callable[[], None] | None = None) -> None:
        self.env, self.source, self.guardrails = env, source, guardrails
        self.deltas = tuple(int(d) for d in env.action_deltas)
        self.metrics = metrics
        self.dry_run, self.keda, self.count_from_start = dry_run, keda, count_from_start
        self.backoff_max = float(backoff_max)
        self.backoff_start = min(float(backoff_start), self.backoff_max)
        self.log = log
        self.on_decision = on_decision
        self.keda_state = KedaState()
        self.lock = threading.Lock()
        self.decisions = 0
        self.fallbacks = 0
        self.worker_counts: list[int] = []
        self._enqueued_at_start = self._collected_at_start = self._collected_seen = 0
        self._last_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ one decision

    def decide(self, obs: np.ndarray, info: dict, fresh: bool) -> tuple[int, str | None]:
        """(requested delta, fallback reason or None)."""
        if not fresh:
            return 0, "stale"
        try:
            action = int(self.source.policy.act(obs, info))
        except Exception:  # noqa: BLE001 - a failing model must not stop the autoscaler
            return 0, "model_error"
        if not 0 <= action < len(self.deltas):
            return 0, "model_error"
        return self.deltas[action], None

    def _poll_model(self, obs: np.ndarray, info: dict) -> None:
        event = self.source.poll(obs, info)
        if event is None:
            return
        kind, detail = event
        if kind == "reloaded":
            self.log("model_reloaded", sha256=detail, source=self.source.identity.source)
            if self.metrics:
                self.metrics.reloads.inc()
                self.metrics.serve_model(self.source.identity)
        else:
            self.log("model_refused", reason=detail, serving=self.source.identity.sha256)
            if self.metrics:
                self.metrics.refusals.inc()

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> dict[str, Any]:
        """Attach, then decide every step until ``stop`` is set; returns the summary
        (:meth:`summary`)."""
        env = self.env
        obs, info = env.attach()
        if not self.count_from_start:  # a running farm: count from now
            self._enqueued_at_start = int(info["enqueued_total"])
            self._collected_at_start = self._collected_seen = int(info["processed_tasks"])
        self._last_info = info
        with self.lock:
            self.keda_state = KedaState(int(round(float(obs[Obs.WORKERS]))), _active(obs),
                                        time.time())
        ident = self.source.identity
        self.log("start", policy=ident.policy, source=ident.source, sha256=ident.sha256,
                 workers=int(obs[Obs.WORKERS]), dry_run=self.dry_run, keda=self.keda)
        if self.metrics:
            self.metrics.serve_model(ident)
            self._observed(obs, info)
        fresh, outage_since, backoff = True, None, self.backoff_start
        while not stop.is_set():
            if fresh:
                self._poll_model(obs, info)
            current = int(round(float(obs[Obs.WORKERS])))
            requested, reason = self.decide(obs, info, fresh)
            delta = self.guardrails.guard(current, requested) if reason is None else 0
            desired = current + delta
            with self.lock:
                self.keda_state = KedaState(desired, _active(obs), time.time())
            scaling = 0 if (self.dry_run or self.keda) else delta
            error = None
            try:
                new_obs, _, _, _, new_info = env.step(self.deltas.index(scaling))
            except LiveFarmError as exc:
                error = str(exc).splitlines()[0]
            self.decisions += 1
            self.worker_counts.append(current)
            if reason is not None:
                self.fallbacks += 1
            self.log("decision", step=self.decisions, workers=current,
                     worker_queue=int(obs[Obs.WORKER_QUEUE]),
                     qos_window=round(float(obs[Obs.QOS_RATE]), 4),
                     arrival_rate=round(float(obs[Obs.ARRIVAL_RATE]), 3),
                     requested=requested, delta=delta, desired=desired,
                     applied=None if error else int(new_info["applied_delta"]),
                     fallback=reason, dry_run=self.dry_run, model=self.source.identity.sha256)
            if self.on_decision:
                self.on_decision()
            if self.metrics:
                self.metrics.desired.set(desired)
                self.metrics.decisions.labels(f"{delta:+d}" if delta else "0").inc()
                if reason is not None:
                    self.metrics.fallbacks.labels(reason).inc()
            if error is not None:
                fresh = False
                if outage_since is None:
                    outage_since = time.time()
                    self.log("farm_unreachable", error=error, holding=current)
                    if self.metrics:
                        self.metrics.redis_up.set(0)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                continue
            if outage_since is not None:
                self.log("farm_reachable", outage_seconds=round(time.time() - outage_since, 1))
                outage_since, backoff = None, self.backoff_start
            fresh = True
            obs, info = new_obs, new_info
            self._last_info = info
            if self.metrics:
                self._observed(obs, info)
        return self.summary()

    def _observed(self, obs: np.ndarray, info: dict) -> None:
        m = self.metrics
        m.workers.set(float(obs[Obs.WORKERS]))
        m.worker_queue.set(float(obs[Obs.WORKER_QUEUE]))
        m.qos.set(float(obs[Obs.QOS_RATE]))
        m.redis_up.set(1)
        collected = int(info.get("processed_tasks", 0))
        gained = collected - self._collected_seen
        if gained > 0:
            m.collected.inc(gained)
        self._collected_seen = collected
        m.last_ok = time.time()

    def summary(self) -> dict[str, Any]:
        """``tasks_emitted``, ``tasks_completed`` (since the controller attached),
        ``final_qos`` (of the collected tasks), ``mean_workers`` (observed, per decision),
        ``decisions``, ``model_reloads``, ``fallbacks``."""
        info = self._last_info
        return {
            "tasks_emitted": int(info.get("enqueued_total", 0)) - self._enqueued_at_start,
            "tasks_completed": int(info.get("processed_tasks", 0)) - self._collected_at_start,
            "final_qos": float(self.env.final_qos()),
            "mean_workers": float(np.mean(self.worker_counts)) if self.worker_counts else 0.0,
            "decisions": self.decisions,
            "model_reloads": self.source.reloads,
            "fallbacks": self.fallbacks,
        }


def _active(obs: np.ndarray) -> bool:
    """The farm has work: tasks queued or arriving, or results waiting."""
    return bool(obs[Obs.WORKER_QUEUE] > 0 or obs[Obs.ARRIVAL_RATE] > 0
                or obs[Obs.RESULT_QUEUE] > 0)


__all__ = ["Controller", "Guardrails", "KedaState", "json_log"]
