"""Calibrated baselines: what a user would deploy without RL, tuned on the twin.

An uncalibrated baseline flatters a learner, so every comparison of a trained policy is made
against baselines searched on the twin over *calibration* seeds (disjoint from the training
seeds and from the evaluation seeds, see :data:`CALIBRATION_SEED_BASE`):

- the **static frontier**: Static N for every N in a range, each with its mean final QoS,
  mean workers and worker-seconds (:func:`static_frontier`); :func:`frontier_workers_at`
  interpolates the workers a fixed count needs for a given QoS, :func:`frontier_qos_at` the
  QoS a fixed count reaches with given workers;
- **StaticBest**: the cheapest fixed count whose mean final QoS meets the SLO
  (:func:`calibrate_static`);
- **KedaCalibrated**: the KEDA queue scaler with the ``listLength`` target, scale-down
  window and ``minReplicaCount`` floor of the fewest worker-seconds among those meeting the
  SLO (:func:`calibrate_keda`);
- **HpaCalibrated**: Kubernetes' HPA target tracking (:class:`~rl_autoscaling.policies.hpa.Hpa`)
  with the metric (utilisation or offered load per worker), target and scale-down window of
  the fewest worker-seconds among those meeting the SLO (:func:`calibrate_hpa`).

An SLO that no candidate meets picks the candidate with the best QoS (and says so in its
:class:`Calibration`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..common.rollout import run_episode
from ..policies.base import Policy
from ..policies.hpa import Hpa
from ..policies.keda import KedaQueue
from ..policies.static import Static

log = logging.getLogger(__name__)

#: Calibration episode i is seeded CALIBRATION_SEED_BASE + i: far from the training seeds
#: (task seed + episode, task seeds < 10 000 by convention) and the evaluation seeds.
CALIBRATION_SEED_BASE = 900_000
KEDA_TARGETS = (0.25, 0.5, 1.0, 2.0, 4.0)
KEDA_WINDOWS = (300.0, 30.0)
#: KEDA ``minReplicaCount`` candidates besides the env's minimum (a floor is what KEDA users
#: set when queue-driven scale-ups arrive too late for their SLO).
KEDA_FLOORS = (8, 10, 12, 13, 14, 15, 16)
#: HPA targets per metric (utilisation: busy / workers; load: offered load per worker) and
#: scale-down windows (300 s: the HPA default).
HPA_TARGETS = {metric: (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8)
               for metric in ("utilisation", "load")}
HPA_WINDOWS = (300.0, 60.0, 30.0, 0.0)


@dataclass(frozen=True)
class PolicyStats:
    """Mean figures of one policy over a set of episodes."""

    final_qos: float
    mean_workers: float
    worker_seconds: float
    episodes: int

    def meets(self, slo: float) -> bool:
        return self.final_qos >= slo - 1e-12


@dataclass(frozen=True)
class FrontierPoint(PolicyStats):
    workers: int = 0


@dataclass
class Calibration:
    """The outcome of a calibration search."""

    name: str
    params: dict[str, Any]
    stats: PolicyStats
    slo: float
    met: bool
    tried: list[tuple[dict[str, Any], PolicyStats]] = field(default_factory=list)


def calibration_seeds(episodes: int, base: int = CALIBRATION_SEED_BASE) -> list[int]:
    return [base + i for i in range(int(episodes))]


def episode_summaries(env, policy: Policy, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Greedy episodes of ``policy`` on ``env``, one per seed: each one's ``summary()``."""
    out = []
    for seed in seeds:
        policy.reset()
        out.append(run_episode(env, policy.act, seed=int(seed)).summary())
    return out


def policy_stats(env, policy: Policy, seeds: Sequence[int]) -> PolicyStats:
    """Mean figures of greedy episodes of ``policy`` on ``env``, one per seed."""
    runs = episode_summaries(env, policy, seeds)
    return PolicyStats(*(float(np.mean([s[k] for s in runs]))
                         for k in ("final_qos", "mean_workers", "worker_seconds")), len(seeds))


def static_frontier(env, counts: Iterable[int], seeds: Sequence[int]) -> list[FrontierPoint]:
    """Static N on ``env`` for every N in ``counts`` (action deltas from the env)."""
    points = []
    for n in counts:
        st = policy_stats(env, Static(int(n), action_deltas=env.action_deltas), seeds)
        points.append(FrontierPoint(st.final_qos, st.mean_workers, st.worker_seconds,
                                    st.episodes, workers=int(n)))
    return points


def frontier_workers_at(points: Sequence[PolicyStats], qos: float) -> float:
    """Mean workers the static frontier needs for final QoS ``qos``: linear interpolation
    between neighbouring points of the (QoS-sorted, monotone) frontier; NaN above its best
    QoS, its smallest worker count below its lowest QoS."""
    pts = sorted(points, key=lambda p: (p.final_qos, p.mean_workers))
    # Workers non-decreasing in QoS (a point is only as dear as the cheapest one at least as
    # good), then one point per QoS level, the cheapest: many counts tie at the QoS ceiling,
    # and interpolating over tied levels gave any of their worker counts.
    q_all = np.array([p.final_qos for p in pts])
    w_all = np.minimum.accumulate(np.array([p.mean_workers for p in pts])[::-1])[::-1]
    q, first = np.unique(q_all, return_index=True)
    w = w_all[first]
    if qos > q[-1] + 1e-12:
        return float("nan")
    if qos <= q[0]:
        return float(w[0])
    return float(np.interp(qos, q, w))


