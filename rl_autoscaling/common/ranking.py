"""The one rule that ranks trained models, and the choice that survives new seeds.

Trainers (``models/<algo>_best.*``), Tune's ``eval_score`` and the Tune export all use it.

**Rank** (:func:`rank_key`, higher is better): a model whose greedy evaluation meets the
final-QoS SLO *by its lower bound* ranks above every model that does not; among those, fewer
mean workers rank higher; among the others, the higher QoS lower bound ranks higher (so when
nothing meets the SLO the choice is the model closest to it, never the cheapest one that
stalls the farm).

**Lower bound** (:func:`qos_lower_bound`): the 5th percentile of the bootstrap distribution of
the mean final QoS over the evaluation's episodes (2000 resamples, seeded). Final QoS has a
heavy lower tail (an episode where a tabular policy ping-pongs at 11-12 workers scores 0.56
among episodes at 0.99+), so ``mean - 1.645 sd / sqrt(n)`` is no bound there; the bootstrap
follows the sample's own skew. Without per-episode values (an evaluation record written
before they were kept) the normal bound is the fallback.

**Choice** (:func:`choose`): rank the candidates on one set of evaluation episodes (*pick*),
then confirm the best on a second, disjoint set (*confirm*); the figures reported are the
confirmed ones. A candidate whose confirmation misses the SLO is passed over for the next one
(a winner's curse: the best of several on one set is optimistic on that set). When none
confirms, the candidate with the highest confirmed QoS lower bound is chosen and the choice
says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

import numpy as np

#: Bootstrap resamples and the one-sided confidence of the QoS lower bound.
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
_Z = 1.6448536269514722  # the normal quantile of CONFIDENCE, for the fallback bound

T = TypeVar("T")


@dataclass(frozen=True)
class Evaluation:
    """Greedy evaluation of one model: per-episode final QoS and mean workers."""

    final_qos: tuple[float, ...]
    mean_workers: tuple[float, ...]
    #: fallback when the per-episode values are unknown: (mean, population std, n)
    qos_moments: tuple[float, float, int] | None = None

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Evaluation:
        """From a checkpoint evaluation record (``evaluation_metrics.json``): its per-episode
        ``episodes`` lists when present, else its mean/std."""
        per = record.get("episodes") or {}
        if per.get("final_qos"):
            return cls(tuple(map(float, per["final_qos"])),
                       tuple(map(float, per.get("mean_workers") or ())))
        qos = record.get("mean_final_qos")
        workers = record.get("mean_mean_workers", record.get("mean_workers"))
        if qos is None or qos != qos:
            return cls((), ())
        n = int(record.get("eval_episodes") or 1)
        return cls((), (float(workers),) if workers is not None else (),
                   (float(qos), float(record.get("std_final_qos") or 0.0), n))

    @property
    def episodes(self) -> int:
        return len(self.final_qos) if self.final_qos else (self.qos_moments or (0, 0, 0))[2]

    @property
    def mean_qos(self) -> float:
        if self.final_qos:
            return float(np.mean(self.final_qos))
        return self.qos_moments[0] if self.qos_moments else float("nan")

    @property
    def workers(self) -> float:
        return float(np.mean(self.mean_workers)) if self.mean_workers else float("inf")

    def qos_lower_bound(self) -> float:
        return qos_lower_bound(self)

    def summary(self, slo: float) -> dict[str, Any]:
        """The figures a report shows: mean final QoS with its lower bound and 95 % CI, mean
        workers with its 95 % CI, whether the SLO is met, the episode count."""
        return {
            "episodes": self.episodes,
            "final_qos": self.mean_qos,
            "final_qos_lower_bound": self.qos_lower_bound(),
            "final_qos_ci95": _ci95(self.final_qos),
            "mean_workers": self.workers,
            "mean_workers_ci95": _ci95(self.mean_workers),
            "slo": slo,
            "slo_met": slo_met(self, slo),
        }


def _ci95(values: Sequence[float]) -> float:
    """Half-width of a normal 95 % CI of the mean (0 for fewer than 2 values)."""
    if len(values) < 2:
        return 0.0
    return float(1.96 * np.std(values, ddof=1) / math.sqrt(len(values)))


def qos_lower_bound(ev: Evaluation, resamples: int = BOOTSTRAP_RESAMPLES,
                    confidence: float = CONFIDENCE, seed: int = 0) -> float:
    """One-sided lower bound of the mean final QoS (module docstring); NaN without data."""
    if ev.final_qos:
        values = np.asarray(ev.final_qos, dtype=float)
        if values.size == 1:
            return float(values[0])
        rng = np.random.default_rng(seed)
        means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
        return float(np.quantile(means, 1.0 - confidence))
    if ev.qos_moments is None:
        return float("nan")
    mean, std, n = ev.qos_moments
    return mean - _Z * std / math.sqrt(n - 1) if n > 1 else mean


def slo_met(ev: Evaluation, slo: float) -> bool:
    """Whether the evaluation meets the final-QoS SLO by its lower bound."""
    bound = qos_lower_bound(ev)
    return bound == bound and bound >= slo


def rank_key(ev: Evaluation, slo: float) -> tuple[float, float]:
    """The rank of an evaluation (higher is better; module docstring)."""
    if slo_met(ev, slo):
        return (1.0, -ev.workers)
    bound = qos_lower_bound(ev)
    return (0.0, bound if bound == bound else -1.0)


def score(ev: Evaluation, slo: float, bonus: float = 1000.0) -> float:
    """:func:`rank_key` as one number (Tune's ``eval_score``): ``bonus - workers`` when the SLO
    is met, else ``qos_lower_bound - 1`` (always below every met score, and rising with QoS);
    NaN without data."""
    if not ev.episodes:
        return float("nan")
    met, value = rank_key(ev, slo)
    return bonus + value if met else value - 1.0


@dataclass
class Choice(Generic[T]):
    """What :func:`choose` chose, and how."""

    candidate: T | None
    pick: Evaluation | None
    confirm: Evaluation | None
    confirmed: bool                       # the confirmation met the SLO
    tried: list[tuple[T, Evaluation, Evaluation]] = field(default_factory=list)


def choose(candidates: Sequence[tuple[T, Evaluation]],
           confirm: Callable[[T], Evaluation], slo: float,
           max_confirmations: int | None = None) -> Choice[T]:
    """Rank ``candidates`` (each with its *pick* evaluation) by :func:`rank_key`, confirm them
    in rank order with ``confirm`` (an evaluation on disjoint episodes) and return the first
    whose confirmation meets the SLO; if none does (or ``max_confirmations`` were tried), the
    tried candidate with the highest confirmed QoS lower bound."""
    ranked = sorted(candidates, key=lambda c: rank_key(c[1], slo), reverse=True)
    tried: list[tuple[T, Evaluation, Evaluation]] = []
    for candidate, pick in ranked[: max_confirmations or len(ranked)]:
        check = confirm(candidate)
        tried.append((candidate, pick, check))
        if slo_met(check, slo):
            return Choice(candidate, pick, check, True, tried)
    if not tried:
        return Choice(None, None, None, False, tried)
    best = max(tried, key=lambda t: rank_key(t[2], slo))
    return Choice(best[0], best[1], best[2], False, tried)


__all__ = ["BOOTSTRAP_RESAMPLES", "CONFIDENCE", "Choice", "Evaluation", "choose",
           "qos_lower_bound", "rank_key", "score", "slo_met"]
