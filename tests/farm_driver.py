"""A program running live local-farm episodes until it is killed, for
``test_farm_reliability.py``: the shape the CLIs take with ``--backend live --scaler local``.

    python tests/farm_driver.py REDIS_URL [--thread]

It wraps its run in ``farm.live.sigterm_exits`` and closes the env in ``finally`` (what the
CLIs do on SIGTERM), prints one JSON line ``{"pid", "prefix", "group", "farm_pids"}`` once the
farm runs, then steps (scaling up and down) forever. ``--thread`` runs the env in a second
thread, so the farm is spawned without the parent-death signal and relies on the parent-pid
watch alone.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from rl_autoscaling.env import OpenFaaSAutoscalingEnv
from rl_autoscaling.farm.live import sigterm_exits

WORKLOAD = {"base_rate": 120, "phase_definitions": [
    {"name": "only", "phase_duration": 400, "multiplier": 1.0}]}


def run(env: OpenFaaSAutoscalingEnv) -> None:
    env.reset(seed=1)
    farm = env.backend
    print(json.dumps({"pid": os.getpid(), "prefix": farm.keys.prefix,
                      "group": farm.scaler.group, "farm_pids": farm.scaler.pids()}), flush=True)
    step = 0
    while True:
        step += 1
        *_, terminated, truncated, _ = env.step(2 if step % 4 else 0)  # mostly scale up
        if terminated or truncated:
            env.reset(seed=step)


def main(url: str, in_thread: bool) -> None:
    env = OpenFaaSAutoscalingEnv(
        backend="live", max_steps=200, step_duration=8, observation_window=8,
        initial_workers=2, config=WORKLOAD,
        backend_options={"redis_url": url, "time_scale": 0.05})
    with sigterm_exits():
        try:
            if in_thread:
                worker = threading.Thread(target=run, args=(env,), daemon=True)
                worker.start()
                worker.join()
            else:
                run(env)
        finally:
            env.close()


if __name__ == "__main__":
    main(sys.argv[1], "--thread" in sys.argv[2:])
