"""Workload generation: phases -> task arrivals, processing times and deadlines (docs/farm.md#workload).

The emitter of the real farm generates each phase in windows of ``window_duration`` seconds:
with ``remaining`` tasks left and ``k`` windows left it emits ``min(Poisson(remaining / k),
remaining)`` tasks (all remaining ones in the last window), separated by exponential gaps of
mean ``window / n``; a window that draws no task takes no time, so sparse phases end early.
Non-steady patterns weight each window's expected share by the rate profile at the window's
nominal midpoint, so the phase total is kept and steady phases reduce to the rule above.

Every draw comes from one ``numpy.random.Generator`` seeded by the episode's task seed, so equal
seeds give identical workloads. The live farm's emitter calls the same functions.

A config with a ``generator:`` section (domain randomisation, ``configs/mixed.yml``) draws
each episode's phases from the episode seed (:func:`generated_phases`) before generating its
tasks as above, so the twin and the live emitter see the same episode for the same seed; its
:func:`expected_task_count`, :func:`phase_count` and :func:`workload_seconds` are bounds over
all episodes (the env sizes its observation and its steps by them).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import (
    ConfigError,
    DeadlineConfig,
    FarmConfig,
    GeneratorConfig,
    PhaseConfig,
    ProcessingConfig,
)


@dataclass(frozen=True)
class Workload:
    """One episode's tasks, in emission order. Times are seconds from generation start."""

    arrivals: np.ndarray  # float64, non-decreasing
    processing: np.ndarray  # seconds of work per task
    deadlines: np.ndarray
    image_sizes: np.ndarray  # int64 pixels per side
    phase_index: np.ndarray  # int64, position of the task's phase in ``phase_names``
    phase_names: tuple[str, ...]  # in the order they are emitted
    phase_starts: np.ndarray  # when the emitter pops each phase descriptor
    end_time: float  # when the emitter has waited out its last gap

    @property
    def expected_tasks(self) -> int:
        return int(self.arrivals.size)

    @property
    def total_work(self) -> float:
        """Total processing seconds: the work-conserving lower bound numerator."""
        return float(self.processing.sum())


def phase_task_count(base_rate: float, phase: PhaseConfig) -> int:
    """Tasks in one phase: floor(base_rate x mean multiplier x duration / 60)."""
    if phase.pattern == "spike":
        d = phase.phase_duration
        mean = (phase.multiplier * (d - phase.spike_duration)
                + phase.spike_multiplier * phase.spike_duration) / d
    elif phase.pattern == "ramp":
        mean = (phase.ramp_from + phase.ramp_to) / 2
    else:
        # Steady and oscillation phases: the multiplier (the oscillation's mid level is the
        # multiplier's scale, as in the original configuration).
        mean = phase.multiplier
    return int(math.floor(base_rate * mean * phase.phase_duration / 60.0 + 1e-9))


def expected_task_count(cfg: FarmConfig) -> int:
    """Tasks one episode generates: the phase totals, or the trace's rows; with a generator,
    the most an episode can hold (``rate_max`` for ``episode_max`` seconds)."""
    if cfg.trace:
        return int(load_trace(cfg.trace).shape[0])
    if cfg.generator is not None:
        gen = cfg.generator
        return int(math.floor(cfg.base_rate * gen.rate_max * gen.episode_max / 60.0)) + 1
    return sum(phase_task_count(cfg.base_rate, p) for p in cfg.phase_definitions)


def phase_count(cfg: FarmConfig) -> int:
    """Phases per episode (a trace is one); with a generator, the most an episode can have."""
    if cfg.trace:
        return 1
    if cfg.generator is not None:
        gen = cfg.generator
        # at most floor(episode / shape_min) + 1 shapes (the last one cut short), 3 phases each
        return 3 * (int(math.floor(gen.episode_max / gen.shape_min)) + 1)
    return len(cfg.phase_definitions)


