"""The observation layout: one owner for the index, name and bounds of each of the 9 values.

``Obs.WORKERS`` is the index of the worker count in an observation vector (``obs[Obs.WORKERS]``),
``Obs.WORKERS.name.lower()`` its name in records and logs. The bounds are those of the
default farm (see ``docs/env.md``); :func:`bounds` gives the ones of any farm: the phase
index runs to the number of phases - 1, the output queue to the episode's task count and
the worker count between the env's minimum and maximum.
"""

from __future__ import annotations

from enum import IntEnum

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


def bounds(n_phases: int, expected_tasks: int, min_workers: int,
           max_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 bounds of the observation for a farm of ``n_phases`` phases and
    ``expected_tasks`` tasks per episode, with ``min_workers..max_workers`` workers."""
    low = np.zeros(OBS_SIZE, dtype=np.float32)
    high = np.array([_FIXED_HIGH.get(o, 0.0) for o in Obs], dtype=np.float32)
    low[Obs.WORKERS] = min_workers
    high[Obs.INPUT_QUEUE] = max(1, n_phases - 1)
    high[Obs.OUTPUT_QUEUE] = max(1, expected_tasks)
    high[Obs.WORKERS] = max_workers
    return low, high


#: The bounds of the default farm (4 phases, 1140 tasks, 1..32 workers).
DEFAULT_LOW, DEFAULT_HIGH = (tuple(float(x) for x in a) for a in bounds(4, 1140, 1, 32))

__all__ = ["DEFAULT_HIGH", "DEFAULT_LOW", "OBS_NAMES", "OBS_SIZE", "Obs", "bounds"]