def frontier_qos_at(points: Sequence[PolicyStats], workers: float) -> float:
    """Final QoS the static frontier reaches with ``workers`` mean workers: linear
    interpolation along the frontier's upper envelope (a point is only as good as the best one
    at most as dear); its lowest QoS below its fewest workers, its best QoS above its most.
    Where the frontier is flat (flash crowds: Static 22-31 within 0.004 of QoS) a small QoS
    difference is a large ratio of workers, so a report shows both."""
    pts = sorted(points, key=lambda p: (p.mean_workers, p.final_qos))
    w = np.array([p.mean_workers for p in pts])
    q = np.maximum.accumulate(np.array([p.final_qos for p in pts]))
    w, last = np.unique(w[::-1], return_index=True)  # one point per worker level, the best
    q = q[::-1][last]
    return float(np.interp(workers, w, q))


def _best(name: str, candidates: Sequence[tuple[dict[str, Any], PolicyStats]],
          slo: float) -> Calibration:
    meeting = [c for c in candidates if c[1].meets(slo)]
    if meeting:
        params, stats = min(meeting, key=lambda c: c[1].worker_seconds)
    else:
        params, stats = max(candidates, key=lambda c: (c[1].final_qos, -c[1].worker_seconds))
        log.warning("%s: no candidate meets the SLO %.3f; using the best QoS %.4f (%s)",
                    name, slo, stats.final_qos, params)
    return Calibration(name, dict(params), stats, slo, bool(meeting), list(candidates))


def calibrate_static(env, slo: float, seeds: Sequence[int],
                     counts: Iterable[int] | None = None) -> Calibration:
    """StaticBest: the fixed worker count of the fewest worker-seconds meeting ``slo``."""
    counts = list(counts) if counts is not None else list(range(env.min_workers,
                                                                env.max_workers + 1))
    points = static_frontier(env, counts, seeds)
    return _best("StaticBest", [({"workers": p.workers}, p) for p in points], slo)


def calibrate_keda(env, slo: float, seeds: Sequence[int], *,
                   targets: Sequence[float] = KEDA_TARGETS,
                   windows: Sequence[float] = KEDA_WINDOWS,
                   floors: Sequence[int] = KEDA_FLOORS) -> Calibration:
    """KedaCalibrated: the (listLength target, scale-down window, replica floor) of the
    fewest worker-seconds meeting ``slo``."""
    floors = sorted({env.min_workers, *(f for f in floors
                                        if env.min_workers <= f <= env.max_workers)})
    candidates = []
    for floor in floors:
        for window in windows:
            for target in targets:
                params = {"target_per_replica": target, "stabilization_window": window,
                          "min_workers": floor}
                candidates.append((params, policy_stats(env, make_keda(env, params), seeds)))
    return _best("KedaCalibrated", candidates, slo)


def calibrate_hpa(env, slo: float, seeds: Sequence[int], *,
                  targets: Mapping[str, Sequence[float]] = HPA_TARGETS,
                  windows: Sequence[float] = HPA_WINDOWS) -> Calibration:
    """HpaCalibrated: the (metric, target, scale-down window) of the fewest worker-seconds
    meeting ``slo``."""
    candidates = []
    for metric, values in targets.items():
        for window in windows:
            for target in values:
                params = {"metric": metric, "target": target, "stabilization_window": window}
                candidates.append((params, policy_stats(env, make_hpa(env, params), seeds)))
    return _best("HpaCalibrated", candidates, slo)


def make_hpa(env, params: Mapping[str, Any]) -> Hpa:
    return Hpa(target=float(params["target"]), metric=str(params["metric"]),
               stabilization_window=float(params["stabilization_window"]),
               min_workers=env.min_workers, max_workers=env.max_workers,
               step_duration=env.step_duration, action_deltas=env.action_deltas)


def make_keda(env, params: Mapping[str, Any]) -> KedaQueue:
    return KedaQueue(target_per_replica=float(params["target_per_replica"]),
                     stabilization_window=float(params["stabilization_window"]),
                     min_workers=int(params.get("min_workers", env.min_workers)),
                     max_workers=env.max_workers, step_duration=env.step_duration,
                     action_deltas=env.action_deltas)


#: Calibrated agent name -> (search, policy from the found parameters).
CALIBRATED: dict[str, tuple[Callable[..., Calibration], Callable[[Any, Mapping], Policy]]] = {
    "StaticBest": (calibrate_static,
                   lambda env, p: Static(int(p["workers"]), action_deltas=env.action_deltas)),
    "KedaCalibrated": (calibrate_keda, make_keda),
    "HpaCalibrated": (calibrate_hpa, make_hpa),
}


def calibrated_policy(name: str, env, slo: float, seeds: Sequence[int]) -> tuple[Policy,
                                                                                 Calibration]:
    """Search ``name``'s parameters on ``env`` over ``seeds``; the policy and the search."""
    search, build = CALIBRATED[name]
    cal = search(env, slo, seeds)
    policy = build(env, cal.params)
    policy.name = name
    log.info("%s calibrated for SLO %.3f: %s (QoS %.4f, mean workers %.2f)%s", name, slo,
             cal.params, cal.stats.final_qos, cal.stats.mean_workers,
             "" if cal.met else " - SLO not met by any candidate")
    return policy, cal


__all__ = ["CALIBRATED", "CALIBRATION_SEED_BASE", "Calibration", "FrontierPoint", "PolicyStats",
           "calibrate_hpa", "calibrate_keda", "calibrate_static", "calibrated_policy", "calibration_seeds",
           "frontier_workers_at", "make_hpa", "make_keda", "policy_stats", "static_frontier"]
