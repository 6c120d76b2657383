"""The live backend on a real ``redis-server`` (own free port) with a local farm of real
processes: end-to-end episode, exactly-once delivery, Redis failure, the local CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from redis_server import RedisServer

from rl_autoscaling.common.rollout import run_episode
from rl_autoscaling.config import load_config
from rl_autoscaling.env import OpenFaaSAutoscalingEnv
from rl_autoscaling.farm.functions.protocol import LiveFarmError
from rl_autoscaling.farm.simulated import SimulatedFarm
from rl_autoscaling.farm.workload import episode_workload

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")]

ROOT = Path(__file__).resolve().parents[1]
TIME_SCALE = 0.05  # 20x faster than real time
# A short two-phase workload: 96 tasks at 4/s (overload for the first workers), then 20 slow.
WORKLOAD = {"base_rate": 120, "phase_definitions": [
    {"name": "high", "phase_duration": 24, "multiplier": 2.0},
    {"name": "low", "phase_duration": 40, "multiplier": 0.25}]}
ENV_KW = dict(max_steps=20, step_duration=8, observation_window=8, initial_workers=2,
              config=WORKLOAD)


@pytest.fixture
def redis_srv():
    srv = RedisServer().start()
    yield srv
    srv.stop()


def live_env(url: str, **options) -> OpenFaaSAutoscalingEnv:
    return OpenFaaSAutoscalingEnv(backend="live", **ENV_KW, backend_options={
        "redis_url": url, "time_scale": TIME_SCALE, **options})


def test_emitter_draws_the_twins_workload():
    cfg = load_config(None, WORKLOAD)
    twin = SimulatedFarm(cfg)
    twin.reset(seed=7, initial_workers=1, phase_order=[1, 0])
    wl = episode_workload(cfg, 7, [1, 0])
    for name in ("arrivals", "processing", "deadlines", "image_sizes", "phase_index"):
        np.testing.assert_array_equal(getattr(wl, name), getattr(twin.workload, name))
    assert wl.phase_names == ("low", "high")


def test_end_to_end_episode_with_reactive_average(redis_srv):
    from rl_autoscaling.policies import ReactiveAverage

    policy = ReactiveAverage()
    env = live_env(redis_srv.url)
    observations = []
    try:
        obs, info = env.reset(seed=3)
        observations.append(obs)
        policy.reset()
        trace = run_episode(env, policy.act, seed=3,
                            on_step=lambda o, r, i: observations.append(o))
        farm = env.backend
        n = farm.expected_tasks
        in_redis = farm.output_records()
        r = redis_srv.client()
        keys = farm.keys
        assert keys.prefix.startswith("farm-")  # a namespace of its own
        leftovers = {q: r.llen(getattr(keys, q)) for q in ("worker", "result", "input",
                                                           "collecting")}
        enqueued = int(r.get(keys.enqueued_total))
    finally:
        env.close()

    # Scaling happened both ways and the episode finished every task.
    assert 1 in trace.actions and -1 in trace.actions
    assert trace.processed_tasks == n and trace.unfinished_tasks == 0
    # Observations are in range (SPEC §4 bounds).
    for o in observations:
        assert env.observation_space.contains(o), o
    assert observations[0][0] == 1 and observations[-1][0] == 0  # input_queue: 2 phases
    assert max(o[1] for o in observations) > 0  # tasks waited in worker_queue
    # Every generated task reached output_queue exactly once, through a worker and the collector.
    ids = [t["task_id"] for t in in_redis]
    assert len(ids) == n == enqueued and len(set(ids)) == n
    assert sorted(t["task_index"] for t in in_redis) == list(range(n))
    assert [t["task_id"] for t in farm.records] == ids  # incremental reads saw the same list
    assert leftovers == {"worker": 0, "result": 0, "input": 0, "collecting": 0}
    assert len({t["pod_name"] for t in in_redis}) >= 2
    for t in in_redis:
        assert t["status"] == "completed"
        assert t["task_collect_timestamp"] >= t["task_work_timestamp"] >= t["task_gen_timestamp"]
        assert t["task_QoS"] == (t["task_completion_time"] <= t["task_deadline"])
    # Same seed -> same tasks as the twin.
    wl = episode_workload(load_config(None, WORKLOAD), 3, None)
    by_index = sorted(in_redis, key=lambda t: t["task_index"])
    np.testing.assert_allclose([t["task_processing_time_simulated"] for t in by_index],
                               wl.processing)
    # The env's final QoS is the share of collected tasks meeting their deadline.
    assert trace.final_qos == pytest.approx(np.mean([t["task_QoS"] for t in in_redis]))


def test_killing_redis_mid_episode_raises_a_clear_error(redis_srv):
    env = live_env(redis_srv.url, redis_tries=5, redis_backoff=0.2)
    try:
        env.reset(seed=5)
        for _ in range(2):
            obs, *_ = env.step(1)
        collected_before = int(obs[3])
        redis_srv.kill()
        start = time.time()
        with pytest.raises(LiveFarmError) as err:
            for _ in range(5):
                env.step(1)
        elapsed = time.time() - start
        message = str(err.value)
        assert redis_srv.url in message and "unreachable after 5 tries" in message
        assert "\n" not in message
        assert elapsed < 30.0, elapsed
        # Nothing already collected is lost.
        assert len(env.backend.records) >= collected_before
    finally:
        t = time.time()
        env.close()
        assert time.time() - t < 20.0


def test_local_farm_cli_runs_one_episode(redis_srv):
    cmd = [sys.executable, "-m", "rl_autoscaling.farm.local", "--redis-url", redis_srv.url,
           "--workers", "4", "--time-scale", str(TIME_SCALE), "--seed", "11",
           "--set", "base_rate=120",
           "--set", 'phase_definitions=[{"name": "a", "phase_duration": 20, "multiplier": 1.0}]']
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["expected_tasks"] == 40
    assert summary["collected"] == summary["unique_task_ids"] == summary["enqueued_total"] == 40


def test_unreachable_redis_at_reset_names_the_url():
    from redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    env = live_env(url, redis_tries=2, redis_backoff=0.05)
    try:
        with pytest.raises(LiveFarmError, match=f"Redis at {url} is unreachable after 2 tries"):
            env.reset(seed=1)
    finally:
        env.close()


def test_snapshot_counts_queued_tasks_past_their_deadline(redis_srv):
    """The live farm reads each queued task's ``task_gen_timestamp + task_deadline``: tasks
    still in worker_queue, result_queue or the collector's batch after it are overdue."""
    from rl_autoscaling.farm.functions.protocol import dumps, new_task
    from rl_autoscaling.farm.live import LiveFarm

    farm = LiveFarm(load_config(None, WORKLOAD), redis_url=redis_srv.url, time_scale=1.0)
    try:
        farm.program_start_time, farm._started = time.time() - 10.0, True  # farm time ~10 s

        def task(gen, deadline):
            return dumps(new_task(index=0, now=gen, processing=1.0, deadline=deadline,
                                  image_size=512, phase="p", time_scale=1.0,
                                  program_start_time=farm.program_start_time))
        r = redis_srv.client()
        keys = farm.keys
        r.rpush(keys.worker, task(2.0, 3.0), task(8.0, 1.0), task(9.5, 3.0), task(9.0, 30.0))
        r.rpush(keys.result, task(1.0, 2.0), task(9.0, 2.0))
        r.rpush(keys.collecting, task(0.0, 5.0))
        snap = farm.snapshot()
        assert (snap.worker_queue, snap.result_queue, snap.overdue) == (4, 2, 4)
    finally:
        farm.close()
