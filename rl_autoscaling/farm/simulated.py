"""The simulated twin of the OpenFaaS farm: a discrete-event model built to docs/farm.md.

Tasks are generated up front (the emitter is open-loop: its output never depends on scaling)
and assigned lazily, in FIFO order, as the clock advances:

* a worker that is busy when a task reaches the head of ``worker_queue`` takes it the moment
  it finishes (``pickup = free time``); if a worker is idle the task is taken after the idle
  poll delay ``U(0, wait_time)``;
* the task occupies the worker for ``p + processing_delay`` and lands in ``result_queue``;
  the collector picks it up ``U(0, collector_wait_time)`` later and sets
  ``task_completion_time = collect - generation``;
* a scale-up deploys a worker that starts after the configured latency (the step blocks
  meanwhile) but is counted at once; a scale-down SYN is taken by the first worker to loop
  (an idle one after its poll delay, else the first busy one to finish), which never loses or
  interrupts a task; the counted workers drop after the removal delay.

Tasks are only assigned up to the current time, so a scaling decision taken now changes the
fate of every task that is still queued. A snapshot counts the tasks not yet collected whose
deadline (arrival + deadline) has passed (``FarmSnapshot.overdue``): each is already a miss.
Worker free times live in a heap: one step costs O(tasks x log workers).
"""

from __future__ import annotations

import bisect
import heapq
import math
from typing import Sequence

import numpy as np

from ..config import FarmConfig
from .base import Completions, FarmBackend, FarmSnapshot, ScaleResult
from .workload import Workload, episode_seeds, episode_workload


