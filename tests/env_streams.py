"""The workload stream each farm env copy inside an RLlib env runner plays, read in the runner
itself (``env_runner_group.foreach_env_runner(farm_env_streams, local_env_runner=False)``).

This module pickles by value, so remote env runners (also on other nodes) need not import it.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import ray.cloudpickle

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def farm_env_streams(runner) -> list[list]:
    """``[(worker, vector, stream), episodes started, current episode seed, sha256 of the
    current episode's arrivals]`` of each farm env in ``runner``'s vector env."""
    out = []
    for sub in runner.env.unwrapped.envs:
        farm = sub.unwrapped
        arrivals = np.ascontiguousarray(farm.backend.workload.arrivals)
        out.append([list(farm.env_copy), int(farm._episode), int(farm.episode_seed),
                    hashlib.sha256(arrivals.tobytes()).hexdigest()])
    return out
