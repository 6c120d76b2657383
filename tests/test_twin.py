"""Queueing physics of the simulated twin (SPEC §1-§3)."""

import numpy as np
import pytest

from rl_autoscaling.config import load_config
from rl_autoscaling.farm.simulated import SimulatedFarm

STEADY = {"phase_definitions": [{"name": "steady", "phase_duration": 240, "multiplier": 1.0}]}


def farm(base_rate, **overrides):
    return SimulatedFarm(load_config(None, {**STEADY, "base_rate": base_rate, **overrides}))


def run_fixed(f, seconds, step=8.0):
    collected = 0
    queue = []
    for _ in range(int(seconds / step)):
        f.wait(step)
        snap = f.snapshot(overhead=False)
        collected += len(snap.completed)
        queue.append(snap.worker_queue)
    return collected, queue


def test_below_capacity_throughput_equals_arrival_rate_and_qos_near_one():
    f = farm(240)  # 4 tasks/s; 12 workers serve about 8 tasks/s
    f.reset(seed=1, initial_workers=12)
    collected, queue = run_fixed(f, 240)
    assert collected == pytest.approx(4 * 240, rel=0.06)
    rec = f.task_records()
    assert rec["qos"].mean() > 0.97
    assert max(queue) < 10


def test_overload_throughput_is_capacity_and_queue_grows():
    f = farm(240)  # 4 tasks/s against 3 workers (about 2 tasks/s)
    f.reset(seed=2, initial_workers=3)
    collected, queue = run_fixed(f, 200)
    mean_service = f.workload.processing.mean()
    assert collected / 200 == pytest.approx(3 / mean_service, rel=0.12)
    assert queue[-1] > queue[len(queue) // 2] > queue[2]
    assert queue[-1] > 150


def test_scale_up_adds_capacity_only_after_its_latency():
    f = farm(240, **{"timing.scale_up_latency": {"distribution": "fixed", "value": 7.0}})
    f.reset(seed=3, initial_workers=2)
    f.wait(20)  # saturated: the queue is long
    t0 = f.now
    result = f.scale(+1)
    assert result.applied == 1 and result.scaling_time == pytest.approx(7.0)
    assert f.now == pytest.approx(t0 + 7.0)  # the step was blocked by the deploy
    assert f.snapshot(overhead=False).workers == 3
    f.wait(10)
    rec = f.task_records()
    new_worker = rec["worker"].max()
    picks = rec["pickup"][rec["worker"] == new_worker]
    assert picks.size > 0
    assert picks.min() == pytest.approx(t0 + 7.0)  # queue non-empty: takes a task at start


def test_scale_down_waits_for_ack_and_never_interrupts_a_task():
    f = farm(240)
    f.reset(seed=4, initial_workers=6)
    f.wait(30)
    t0 = f.now
    before = f.snapshot(overhead=False).workers
    result = f.scale(-1)
    assert result.applied == -1
    assert 1.0 <= result.scaling_time <= 3.0  # ACK seen at the next 1 s poll
    assert f.active_workers == 5
    assert f.snapshot(overhead=False).workers == before  # still counted until removed
    f.wait(6)
    assert f.snapshot(overhead=False).workers == before - 1  # gone 3-5 s after the ACK
    f.wait(60)
    rec = f.task_records()
    active_ids = {wid for _, wid in f._heap}
    (retired,) = set(rec["worker"].tolist()) - active_ids
    assert rec["pickup"][rec["worker"] == retired].max() < t0  # took nothing after the SYN
    # Every task runs to completion on its worker: done = pickup + processing.
    np.testing.assert_allclose(rec["done"], rec["pickup"] + rec["processing"])


def test_workers_never_overlap_tasks_and_queue_is_fifo():
    f = farm(300)
    f.reset(seed=5, initial_workers=4)
    for delta in (1, 1, -1, 0, -1, 1, -1):
        f.scale(delta)
        f.wait(8)
    rec = f.task_records()
    assert np.all(np.diff(rec["pickup"]) >= 0)  # FIFO pops
    assert np.all(rec["pickup"] >= rec["arrival"])
    for wid in np.unique(rec["worker"]):
        mine = np.flatnonzero(rec["worker"] == wid)
        assert np.all(rec["pickup"][mine][1:] >= rec["done"][mine][:-1] - 1e-9)


def test_every_task_completed_exactly_once_after_drain():
    f = SimulatedFarm(load_config())
    f.reset(seed=6, initial_workers=14)
    while f.now < 400 and f.snapshot(overhead=False).output_queue < f.expected_tasks:
        f.wait(8)
    snap = f.drain(8)
    assert snap.output_queue == f.expected_tasks == 1140
    rec = f.task_records()
    assert rec["arrival"].size == 1140 and np.all(np.isfinite(rec["collect"]))
    assert snap.worker_queue == snap.result_queue == 0


def test_completion_time_is_end_to_end_and_qos_uses_deadline():
    f = farm(30)  # 0.5 tasks/s on 16 workers: a task never waits for a busy worker
    f.reset(seed=7, initial_workers=16)
    f.wait(60)
    snap = f.snapshot(overhead=False)
    rec = f.task_records()
    done = rec["collect"] <= snap.time
    wl = f.workload
    completion = rec["collect"][done] - rec["arrival"][done]
    assert np.all(completion >= rec["processing"][done])
    assert np.all(completion <= rec["processing"][done] + 0.2 + 1e-9)  # idle farm: two polls
    np.testing.assert_array_equal(rec["qos"][done], completion <= wl.deadlines[: done.size][done])
