"""The observation layout: one owner for the index, name and bounds of each of the 9 values.

``Obs.WORKERS`` is the index of the worker count in an observation vector (``obs[Obs.WORKERS]``),
``Obs.WORKERS.name.lower()`` its name in records and logs. :func:`bounds` gives the bounds of
any farm (see ``docs/env.md``): the phase index runs to the number of phases - 1, the output
queue to the episode's task count, the worker count between the env's minimum and maximum,
and, given the workload's peak arrival rate, the arrival rate to :data:`RATE_HEADROOM` x that
peak and the worker queue to :data:`QUEUE_SECONDS` of arrivals at that rate (without it: the
seed's fixed 12 tasks/s and 800 tasks, :data:`DEFAULT_HIGH`). :func:`load_of` derives the load
from an observation (the SARSA load-aware state and the DQN's ``load_input``).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Sequence

import numpy as np


class Obs(IntEnum):
    """Index of each observation value."""

    INPUT_QUEUE = 0    # phase index of the emitter (its input queue position)
    WORKER_QUEUE = 1   # tasks waiting for a worker
    RESULT_QUEUE = 2   # results waiting for the collector
    OUTPUT_QUEUE = 3   # tasks collected so far
    WORKERS = 4        # workers running
    AVG_TIME = 5       # mean completion time (s) over the observation window
    MAX_TIME = 6       # max completion time (s) over the observation window
    ARRIVAL_RATE = 7   # tasks per second arriving
    QOS_RATE = 8       # fraction of the window's tasks that met their deadline

    @property
    def key(self) -> str:
        """The value's name in records and logs (``"worker_queue"``)."""
        return self.name.lower()


OBS_SIZE = len(Obs)
OBS_NAMES: tuple[str, ...] = tuple(o.key for o in Obs)
#: Upper bounds of the values that do not depend on the farm.
_FIXED_HIGH = {Obs.WORKER_QUEUE: 800.0, Obs.RESULT_QUEUE: 10.0, Obs.AVG_TIME: 150.0,
               Obs.MAX_TIME: 160.0, Obs.ARRIVAL_RATE: 12.0, Obs.QOS_RATE: 1.0}


#: The arrival-rate bound over the workload's peak rate: the rate observed over one step is a
#: Poisson count, ~1.1 x the peak at 8.5 tasks/s and 8 s two standard deviations out.
RATE_HEADROOM = 1.5
#: The worker-queue bound in seconds of arrivals at the arrival-rate bound.
QUEUE_SECONDS = 60.0


def bounds(n_phases: int, expected_tasks: int, min_workers: int, max_workers: int,
           peak_rate: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 bounds of the observation for a farm of ``n_phases`` phases and
    ``expected_tasks`` tasks per episode, with ``min_workers..max_workers`` workers and a
    workload whose nominal arrival rate peaks at ``peak_rate`` tasks/s (None: the seed's fixed
    rate and queue bounds)."""
    low = np.zeros(OBS_SIZE, dtype=np.float32)
    high = np.array([_FIXED_HIGH.get(o, 0.0) for o in Obs], dtype=np.float32)
    if peak_rate is not None and peak_rate > 0:
        high[Obs.ARRIVAL_RATE] = RATE_HEADROOM * peak_rate
        high[Obs.WORKER_QUEUE] = QUEUE_SECONDS * RATE_HEADROOM * peak_rate
    low[Obs.WORKERS] = min_workers
    high[Obs.INPUT_QUEUE] = max(1, n_phases - 1)
    high[Obs.OUTPUT_QUEUE] = max(1, expected_tasks)
    high[Obs.WORKERS] = max_workers
    return low, high


#: The seed's fixed bounds for the default farm (4 phases, 1140 tasks, 1..32 workers; the
#: arrival rate to 12 tasks/s): the equal-width edges of ``--bins`` and old model files.
DEFAULT_LOW, DEFAULT_HIGH = (tuple(float(x) for x in a) for a in bounds(4, 1140, 1, 32))

#: Tasks per second one worker serves (1 / the mean processing time, 1.47 s: docs/farm.md).
SERVICE_RATE = 0.68


def load_of(obs: Sequence[float]) -> float:
    """Arrival rate / (workers x :data:`SERVICE_RATE`): the share of the observed workers'
    capacity the arrivals need (> 1: the queue grows)."""
    return float(obs[Obs.ARRIVAL_RATE]) / (max(1.0, float(obs[Obs.WORKERS])) * SERVICE_RATE)


__all__ = ["DEFAULT_HIGH", "DEFAULT_LOW", "OBS_NAMES", "OBS_SIZE", "Obs", "QUEUE_SECONDS",
           "RATE_HEADROOM", "SERVICE_RATE", "bounds", "load_of"]