class SimulatedFarm(FarmBackend):
    """Discrete-event twin of the farm. Randomness flows only from the seed given to reset."""

    def __init__(self, config: FarmConfig) -> None:
        self.config = config
        self._now = 0.0
        self.workload: Workload | None = None

    # ------------------------------------------------------------------ episode lifecycle

    def reset(
        self, *, seed: int, initial_workers: int, phase_order: Sequence[int] | None = None
    ) -> FarmSnapshot:
        wl = episode_workload(self.config, seed, phase_order)
        self.workload = wl
        self._rng = np.random.default_rng(episode_seeds(seed)[1])
        timing = self.config.timing
        n = wl.expected_tasks
        self.expected_tasks = n
        self.program_start_time = 0.0
        self.task_generation_start_time = 0.0
        # Per-task randomness drawn in one go: idle pick-up and collector poll delays.
        self._arr = wl.arrivals.tolist()
        self._phase_starts = wl.phase_starts.tolist()
        self._work = (wl.processing + timing.processing_delay).tolist()
        self._pick_jitter = self._rng.uniform(0.0, timing.wait_time, n).tolist()
        self._collect_jitter = self._rng.uniform(0.0, timing.collector_wait_time, n)
        self._due = wl.arrivals + wl.deadlines  # a task not collected by then is a miss
        self._collect = np.full(n, np.inf)
        self._done = np.full(n, np.inf)
        self._completion = np.zeros(n)
        self._qos = np.zeros(n, dtype=bool)
        self._pickup: list[float] = []  # pickup time of task j (kept for tests)
        self._worker_of: list[int] = []
        self._next = 0  # first task not yet taken from worker_queue
        self._uncollected = 0  # first task not yet known to be collected
        self._collected = 0
        self._last_snapshot = -math.inf
        self._now = 0.0
        self._next_worker_id = 0
        self._heap: list[tuple[float, int]] = []
        self._removals: list[float] = []  # when retired workers stop being counted
        for _ in range(initial_workers):
            self._add_worker(0.0)
        return self.snapshot(overhead=False)

    @property
    def now(self) -> float:
        return self._now

    @property
    def task_generation_end_time(self) -> float | None:
        wl = self.workload
        return wl.end_time if wl is not None and self._now >= wl.end_time else None

    # ------------------------------------------------------------------ simulation core

    def _add_worker(self, ready: float) -> None:
        heapq.heappush(self._heap, (ready, self._next_worker_id))
        self._next_worker_id += 1

    def _advance(self, until: float) -> None:
        """Assign, in FIFO order, every task some worker picks up by ``until``."""
        arr, work, jitter = self._arr, self._work, self._pick_jitter
        heap, pickup, worker_of = self._heap, self._pickup, self._worker_of
        n, j = len(arr), self._next
        last = pickup[-1] if pickup else 0.0
        finishes = []
        while j < n and heap:
            a = arr[j]
            if a > until:
                break
            free, wid = heap[0]
            # Busy workers take the head task the moment they finish; otherwise an idle one
            # finds it at its next poll. worker_queue is FIFO: never before the previous task.
            pick = free if free >= a else max(a + jitter[j], last)
            if pick > until:
                break
            last = pick
            finish = pick + work[j]
            heapq.heapreplace(heap, (finish, wid))
            pickup.append(pick)
            worker_of.append(wid)
            finishes.append(finish)
            j += 1
        if finishes:
            # Completion bookkeeping for the newly assigned block, vectorised.
            s = slice(self._next, j)
            wl = self.workload
            self._done[s] = finishes
            self._collect[s] = self._done[s] + self._collect_jitter[s]
            self._completion[s] = self._collect[s] - wl.arrivals[s]
            self._qos[s] = self._completion[s] <= wl.deadlines[s]
            self._next = j
        self._now = max(self._now, until)

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            self._advance(self._now + seconds)

    def scale(self, delta: int) -> ScaleResult:
        if delta > 0:
            return self._scale_up(delta)
        if delta < 0:
            return self._scale_down(-delta)
        return ScaleResult(0, 0.0)

    def _scale_up(self, count: int) -> ScaleResult:
        start = self._now
        latencies = [self.config.timing.scale_up_latency.sample(self._rng) for _ in range(count)]
        for lat in latencies:
            self._add_worker(start + lat)
        # The deploy call returns once every new worker has started.
        self._advance(start + max(latencies))
        return ScaleResult(count, self._now - start)

    def _scale_down(self, count: int) -> ScaleResult:
        timing = self.config.timing
        start = self._now
        deadline = start + timing.ack_max_polls * timing.ack_poll_interval
        applied, last_ack = 0, start
        for _ in range(count):
            if not self._heap:
                break
            ack_time, index = self._first_to_loop(max(self._now, last_ack))
            if index is None or ack_time > deadline:
                break  # abandoned: nobody answered within the poll budget
            # The worker stops taking tasks at once; it finishes nothing new.
            self._heap[index] = self._heap[-1]
            self._heap.pop()
            heapq.heapify(self._heap)
            self._removals.append(ack_time + timing.scale_down_removal_delay.sample(self._rng))
            applied += 1
            last_ack = ack_time
        # The env polls the ACK queue every ack_poll_interval seconds.
        polls = max(1, math.ceil((last_ack - start) / timing.ack_poll_interval - 1e-9))
        elapsed = min(polls, timing.ack_max_polls) * timing.ack_poll_interval
        self._advance(start + elapsed)
        return ScaleResult(-applied, elapsed)

    def _first_to_loop(self, t: float) -> tuple[float, int | None]:
        """(time, heap index) of the worker that reads the control queue first after ``t``."""
        best_time, best_index = math.inf, None
        idle_delay = float(self._rng.uniform(0.0, self.config.timing.wait_time))
        for i, (free, _) in enumerate(self._heap):
            when = t + idle_delay if free <= t else free
            if when < best_time:
                best_time, best_index = when, i
        return best_time, best_index

    # ------------------------------------------------------------------ observation

    def snapshot(self, overhead: bool = True) -> FarmSnapshot:
        if overhead:
            self.wait(self.config.timing.step_overhead.sample(self._rng))
        now = self._now
        lo, hi = self._uncollected, self._next
        collect = self._collect[lo:hi]
        pending = collect > now
        new = ~pending & (collect > self._last_snapshot)
        completions = Completions(
            collect[new], self._completion[lo:hi][new], self._qos[lo:hi][new]
        )
        self._collected += len(completions)
        result_queue = int(np.count_nonzero(pending & (self._done[lo:hi] <= now)))
        # Everything before the first pending task is collected: skip it next time.
        first_pending = int(pending.argmax()) if hi > lo else 0
        self._uncollected = lo + (first_pending if hi > lo and pending[first_pending] else hi - lo)
        self._last_snapshot = now
        enqueued = bisect.bisect_right(self._arr, now)
        lo = self._uncollected
        overdue = int(np.count_nonzero((self._due[lo:enqueued] < now)
                                       & (self._collect[lo:enqueued] > now)))
        removals = self._removals
        if removals and min(removals) <= now:
            self._removals = removals = [r for r in removals if r > now]
        return FarmSnapshot(
            time=now,
            input_queue=len(self._phase_starts) - bisect.bisect_right(self._phase_starts, now),
            worker_queue=enqueued - self._next,
            result_queue=result_queue,
            output_queue=self._collected,
            workers=len(self._heap) + len(removals),
            enqueued_total=enqueued,
            completed=completions,
            overdue=overdue,
        )

    def drain(self, timeout: float) -> FarmSnapshot:
        """Let in-flight tasks reach the collector, for at most ``timeout`` seconds."""
        in_flight = self._collect[self._uncollected : self._next]
        target = float(in_flight.max()) if in_flight.size else self._now
        self._advance(min(self._now + timeout, max(target, self._now)))
        return self.snapshot(overhead=False)

    # ------------------------------------------------------------------ introspection

    @property
    def active_workers(self) -> int:
        """Workers that take tasks (or will once started); excludes retired ones."""
        return len(self._heap)

    def task_records(self) -> dict[str, np.ndarray]:
        """Per-task times of every assigned task (for tests and analysis)."""
        n = self._next
        wl = self.workload
        return {
            "arrival": wl.arrivals[:n],
            "pickup": np.asarray(self._pickup),
            "worker": np.asarray(self._worker_of),
            "done": self._done[:n],
            "collect": self._collect[:n],
            "processing": wl.processing[:n],
            "qos": self._qos[:n],
        }