def workload_seconds(cfg: FarmConfig) -> float:
    """Nominal seconds of an episode's workload: the phase durations' sum, the trace's last
    arrival, or a generator's longest episode."""
    if cfg.trace:
        data = load_trace(cfg.trace)
        return float(data[-1, 0] - data[0, 0])
    if cfg.generator is not None:
        return float(cfg.generator.episode_max)
    return float(sum(p.phase_duration for p in cfg.phase_definitions))


def episode_steps(cfg: FarmConfig, step_duration: float, drain_steps: int = 2) -> int:
    """Steps an episode needs for its workload to be emitted and drained: the nominal
    seconds over ``step_duration``, plus ``drain_steps``. (An episode that drains sooner
    terminates sooner.)"""
    return int(math.ceil(workload_seconds(cfg) / step_duration - 1e-9)) + int(drain_steps)


def generated_phases(gen: GeneratorConfig, rng: np.random.Generator) -> list[PhaseConfig]:
    """One episode's phases drawn by the generator ``gen`` with ``rng`` (see GeneratorConfig)."""
    total = float(rng.uniform(gen.episode_min, gen.episode_max))

    def rate(a: float, b: float) -> float:
        return float(rng.uniform(a, b))

    phases: list[PhaseConfig] = []
    level, t, shapes = None, 0.0, 0
    while total - t > 1e-6:
        # the first shape opens at rates the workers at reset can serve (start_max)
        lo = gen.rate_min
        hi = gen.rate_max if phases else min(gen.rate_max, gen.start_max)
        mid = (lo + hi) / 2
        if level is None:
            level = rate(lo, hi)
        length = min(float(rng.uniform(gen.shape_min, gen.shape_max)), total - t)
        shape = gen.shapes[int(rng.integers(len(gen.shapes)))]
        shapes += 1
        name = f"{shapes} {shape}"
        if shape == "steady":
            level = rate(lo, hi)
            phases.append(PhaseConfig(name, length, multiplier=level))
        elif shape == "ramp":
            end = rate(lo, hi)
            phases.append(PhaseConfig(name, length, pattern="ramp", ramp_from=level,
                                      ramp_to=end))
            level = end
        elif shape == "day":
            low, peak = rate(lo, mid), rate(mid, hi)
            phases += [PhaseConfig(f"{name} rise", 0.4 * length, pattern="ramp", ramp_from=low,
                                   ramp_to=peak),
                       PhaseConfig(f"{name} peak", 0.2 * length, multiplier=peak),
                       PhaseConfig(f"{name} fall", 0.4 * length, pattern="ramp", ramp_from=peak,
                                   ramp_to=low)]
            level = low
        else:  # burst
            quiet, peak = rate(lo, mid), rate(mid, hi)
            burst = min(float(rng.uniform(gen.burst_min, gen.burst_max)), length / 2)
            start = float(rng.uniform(0.0, length - burst))
            phases.append(PhaseConfig(name, length, multiplier=quiet, pattern="spike",
                                      spike_multiplier=peak, spike_start=start,
                                      spike_duration=burst))
            level = quiet
        t += length
    return phases


def episode_profile(cfg: FarmConfig, seed: int) -> FarmConfig:
    """``cfg`` with the phases of the episode seeded ``seed``: a generator draws them from the
    seed's third stream (:func:`episode_seeds` uses the first two); other configs as they are."""
    if cfg.generator is None:
        return cfg
    stream = np.random.SeedSequence(int(seed)).spawn(3)[2]
    phases = generated_phases(cfg.generator, np.random.default_rng(stream))
    return dataclasses.replace(cfg, phase_definitions=phases, generator=None)


def peak_relative_rate(phase: PhaseConfig) -> float:
    """The highest value of :func:`rate_profile` over the phase (x base_rate)."""
    if phase.pattern.startswith("oscillation"):
        return phase.multiplier * phase.oscillation_max
    if phase.pattern == "spike":
        return max(phase.multiplier, phase.spike_multiplier)
    if phase.pattern == "ramp":
        return max(phase.ramp_from, phase.ramp_to)
    return phase.multiplier


