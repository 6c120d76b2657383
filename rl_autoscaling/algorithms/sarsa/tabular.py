"""Tabular SARSA(lambda): discretiser, Q-table, epsilon-greedy, eligibility traces
(docs/algorithms.md#sarsalambda).

Plain Python + NumPy, no Ray: the RLlib ``SarsaLambda`` algorithm
(:mod:`rl_autoscaling.algorithms.sarsa.algorithm`), the ``train_sarsa`` CLI, ``SarsaPolicy`` and
the tests all run this one implementation.

- :class:`Discretiser`: per observation dimension, explicit strictly increasing edges; the
  bin index is the number of edges <= value, so values below the first / above the last edge
  fall into the first / last bin. Edges past the 9 observation values bin values derived from
  the observation (:data:`DERIVED`): the 10th the load, arrival rate / (workers x
  :data:`SERVICE_RATE`), the share of the farm's capacity the arrivals need; the 11th the
  trend, the mean arrival rate of the last :data:`TREND_STEPS` observations minus that of the
  :data:`TREND_STEPS` before, in the same unit (workers x :data:`SERVICE_RATE`). The trend needs
  the episode's earlier observations: a discretiser with trend edges keeps them (every call is
  the episode's next observation; :meth:`Discretiser.reset` at each episode's start).
  ``Discretiser.from_bins`` gives the documented default edges for
  the default bins ``(4, 7, 1, 1, 8, 8, 1, 5, 6)`` and equal-width bins between the
  observation-space bounds for any other bins.
- :class:`SarsaLambdaLearner`: the Q-table (``dict`` state -> list of 3 floats, zeros when
  first seen; plain lists are ~4x faster than 3-element NumPy arrays in the update loop),
  epsilon-greedy with greedy ties broken towards the *highest* action index, the online
  per-step SARSA(lambda) update with accumulating traces pruned below ``trace_threshold``,
  and ``epsilon <- max(epsilon_min, epsilon * epsilon_decay)`` after every episode.
- Model files (``sarsa_*.pkl``): :meth:`SarsaLambdaLearner.to_model` / :func:`load_model`.

Episode end: the last transition of an episode (terminated *or* truncated at ``max_steps``)
is treated as terminal, ``delta = r - Q(s, a)``: the seed's convention (docs/algorithms.md#dqn records it for
the seed's agents); the episode-end reward (completion bonus / unfinished-task penalty) is the
last reward, so nothing is bootstrapped past it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ...common.metrics import EpisodeTrace
from ...common.modelio import ModelFileError, load_pickle, save_pickle
from ...common.settings import check_bounds, setting
from ...env import miss_penalty_setting, qos_headroom_setting
from ...observation import DEFAULT_HIGH, DEFAULT_LOW, OBS_SIZE, SERVICE_RATE, Obs, load_of

ACTION_SIZE = 3
#: The docs/algorithms.md#sarsalambda default bins and the explicit edges that come with them.
DEFAULT_BINS: tuple[int, ...] = (4, 7, 1, 1, 8, 8, 1, 5, 6)
DEFAULT_EDGES: tuple[tuple[float, ...], ...] = (
    (0.5, 1.5, 2.5),                              # 0 input_queue
    (0.5, 2.5, 5.5, 9.5, 15.5, 30.5),             # 1 worker_queue
    (),                                           # 2 result_queue (one bin)
    (),                                           # 3 output_queue (one bin)
    (3.5, 7.5, 11.5, 12.5, 16.5, 20.5, 24.5),     # 4 workers
    (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),        # 5 avg_time
    (),                                           # 6 max_time (one bin)
    (0.15, 0.5, 1.5, 3.5),                        # 7 arrival_rate
    (0.5, 0.8, 0.9, 0.95, 0.999),                 # 8 qos_rate
)
#: Edges tuned on the simulated twin (``train_sarsa``'s default): worker queue 0 / 1-5 /
#: 6-15 / >15 and one bin per worker count, nothing else (~90 states visited). Finer states
#: (e.g. the arrival rate per 1 task/s, :data:`TWIN_EDGES_RATE`) fragment the visits: under
#: ``slo_cost`` the returns of 18..25 workers differ by less than the Q-estimates' noise in
#: rarely seen states, so the greedy policy drifted up to 21-25 workers
#: (the seed: ``--bins 4 7 1 1 8 8 1 5 6``).
TWIN_EDGES: tuple[tuple[float, ...], ...] = (
    (), (0.5, 5.5, 15.5), (), (), tuple(w + 0.5 for w in range(1, 31)), (), (), (), (),
)
#: :data:`TWIN_EDGES` plus one bit of the workload's clock: whether at most one phase is left
#: after the current one (``input_queue`` <= 1; docs/env.md#observation), ~180 states. On the
#: default workload a causal rule that holds 18 workers in its first two phases (x0.3, x1.5) and
#: 15 in its two oscillations is 0.968 x the static frontier, and slo_cost without its miss
#: penalty prefers it to any fixed count; with that reward the bit lets the table learn it
#: (0.987 x; with the penalty the same bit gave 1.144 x, and the phases left 0 / 1 / 2 / >= 3
#: 1.164 x).
TWIN_EDGES_PHASE: tuple[tuple[float, ...], ...] = ((1.5,), *TWIN_EDGES[1:])
#: A schedule: phases left 0 / 1 / 2 / >= 3 x worker count, no queue (~120 states), for
#: workloads of bursts shorter than the farm can follow (flash crowds, ``spike``): a queue
#: reaction comes after the burst has begun, and the queue bins' rarely visited states made the
#: phase table stumble there (hold or drop a worker as a burst began: 0.9831 at 23.08 workers on
#: flash crowds, 0.0045 under the static frontier's QoS with as many workers, 3 seeds). The
#: schedule climbs at +1 per step to 24-28 workers and holds them: the frontier's QoS with as
#: many workers (+0.0000 +- 0.0001, 5 seeds), and on ``spike`` at its ceiling (phase: -0.0070).
TWIN_EDGES_SCHEDULE: tuple[tuple[float, ...], ...] = (
    DEFAULT_EDGES[0], (), (), (), *TWIN_EDGES[4:],  # the seed's phases-left edges
)
#: The previous twin default: :data:`TWIN_EDGES` plus arrival-rate bins per 1 task/s up to 11.
TWIN_EDGES_RATE: tuple[tuple[float, ...], ...] = (
    (), (0.5, 5.5, 15.5), (), (), tuple(w + 0.5 for w in range(1, 31)), (), (),
    tuple(float(r) for r in range(1, 12)), (),
)

#: Values derived from an observation, binned by the edges after the 9 observation values.
DERIVED: tuple[str, ...] = ("load", "trend")
#: Observations per mean of the trend (2 x TREND_STEPS steps of history).
TREND_STEPS = 3
#: Load edges of :data:`TWIN_EDGES_LOAD`: 0.1-wide around the 0.6-0.9 a worker count that meets
#: the SLO runs at, coarser below and above.
LOAD_EDGES: tuple[float, ...] = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)
#: Load-aware edges: phases left 0 / 1 / 2 / >= 3, worker queue 0 / 1-5 / 6-15 / >15 and the
#: load (:data:`LOAD_EDGES`), nothing else (144 states): the state says whether the farm is
#: short of or above the capacity its arrivals need, at any arrival rate, so one table follows a
#: load that varies. Without the phases left (a coarse clock) the greedy policy scaled up at
#: loads of 0.5-0.8 all day (a state seen while the rate climbs and while it falls:
#: 1.07 x the static frontier on a compressed day); with the trend instead (:data:`DERIVED`) the
#: table fragmented (1.20 x).
TWIN_EDGES_LOAD: tuple[tuple[float, ...], ...] = (
    DEFAULT_EDGES[0], TWIN_EDGES[1], (), (), (), (), (), (), (), LOAD_EDGES,
)

MODEL_FORMAT = "rl_autoscaling.sarsa"
MODEL_VERSION = 1

State = tuple[int, ...]


# ---------------------------------------------------------------------------- discretiser

class Discretiser:
    """Maps an observation to a state key: a tuple of one bin index per dimension.

    Args:
        edges: per dimension, strictly increasing finite bin edges (empty: one bin).
    """

    def __init__(self, edges: Sequence[Sequence[float]]) -> None:
        if len(edges) > OBS_SIZE + len(DERIVED):
            raise ValueError(f"a discretiser has at most {OBS_SIZE + len(DERIVED)} dimensions "
                             f"({OBS_SIZE} observed, then {', '.join(DERIVED)}), got {len(edges)}")
        cleaned: list[tuple[float, ...]] = []
        for d, dim_edges in enumerate(edges):
            e = tuple(float(x) for x in dim_edges)
            if not all(math.isfinite(x) for x in e):
                raise ValueError(f"discretisation edges of dimension {d} must be finite")
            if any(b <= a for a, b in zip(e, e[1:])):
                raise ValueError(f"discretisation edges of dimension {d} must be strictly "
                                 f"increasing, got {list(e)}")
            cleaned.append(e)
        if not cleaned:
            raise ValueError("a discretiser needs at least one dimension")
        self.edges: tuple[tuple[float, ...], ...] = tuple(cleaned)
        self._rates: list[float] | None = None  # this episode's arrival rates (trend only)

    def reset(self) -> None:
        """Start an episode: forget the arrival rates the trend is computed from."""
        self._rates = None

    @property
    def bins(self) -> tuple[int, ...]:
        """Number of bins per dimension (edges + 1)."""
        return tuple(len(e) + 1 for e in self.edges)

    @property
    def observed(self) -> int:
        """Number of observation values binned (the dimensions before the derived ones)."""
        return min(len(self.edges), OBS_SIZE)

    @property
    def num_states(self) -> int:
        """Size of the discrete state space (product of the bins)."""
        return int(np.prod(self.bins))

    @classmethod
    def from_bins(cls, bins: Sequence[int] = DEFAULT_BINS,
                  low: Sequence[float] | None = None,
                  high: Sequence[float] | None = None) -> Discretiser:
        """The documented default edges for ``DEFAULT_BINS``; otherwise equal-width bins on [low, high].

        Raises:
            ValueError: a bin count < 1, wrong length, or missing / empty bounds.
        """
        b = tuple(int(x) for x in bins)
        if any(float(x) != int(x) for x in bins):
            raise ValueError(f"bins must be integers, got {list(bins)}")
        if len(b) != OBS_SIZE:
            raise ValueError(f"bins needs {OBS_SIZE} integers (one per observation), "
                             f"got {len(b)}")
        if any(x < 1 for x in b):
            raise ValueError(f"every bin count must be >= 1, got {list(b)}")
        if b == DEFAULT_BINS:
            return cls(DEFAULT_EDGES)
        return cls(equal_width_edges(b, DEFAULT_LOW if low is None else low,
                                     DEFAULT_HIGH if high is None else high))

    def __call__(self, obs: Sequence[float]) -> State:
        state = tuple(bisect_right(e, float(v)) for e, v in zip(self.edges, obs))
        if len(self.edges) > OBS_SIZE:
            state += (bisect_right(self.edges[OBS_SIZE], load_of(obs)),)
        if len(self.edges) > OBS_SIZE + 1:
            state += (bisect_right(self.edges[OBS_SIZE + 1], self._trend(obs)),)
        return state

    def _trend(self, obs: Sequence[float]) -> float:
        """Records ``obs``'s arrival rate and returns the trend (module docstring); 0 until
        the episode has two rates (the reset observation's rate, always 0, is skipped)."""
        if self._rates is None:
            self._rates = []  # the episode's first (reset) observation
            return 0.0
        rates = self._rates
        rates.append(float(obs[Obs.ARRIVAL_RATE]))
        del rates[:-2 * TREND_STEPS]
        if len(rates) < 2:
            return 0.0
        half = len(rates) // 2
        now, before = rates[-half:], rates[-2 * half:-half]
        capacity = max(1.0, float(obs[Obs.WORKERS])) * SERVICE_RATE
        return (sum(now) / half - sum(before) / half) / capacity

    def to_dict(self) -> dict[str, Any]:
        """``{"bins": [...], "edges": [[...], ...]}`` (plain lists, for model files)."""
        return {"bins": list(self.bins), "edges": [list(e) for e in self.edges]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Discretiser:
        """Inverse of :meth:`to_dict`; ``bins`` alone (+ optional ``low``/``high``) also works."""
        if data.get("edges") is not None:
            edges = [list(np.asarray(e, dtype=float).ravel()) for e in data["edges"]]
            disc = cls(edges)
            if data.get("bins") is not None and tuple(int(b) for b in data["bins"]) != disc.bins:
                raise ValueError(f"discretisation bins {list(data['bins'])} do not match its "
                                 f"edges (bins {list(disc.bins)})")
            return disc
        if data.get("bins") is None:
            raise ValueError("discretisation needs 'edges' or 'bins'")
        return cls.from_bins(data["bins"], data.get("low"), data.get("high"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Discretiser) and self.edges == other.edges

    def __repr__(self) -> str:
        return f"Discretiser(bins={list(self.bins)})"


def equal_width_edges(bins: Sequence[int], low: Sequence[float],
                      high: Sequence[float]) -> list[list[float]]:
    """Interior edges of ``bins[d]`` equal-width bins between ``low[d]`` and ``high[d]``."""
    lo = np.asarray(low, dtype=float)
    hi = np.asarray(high, dtype=float)
    if lo.shape != (len(bins),) or hi.shape != (len(bins),):
        raise ValueError(f"bounds must have {len(bins)} values")
    edges = []
    for d, b in enumerate(bins):
        if b > 1 and not hi[d] > lo[d]:
            raise ValueError(f"dimension {d} has empty bounds [{lo[d]}, {hi[d]}]; "
                             "it can only have 1 bin")
        edges.append([float(lo[d] + (hi[d] - lo[d]) * k / b) for k in range(1, b)])
    return edges


# ---------------------------------------------------------------------------- hyperparameters

@dataclass
class SarsaHyperparams:
    """SARSA(lambda) hyperparameters (docs/algorithms.md#sarsalambda). Defaults: the ``twin``
    recipe (tuned on the simulated twin); ``seed=``: the original toolkit's value.

    alpha 0.02 and lambda 0.5: the slo_cost returns of neighbouring worker counts differ by ~1
    per episode against a miss penalty of 50, so the Q-estimates need a small step to average
    that noise out (alpha 0.1 drifted up to 21-25 workers). Exploring starts: a greedy tabular
    policy only learns the states its own starts lead to (a rarely visited state at 12 workers
    had learned "scale down" and the policy ping-ponged at 11-12 workers, final QoS 0.56).
    """

    alpha: float = setting(0.02, "learning rate", seed=0.025, gt=0, le=1)
    gamma: float = setting(0.985, "discount factor", ge=0, le=1)
    epsilon: float = setting(0.40, "initial exploration rate", ge=0, le=1)
    epsilon_min: float = setting(0.02, "exploration floor", seed=0.10, ge=0, le=1)
    epsilon_decay: float = setting(0.999, "per-episode epsilon decay", seed=0.995, gt=0, le=1)
    trace_lambda: float = setting(0.5, "eligibility-trace decay; 0 = one-step SARSA", ge=0, le=1)
    trace_threshold: float = setting(1e-5, "drop a state's trace once max|e| falls below this",
                                     ge=0)
    tie_action: float = setting(1.0, "action greedy ties and unseen states go to: 1 = keep "
                                     "the worker count, -1 = the highest (+1 worker)", seed=-1.0,
                                ge=-1, whole=True)
    explore_starts: float = setting(
        0.5, "fraction of training episodes that start at a random worker count "
             "(exploring starts; greedy evaluation never does)", seed=0.0, metavar="FRACTION",
        ge=0, le=1)
    explore_start_min: float = setting(6.0, "lowest worker count of exploring starts", cli=False,
                                       ge=1, whole=True)
    explore_start_max: float = setting(26.0, "highest worker count of exploring starts",
                                       cli=False, ge=1, whole=True)

    def validate(self) -> SarsaHyperparams:
        """Raise ValueError naming the first out-of-range value (the fields' declared bounds,
        then the cross-field check); returns self."""
        check_bounds(self)
        if self.explore_start_min > self.explore_start_max:
            raise ValueError("need explore_start_min <= explore_start_max, got "
                             f"{self.explore_start_min} and {self.explore_start_max}")
        return self

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SarsaHyperparams:
        """Pick the known keys of ``data`` (extra keys are ignored), as floats."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in data.items() if k in names})


#: The named states of ``--state`` (SarsaRun.state).
STATES: dict[str, tuple[tuple[float, ...], ...]] = {
    "twin": TWIN_EDGES, "phase": TWIN_EDGES_PHASE, "load": TWIN_EDGES_LOAD,
    "schedule": TWIN_EDGES_SCHEDULE}
#: The load a worker count meeting the SLO runs at (the middle of :data:`LOAD_EDGES`' fine bins).
FOLLOW_LOAD = 0.7
#: Steps a rise must last to count as more than a burst for ``--state auto``: by then the farm
#: has added 3 workers, and a queue reaction to a 20-s burst comes after it is over.
BURST_STEPS = 3


def auto_state(config: Any = None, step_duration: Optional[float] = None) -> tuple[str, str]:
    """The state ``--state auto`` picks for the workload ``config`` (a ``FarmConfig``, a
    profile name or YAML path; None: the packaged default) at steps of ``step_duration``
    seconds (None: the env's default), and why (docs/algorithms.md#sarsalambda).

    ``load`` when the farm can follow the workload: its steepest rise over one step needs at
    most the one worker per step the env can add (at :data:`FOLLOW_LOAD`). ``schedule`` when
    its rises are bursts: no rise kept for :data:`BURST_STEPS` steps needs more than that
    (flash crowds, ``spike``). Otherwise ``phase``, a count with queue reactions for the first
    phases and one for the last two, since a load-following table is late wherever the rate
    jumps (measured: on the default workload ``load`` is 1.08-1.11x the static frontier,
    ``twin`` 1.01-1.015x, ``phase`` 0.987x, ``schedule`` 0.999x; on the compressed day
    ``load`` 0.84x, ``twin`` 1.00x; on flash crowds ``schedule`` is at the frontier's QoS,
    ``phase`` 0.004 under it).
    """
    from ...config import resolve_config
    from ...env import EnvSettings
    from ...farm.workload import rate_rise

    step = EnvSettings().step_duration if step_duration is None else float(step_duration)
    cfg = resolve_config(config)
    need = rate_rise(cfg, step) / (SERVICE_RATE * FOLLOW_LOAD)
    if need <= 1.0:
        return "load", (f"the workload's steepest rise needs {need:.2f} workers per {step:g}-s "
                        "step, within the 1 the farm can add")
    kept = rate_rise(cfg, step, hold=BURST_STEPS * step) / (SERVICE_RATE * FOLLOW_LOAD)
    why = (f"the workload's steepest rise needs {need:.2f} workers per {step:g}-s step, beyond "
           f"the 1 the farm can add; one kept for {BURST_STEPS} steps needs {kept:.2f}")
    return ("schedule", why + ": its rises are bursts") if kept <= 1.0 else ("phase", why)


def named_state_edges(name: str) -> tuple[list[list[float]], tuple[int, ...]]:
    """(edges, bins) of the named state ``name`` of :data:`STATES`."""
    edges = STATES[name]
    return [list(e) for e in edges], tuple(len(e) + 1 for e in edges)


@dataclass(frozen=True)
class SarsaRun:
    """Trainer settings of SARSA(lambda) (``train_sarsa`` and the Tune service). Defaults: the
    ``twin`` recipe; ``seed=``: the original toolkit's."""

    episodes: int = setting(5000, "training episodes", seed=100, ge=1)
    # 20 candidates for the ranking: without slo_cost's miss penalty the checkpoints differ
    # in thrift, and every 1000 episodes (5) left one training seed in three at 1.09 x
    checkpoint_every: int = setting(250, "save and evaluate every N episodes; 0 = only at the end",
                                    seed=10, ge=0)
    # 100 greedy episodes per checkpoint (~0.5 s on the twin): the best-checkpoint rule needs
    # them to see rare collapses (a policy stuck at 11-12 workers in 1 episode of 20).
    eval_episodes: int = setting(100, "greedy episodes per checkpoint evaluation; 0 = none",
                                 seed=3, ge=0)
    state: str = setting(
        "auto", "state without --bins: twin = worker queue x worker count (TWIN_EDGES: the best "
                "fixed count); phase = twin x whether at most one phase is left "
                "(TWIN_EDGES_PHASE: a count for the first phases and one for the last two, "
                "for workloads whose rate jumps); load = phases left x worker "
                "queue x load relative to capacity (TWIN_EDGES_LOAD: follows traffic that "
                "varies over minutes, e.g. --config day); schedule = phases left x worker "
                "count (TWIN_EDGES_SCHEDULE: a count per part of the workload, for bursts "
                "shorter than the farm can follow, e.g. --config flash); auto = load when the "
                "farm can follow the workload's steepest rise at +1 worker per step, schedule "
                "when its rises are bursts over within 3 steps, else phase",
        choices=("auto", *STATES))
    bins: Optional[tuple[int, ...]] = setting(
        None, "bins per observation dimension (none: the edges of --state; "
              "4 7 1 1 8 8 1 5 6: the seed's, with its explicit edges; other values: "
              "equal-width bins between the observation bounds)", seed=DEFAULT_BINS, metavar="N")
    # no QoS headroom: chosen at the SLO itself, SARSA's models met it on 10 of 10 training
    # seeds' held-out episodes; with DQN's 0.003 they cost 0.015-0.03 x more workers
    qos_headroom: float = qos_headroom_setting(0.0)
    # 0: the return is then "fewest worker-seconds, misses over the budget at 0.5 each", whose
    # optimum on the default workload follows its phases (the config's 50 makes it a fixed
    # count; docs/algorithms.md#sarsalambda)
    miss_penalty: Optional[float] = miss_penalty_setting(0.0)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> SarsaRun:
        """Raise ValueError naming the first value outside its declared bounds (run at
        construction, so a trainer refuses a flag before its run directory exists); returns
        self. ``bins`` is checked by :class:`Discretiser`."""
        check_bounds(self)
        if self.bins is not None:
            Discretiser.from_bins(self.bins)
        return self

    def episode_count(self, max_steps: int) -> int:
        """Training episodes (the same for any episode length)."""
        return int(self.episodes)

    def checkpoint_interval(self, max_steps: int) -> int:
        """Episodes between checkpoints (the same for any episode length)."""
        return int(self.checkpoint_every)

    def episodes_per_iteration(self) -> int:
        """Training episodes per ``train()`` call: RLlib's per-iteration overhead (~50 ms)
        dwarfs a twin episode (~4 ms), so batches of up to 100 that divide the run and its
        checkpoints."""
        return math.gcd(self.episodes, self.checkpoint_every or self.episodes, 100)

    def resolved_state(self, config: Any = None,
                       step_duration: Optional[float] = None) -> tuple[str, str]:
        """The named state for the workload ``config`` and why (``auto``: :func:`auto_state`,
        which takes the same arguments)."""
        if self.state == "auto":
            return auto_state(config, step_duration)
        return self.state, "chosen"

    def state_edges(self, config: Any = None, step_duration: Optional[float] = None
                    ) -> tuple[list[list[float]] | None, tuple[int, ...]]:
        """(explicit edges or None, bins) of the discretiser these settings choose for the
        workload ``config`` (None: the packaged default)."""
        if self.bins is None:
            return named_state_edges(self.resolved_state(config, step_duration)[0])
        return None, tuple(int(b) for b in self.bins)


# ---------------------------------------------------------------------------- learner

@dataclass
class EpisodeResult:
    """One training episode: its trace, the epsilon it explored with, its Q updates."""

    trace: EpisodeTrace
    epsilon: float
    updates: int


class SarsaLambdaLearner:
    """Tabular SARSA(lambda) with an online per-step update.

    Args:
        discretiser: observation -> state key.
        hyperparams: see :class:`SarsaHyperparams`.
        action_size: number of discrete actions.
        seed: seed of the epsilon-greedy RNG.
        epsilon: current exploration rate (default ``hyperparams.epsilon``).
    """

    def __init__(self, discretiser: Discretiser | None = None,
                 hyperparams: SarsaHyperparams | None = None, action_size: int = ACTION_SIZE,
                 seed: int | None = None, epsilon: float | None = None) -> None:
        self.discretiser = discretiser or Discretiser(DEFAULT_EDGES)
        self.hp = (hyperparams or SarsaHyperparams()).validate()
        if action_size < 1:
            raise ValueError(f"action_size must be >= 1, got {action_size}")
        self.action_size = int(action_size)
        self.epsilon = float(self.hp.epsilon if epsilon is None else epsilon)
        self.q: dict[State, list[float]] = {}
        self.traces: dict[State, list[float]] = {}
        self.rng = np.random.default_rng(seed)
        #: Trace figures of the last training episode (for debug summaries).
        self.last_episode_stats: dict[str, float] = {}
        self._peak_states = 0
        self._peak_trace = 0.0

    # ---- Q-table and action choice

    def state(self, obs: Sequence[float]) -> State:
        """The discretised state key of ``obs``."""
        return self.discretiser(obs)

    def q_values(self, state: State) -> np.ndarray:
        """A copy of Q(state, .), without adding unseen states (zeros for them)."""
        row = self.q.get(state)
        return np.zeros(self.action_size) if row is None else np.array(row, dtype=float)

    def _row(self, state: State) -> list[float]:
        row = self.q.get(state)
        if row is None:
            row = self.q[state] = [0.0] * self.action_size
        return row

    def greedy(self, state: State) -> int:
        """argmax_a Q(state, a); ties (and unseen states) -> ``hp.tie_action`` if it is among
        the best, else the highest best index (``tie_action`` -1: the highest, the seed)."""
        tie = int(self.hp.tie_action)
        best = self.action_size - 1 if tie < 0 or tie >= self.action_size else tie
        row = self.q.get(state)
        if row is None:
            return best
        for i in range(self.action_size - 1, -1, -1):
            if row[i] > row[best]:
                best = i
        return best

    def act(self, state: State) -> int:
        """Epsilon-greedy action for ``state`` (random with probability epsilon)."""
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.action_size))
        return self.greedy(state)

    def greedy_action(self, obs: Sequence[float], info: Mapping[str, Any] | None = None) -> int:
        """Greedy action for a raw observation (``run_episode``'s policy signature); an
        ``info`` of step 0 (the reset's) starts a new episode for the discretiser."""
        if info is not None and info.get("step") == 0:
            self.discretiser.reset()
        return self.greedy(self.discretiser(obs))

    # ---- learning

    def update(self, s: State, a: int, reward: float, s_next: State | None,
               a_next: int | None) -> float:
        """One SARSA(lambda) update; ``s_next``/``a_next`` None marks the episode's end.

        delta = r + gamma Q(s', a') - Q(s, a) (the bootstrap term is 0 at the episode's end).
        lambda <= 0: Q(s, a) += alpha delta. lambda > 0: e(s)[a] += 1, then for every traced
        state Q(s, .) += alpha delta e(s, .) and e(s, .) *= gamma lambda, dropping the state
        once max|e(s, .)| < trace_threshold. Returns delta.
        """
        hp = self.hp
        q_sa = self._row(s)
        target = reward if a_next is None else reward + hp.gamma * self._row(s_next)[a_next]
        delta = float(target - q_sa[a])
        if hp.trace_lambda <= 0:
            q_sa[a] += hp.alpha * delta
            return delta
        trace = self.traces.get(s)
        if trace is None:
            trace = self.traces[s] = [0.0] * self.action_size
        trace[a] += 1.0
        if trace[a] > self._peak_trace:
            self._peak_trace = trace[a]
        if len(self.traces) > self._peak_states:
            self._peak_states = len(self.traces)
        step = hp.alpha * delta
        decay = hp.gamma * hp.trace_lambda
        threshold = hp.trace_threshold
        actions = range(self.action_size)
        for key, e in list(self.traces.items()):
            row = self.q[key]
            for i in actions:
                row[i] += step * e[i]
                e[i] *= decay
            # Accumulating traces are never negative, so max|e| is max(e).
            if max(e) < threshold:
                del self.traces[key]
        return delta

    def decay_epsilon(self) -> float:
        """epsilon <- max(epsilon_min, epsilon * epsilon_decay); returns the new epsilon."""
        self.epsilon = max(self.hp.epsilon_min, self.epsilon * self.hp.epsilon_decay)
        return self.epsilon

    def start_options(self, env) -> dict[str, int] | None:
        """Exploring starts: with probability ``explore_starts``, reset options that start the
        episode at a worker count drawn uniformly from [explore_start_min, explore_start_max]
        (capped at the env's maximum). Greedy states an agent rarely reaches from the env's
        own start (e.g. 12 workers while the high phase's queue builds) get visited, so their
        Q-values are learned rather than left to a few noisy updates. None: the env's start
        (and no random draw, so ``explore_starts = 0`` keeps the seed's random stream)."""
        if self.hp.explore_starts <= 0 or self.rng.random() >= self.hp.explore_starts:
            return None
        space = env.observation_space
        high = min(int(self.hp.explore_start_max), int(space.high[Obs.WORKERS]))
        low = min(max(int(self.hp.explore_start_min), int(space.low[Obs.WORKERS])), high)
        return {"initial_workers": int(self.rng.integers(low, high + 1))}

    def train_episode(self, env, seed: int | None = None) -> EpisodeResult:
        """Play one epsilon-greedy episode on ``env``, updating after every step, then decay
        epsilon. Traces start empty and are cleared at the end."""
        eps = self.epsilon
        self.traces.clear()
        self._peak_states, self._peak_trace = 0, 0.0
        trace = EpisodeTrace()
        obs, _ = env.reset(seed=seed, options=self.start_options(env))
        self.discretiser.reset()
        s = self.state(obs)
        a = self.act(s)
        updates = 0
        while True:
            obs, reward, terminated, truncated, info = env.step(a)
            trace.record(obs, reward, info)
            if terminated or truncated:
                self.update(s, a, float(reward), None, None)
                updates += 1
                break
            s_next = self.state(obs)
            a_next = self.act(s_next)
            self.update(s, a, float(reward), s_next, a_next)
            updates += 1
            s, a = s_next, a_next
        self.traces.clear()
        self.last_episode_stats = {"peak_traced_states": self._peak_states,
                                   "peak_trace": self._peak_trace}
        self.decay_epsilon()
        return EpisodeResult(trace=trace, epsilon=eps, updates=updates)

    # ---- state (checkpoints) and model files

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue training exactly (plain values and arrays)."""
        keys = list(self.q)
        return {
            "q_keys": np.asarray(keys, dtype=np.int64).reshape(len(keys), -1),
            "q_values": np.asarray([self.q[k] for k in keys],
                                   dtype=float).reshape(len(keys), self.action_size),
            "epsilon": self.epsilon,
            "hyperparams": asdict(self.hp),
            "discretisation": self.discretiser.to_dict(),
            "action_size": self.action_size,
            "rng": self.rng.bit_generator.state,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_state` output (traces are per-episode and start empty)."""
        self.discretiser = Discretiser.from_dict(state["discretisation"])
        self.hp = SarsaHyperparams.from_mapping(state["hyperparams"]).validate()
        self.action_size = int(state["action_size"])
        self.epsilon = float(state["epsilon"])
        keys = np.asarray(state["q_keys"], dtype=np.int64)
        values = np.asarray(state["q_values"], dtype=float)
        self.q = {tuple(int(x) for x in k): [float(x) for x in values[i]]
                  for i, k in enumerate(keys)}
        self.traces = {}
        if state.get("rng") is not None:
            self.rng.bit_generator.state = state["rng"]

    def to_model(self, **extra: Any) -> dict[str, Any]:
        """The model dict (docs/algorithms.md#sarsalambda): action_size, hyperparams,
        discretisation, epsilon, q_table (state tuple -> list of floats), plus ``format``,
        ``version`` and ``extra`` keys."""
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "action_size": self.action_size,
            "hyperparams": asdict(self.hp),
            "discretisation": self.discretiser.to_dict(),
            "epsilon": float(self.epsilon),
            "q_table": {k: list(v) for k, v in self.q.items()},
            **extra,
        }

    def save(self, path: str | Path, **extra: Any) -> Path:
        """Atomically write the model file (see :meth:`to_model`)."""
        return save_pickle(path, self.to_model(**extra))

    @classmethod
    def from_model(cls, model: Mapping[str, Any], seed: int | None = None,
                   source: str = "model") -> SarsaLambdaLearner:
        """Build a learner from a model dict (validated; ModelFileError on any problem)."""
        m = validate_model(model, source)
        learner = cls(Discretiser.from_dict(m["discretisation"]),
                      SarsaHyperparams.from_mapping(m["hyperparams"]),
                      action_size=m["action_size"], seed=seed, epsilon=m["epsilon"])
        learner.q = m["q_table"]
        return learner

    @classmethod
    def load(cls, path: str | Path, seed: int | None = None) -> SarsaLambdaLearner:
        """Load a ``sarsa_*.pkl`` model file (restricted unpickler + validation)."""
        return cls.from_model(load_pickle(path, "SARSA model file"), seed=seed, source=str(path))


def validate_model(model: Any, source: str = "model") -> dict[str, Any]:
    """Check a loaded model dict and normalise it (q_table rows as lists of floats).

    Accepts the original toolkit's files too: extra keys, NumPy arrays for edges and Q rows,
    missing ``format``/``hyperparams``. Raises ModelFileError naming ``source``.
    """
    def fail(why: str) -> ModelFileError:
        return ModelFileError(f"{source} is not a SARSA model: {why}")

    if not isinstance(model, Mapping):
        raise fail(f"expected a dict, found {type(model).__name__}")
    fmt = model.get("format", MODEL_FORMAT)
    if fmt != MODEL_FORMAT:
        raise fail(f"format is {fmt!r}, expected {MODEL_FORMAT!r}")
    for key in ("q_table", "discretisation"):
        if key not in model:
            raise fail(f"missing '{key}'")
    try:
        action_size = int(model.get("action_size", ACTION_SIZE))
        if action_size < 1:
            raise ValueError(f"action_size {action_size} < 1")
        disc_data = model["discretisation"]
        if not isinstance(disc_data, Mapping):
            raise ValueError("'discretisation' must be a dict")
        disc = Discretiser.from_dict(disc_data)
        hp_data = model.get("hyperparams") or {}
        if not isinstance(hp_data, Mapping):
            raise ValueError("'hyperparams' must be a dict")
        hp = SarsaHyperparams.from_mapping(hp_data).validate()
        epsilon = float(model.get("epsilon", hp.epsilon))
        raw_q = model["q_table"]
        if not isinstance(raw_q, Mapping):
            raise ValueError("'q_table' must be a dict")
        q: dict[State, list[float]] = {}
        for key, row in raw_q.items():
            if not isinstance(key, tuple) or len(key) != len(disc.bins):
                raise ValueError(f"q_table key {key!r} is not a tuple of {len(disc.bins)} ints")
            state = tuple(int(x) for x in key)
            values = np.asarray(row, dtype=float).reshape(-1)
            if values.shape != (action_size,) or not np.all(np.isfinite(values)):
                raise ValueError(f"q_table row for {state} is not {action_size} finite floats")
            q[state] = [float(x) for x in values]
    except (TypeError, ValueError, OverflowError) as exc:
        raise fail(str(exc)) from None
    return {"action_size": action_size, "discretisation": disc.to_dict(),
            "hyperparams": asdict(hp), "epsilon": epsilon, "q_table": q}


def load_model(path: str | Path, seed: int | None = None) -> SarsaLambdaLearner:
    """Load a SARSA model file; see :meth:`SarsaLambdaLearner.load`."""
    return SarsaLambdaLearner.load(path, seed=seed)


__all__ = [
    "ACTION_SIZE", "DEFAULT_BINS", "DEFAULT_EDGES", "DERIVED", "Discretiser", "EpisodeResult",
    "FOLLOW_LOAD", "auto_state", "named_state_edges",
    "LOAD_EDGES", "MODEL_FORMAT", "OBS_SIZE", "SERVICE_RATE", "SarsaHyperparams",
    "SarsaLambdaLearner", "TREND_STEPS", "TWIN_EDGES", "TWIN_EDGES_LOAD", "TWIN_EDGES_PHASE",
    "TWIN_EDGES_RATE", "TWIN_EDGES_SCHEDULE", "BURST_STEPS",
    "equal_width_edges",
    "load_of",
    "load_model", "validate_model",
]
