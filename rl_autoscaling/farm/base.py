"""The one interface every farm backend implements (simulated twin, live Redis farm).

The environment drives a backend through a fixed cycle per step::

    snapshot = backend.reset(seed=..., initial_workers=..., phase_order=...)
    scaling_time = backend.scale(delta)   # blocks like the real farm (scale-up deploys)
    backend.wait(seconds)                 # the rest of the step
    snapshot = backend.snapshot()         # queues, workers, newly collected tasks
    ...
    snapshot = backend.drain(timeout)     # stragglers at episode end

and computes observations from snapshots only, so it never asks which backend it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Completions:
    """Tasks the collector picked up since the previous snapshot."""

    collect_times: np.ndarray  # collector pick-up time, seconds on the episode clock
    completion_times: np.ndarray  # task_completion_time (end-to-end seconds)
    qos: np.ndarray  # bool: completion_time <= deadline

    @staticmethod
    def empty() -> Completions:
        z = np.zeros(0)
        return Completions(z, z, np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return int(self.collect_times.size)


@dataclass(frozen=True)
class FarmSnapshot:
    """What the environment reads of the farm at one instant."""

    time: float  # seconds since the episode's program_start_time
    input_queue: int  # phase descriptors not yet popped by the emitter
    worker_queue: int
    result_queue: int
    output_queue: int  # tasks collected so far this episode
    workers: int  # worker count as observed (rises at scale-up, drops after removal)
    enqueued_total: int  # the emitter's worker_queue:enqueued_total counter
    completed: Completions = field(default_factory=Completions.empty)
    #: tasks enqueued but not collected by ``time`` whose deadline has passed
    #: (generation time + deadline < ``time``): each is a deadline miss already
    overdue: int = 0


@dataclass(frozen=True)
class ScaleResult:
    applied: int  # the delta actually carried out (abandoned scale-downs are not counted)
    scaling_time: float  # seconds the step spent scaling (blocking)


class FarmBackend(ABC):
    """A farm the environment can reset, scale, wait on and observe."""

    #: Tasks the current episode's workload will generate.
    expected_tasks: int = 0
    #: Episode clock values (seconds) for the env's info dict.
    program_start_time: float = 0.0
    task_generation_start_time: float | None = None

    @abstractmethod
    def reset(
        self, *, seed: int, initial_workers: int, phase_order: Sequence[int] | None
    ) -> FarmSnapshot:
        """Start a fresh episode with ``initial_workers`` workers and the seeded workload."""

    @abstractmethod
    def scale(self, delta: int) -> ScaleResult:
        """Add (delta > 0) or remove (delta < 0) workers; blocks as long as the farm does."""

    @abstractmethod
    def wait(self, seconds: float) -> None:
        """Let the farm run for ``seconds``."""

    @abstractmethod
    def snapshot(self) -> FarmSnapshot:
        """Read queues, workers and the tasks collected since the last snapshot."""

    @abstractmethod
    def drain(self, timeout: float) -> FarmSnapshot:
        """Collect in-flight stragglers for up to ``timeout`` seconds; return a snapshot."""

    @property
    @abstractmethod
    def now(self) -> float:
        """Seconds since the episode's program_start_time."""

    @property
    def task_generation_end_time(self) -> float | None:
        """When the emitter finished, or None while it is still generating."""
        return None

    def close(self) -> None:
        """Release connections and processes."""