def peak_rate(cfg: FarmConfig, window: float = 10.0) -> float:
    """The workload's highest nominal arrival rate in tasks/s: base_rate / 60 x the highest
    relative rate of any phase; for a trace, the most arrivals in any ``window`` seconds /
    ``window``."""
    if cfg.generator is not None:  # the generator's highest rate
        return cfg.base_rate / 60.0 * float(cfg.generator.rate_max)
    if cfg.trace:
        arrivals = load_trace(cfg.trace)[:, 0]
        within = np.searchsorted(arrivals, arrivals + window, side="left") - np.arange(arrivals.size)
        return float(within.max()) / window
    return cfg.base_rate / 60.0 * max((peak_relative_rate(p) for p in cfg.phase_definitions),
                                      default=0.0)


def rate_profile(phase: PhaseConfig, t: np.ndarray) -> np.ndarray:
    """Relative arrival rate (x base_rate) at phase-relative times ``t``."""
    t = np.asarray(t, dtype=float)
    if phase.pattern == "steady":
        return np.full_like(t, phase.multiplier)
    if phase.pattern.startswith("oscillation"):
        mid = (phase.oscillation_min + phase.oscillation_max) / 2
        amp = (phase.oscillation_max - phase.oscillation_min) / 2
        angle = 2 * math.pi * phase.oscillation_cycles * t / phase.phase_duration
        return phase.multiplier * (mid + amp * np.sin(angle))
    if phase.pattern == "spike":
        inside = (t >= phase.spike_start) & (t < phase.spike_start + phase.spike_duration)
        return np.where(inside, phase.spike_multiplier, phase.multiplier)
    if phase.pattern == "ramp":
        frac = np.clip(t / phase.phase_duration, 0.0, 1.0)
        return phase.ramp_from + (phase.ramp_to - phase.ramp_from) * frac
    raise ConfigError(f"unknown phase pattern {phase.pattern!r}")  # validated earlier


#: Episodes of a generator profile :func:`rate_rise` looks at (seeds 0, 1, ...).
RISE_SAMPLE_EPISODES = 20


#: Seconds of a trace's arrivals behind each of its :func:`nominal_rates` (a trace has no
#: nominal rate: its arrivals per minute stand for it, without the second-to-second noise).
TRACE_RATE_WINDOW = 60.0


def nominal_rates(cfg: FarmConfig) -> np.ndarray:
    """The workload's nominal arrival rate (tasks/s) every second, phase after phase (a trace:
    its arrivals in the last :data:`TRACE_RATE_WINDOW` seconds per second; a generator: its
    episode seeded 0)."""
    if cfg.trace:
        arrivals = load_trace(cfg.trace)[:, 0]
        per_second = np.bincount((arrivals - arrivals[0]).astype(np.int64)).astype(float)
        width = int(min(TRACE_RATE_WINDOW, per_second.size))
        return np.convolve(per_second, np.ones(width) / width, mode="valid")
    cfg = episode_profile(cfg, 0)
    parts = [rate_profile(p, np.arange(0.0, p.phase_duration, 1.0)) for p in cfg.phase_definitions]
    rel = np.concatenate(parts) if parts else np.zeros(1)
    return rel * cfg.base_rate / 60.0


def rate_rise(cfg: FarmConfig, horizon: float, hold: float = 0.0) -> float:
    """The largest increase of the nominal arrival rate (tasks/s) within ``horizon`` seconds
    anywhere in the workload: how fast capacity must grow to keep up (a generator: the largest
    over its first :data:`RISE_SAMPLE_EPISODES` episodes). With ``hold``, only a rate the
    workload keeps for ``hold`` seconds once it is reached counts: a burst shorter than that
    does not (on ``flash`` the rise within 8 s is 11 tasks/s, but nothing is kept for 24 s)."""
    if cfg.generator is not None:
        return max(rate_rise(episode_profile(cfg, seed), horizon, hold)
                   for seed in range(RISE_SAMPLE_EPISODES))
    rates = nominal_rates(cfg)
    width = max(1, int(round(hold)))
    if rates.size < width:
        return 0.0
    # the rate kept from each second on for `hold` seconds (the rate itself without a hold)
    kept = np.lib.stride_tricks.sliding_window_view(rates, width).min(axis=1)
    lag = max(1, int(round(horizon)))
    if kept.size <= lag:
        return float(max(0.0, kept.max() - rates[0]))
    # the peak over each window of `lag` seconds after t, minus the rate at t
    ahead = np.lib.stride_tricks.sliding_window_view(kept[1:], lag).max(axis=1)
    return float(max(0.0, (ahead - rates[:ahead.size]).max()))


def window_counts(
    rng: np.random.Generator, target: int, weights: np.ndarray
) -> np.ndarray:
    """Tasks per window: Poisson of the remaining tasks' weighted share, rest in the last."""
    n_windows = weights.size
    counts = np.zeros(n_windows, dtype=np.int64)
    # Suffix sums: the weight of the windows still ahead (a steady phase gives windows left).
    ahead = np.cumsum(weights[::-1])[::-1]
    remaining = target
    for k in range(n_windows):
        if remaining <= 0:
            break
        if k == n_windows - 1:
            n = remaining
        else:
            lam = remaining * weights[k] / ahead[k] if ahead[k] > 0 else 0.0
            n = min(int(rng.poisson(lam)), remaining)
        counts[k] = n
        remaining -= n
    return counts


def phase_arrivals(
    rng: np.random.Generator, base_rate: float, window: float, phase: PhaseConfig
) -> tuple[np.ndarray, float]:
    """Arrival times (phase-relative) of one phase and the phase's real duration."""
    n_windows = max(1, int(math.floor(phase.phase_duration / window + 1e-9)))
    mids = (np.arange(n_windows) + 0.5) * window
    counts = window_counts(rng, phase_task_count(base_rate, phase), rate_profile(phase, mids))
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0), 0.0
    # Gaps of window n: exponential with mean window/n, drawn in one go for the whole phase.
    nonzero = counts[counts > 0]
    gaps = rng.exponential(1.0, size=total) * np.repeat(window / nonzero, nonzero)
    ends = np.cumsum(gaps)
    # Task i of a window is emitted after i gaps of that window: arrivals are the cumulative
    # gaps shifted by one, i.e. each task sits at the end of the previous gap.
    arrivals = np.concatenate(([0.0], ends[:-1]))
    return arrivals, float(ends[-1])


def processing_times(
    rng: np.random.Generator, n: int, cfg: ProcessingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Processing times via the calibrated image-size model; returns (p, image_size)."""
    a, b = cfg.model_a, cfg.model_b
    p = rng.gamma(cfg.gamma_shape, cfg.gamma_scale, size=n)
    for _ in range(cfg.max_tries - 1):
        low = p <= b
        if not low.any():
            break
        p[low] = rng.gamma(cfg.gamma_shape, cfg.gamma_scale, size=int(low.sum()))
    p[p <= b] = cfg.fallback
    p = np.clip(p, cfg.min_time, cfg.max_time)
    size = np.floor(np.sqrt((p - b) / a)).astype(np.int64)
    size = np.clip(size, cfg.min_image_size, cfg.max_image_size)
    return a * size.astype(float) ** 2 + b, size


def deadlines_for(p: np.ndarray, cfg: DeadlineConfig) -> np.ndarray:
    return np.clip(cfg.coefficient * p, cfg.min, cfg.max)


def phase_order(
    n_phases: int, shuffle: bool, rng: np.random.Generator | None
) -> list[int]:
    order = list(range(n_phases))
    if shuffle and rng is not None:
        rng.shuffle(order)
    return order


def episode_seeds(seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """The one seed rule of an episode: ``(workload seed, farm seed)`` spawned from the
    episode seed, so the twin and the live emitter draw the same tasks for the same seed and
    the twin's own randomness (pick-up delays, latencies) never shifts the workload."""
    workload_seed, farm_seed = np.random.SeedSequence(int(seed)).spawn(2)
    return workload_seed, farm_seed


def episode_workload(cfg: FarmConfig, seed: int, order: Sequence[int] | None = None) -> Workload:
    """The workload of the episode seeded ``seed`` (:func:`episode_seeds`; a generator's
    phases from :func:`episode_profile`, which also ignores ``order``: its order is drawn)."""
    if cfg.generator is not None:
        return generate_workload(episode_profile(cfg, seed), episode_seeds(seed)[0])
    return generate_workload(cfg, episode_seeds(seed)[0], list(order) if order else None)


def generate_workload(
    cfg: FarmConfig, seed: int | None, order: list[int] | None = None
) -> Workload:
    """Generate one episode's tasks from ``cfg`` (phases or trace) with the task ``seed``."""
    rng = np.random.default_rng(seed)
    if cfg.trace:
        return _trace_workload(cfg, load_trace(cfg.trace))
    phases = cfg.phase_definitions
    order = list(range(len(phases))) if order is None else order
    arrivals, phase_idx, starts = [], [], []
    t = 0.0
    for pos, idx in enumerate(order):
        starts.append(t)
        arr, length = phase_arrivals(rng, cfg.base_rate, cfg.window_duration, phases[idx])
        arrivals.append(arr + t)
        phase_idx.append(np.full(arr.size, pos, dtype=np.int64))
        t += length
    all_arrivals = np.concatenate(arrivals) if arrivals else np.zeros(0)
    p, size = processing_times(rng, all_arrivals.size, cfg.processing)
    return Workload(
        arrivals=all_arrivals,
        processing=p,
        deadlines=deadlines_for(p, cfg.deadline),
        image_sizes=size,
        phase_index=np.concatenate(phase_idx) if phase_idx else np.zeros(0, np.int64),
        phase_names=tuple(phases[i].name for i in order),
        phase_starts=np.asarray(starts),
        end_time=t,
    )


def load_trace(path: str | Path) -> np.ndarray:
    """Read a CSV of ``arrival_s, processing_s`` rows (header optional) into an (n, 2) array."""
    rows: list[tuple[float, float]] = []
    try:
        with open(path, newline="") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or row[0].lstrip().startswith("#"):
                    continue
                try:
                    arrival, proc = float(row[0]), float(row[1])
                except (ValueError, IndexError):
                    if lineno == 1 and not rows:
                        continue  # header
                    raise ConfigError(
                        f"trace {path} line {lineno}: expected 'arrival_s,processing_s' numbers"
                    ) from None
                if arrival < 0 or proc <= 0 or not (math.isfinite(arrival) and math.isfinite(proc)):
                    raise ConfigError(
                        f"trace {path} line {lineno}: arrival_s must be >= 0 and processing_s > 0"
                    )
                rows.append((arrival, proc))
    except OSError as exc:
        raise ConfigError(f"cannot read trace {path}: {exc.strerror or exc}") from None
    if not rows:
        raise ConfigError(f"trace {path} holds no tasks")
    data = np.asarray(rows, dtype=float)
    return data[np.argsort(data[:, 0], kind="stable")]


def _trace_workload(cfg: FarmConfig, data: np.ndarray) -> Workload:
    arrivals = data[:, 0] - data[0, 0]
    p = data[:, 1]
    a, b = cfg.processing.model_a, cfg.processing.model_b
    size = np.clip(
        np.floor(np.sqrt(np.maximum(p - b, 0.0) / a)).astype(np.int64),
        cfg.processing.min_image_size,
        cfg.processing.max_image_size,
    )
    return Workload(
        arrivals=arrivals,
        processing=p.copy(),
        deadlines=deadlines_for(p, cfg.deadline),
        image_sizes=size,
        phase_index=np.zeros(arrivals.size, dtype=np.int64),
        phase_names=(f"trace:{Path(cfg.trace).name}",),
        phase_starts=np.zeros(1),
        end_time=float(arrivals[-1]),
    )
