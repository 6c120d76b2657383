"""Reliability of the live farm on a real ``redis-server`` with real processes: farm processes
die with the program that started them (SIGTERM -> close, SIGKILL -> parent-death signal or
parent watch), farms on one Redis keep to their own key namespace, a farm refuses to start
next to foreign processes on its queues, and the collector delivers exactly once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import pids_using
from redis_server import RedisServer

from rl_autoscaling.config import load_config
from rl_autoscaling.farm.functions.collector import collect
from rl_autoscaling.farm.functions.lifecycle import active_members
from rl_autoscaling.farm.functions.protocol import FarmKeys, LiveFarmError, RedisLink, dumps
from rl_autoscaling.farm.live import LiveFarm

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")]

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("farm_driver.py")


@pytest.fixture
def redis_srv():
    srv = RedisServer().start()
    yield srv
    srv.stop()


def _env(tmp: Path | None = None) -> dict[str, str]:
    """The environment of a child program: this checkout first; temporary files in ``tmp``."""
    env = dict(os.environ)
    if tmp is not None:  # a SIGKILLed driver cannot remove its farm's log directory
        env["TMPDIR"] = str(tmp)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "tests")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def start_driver(url: str, tmp: Path, *extra: str) -> tuple[subprocess.Popen, dict]:
    """Start ``farm_driver.py``; return it and its first line (once the farm runs)."""
    proc = subprocess.Popen([sys.executable, str(DRIVER), url, *extra], cwd=ROOT, env=_env(tmp),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"driver failed: {proc.communicate(timeout=10)[1][-2000:]}")
    return proc, json.loads(line)


def wait_gone(marker: str, timeout: float) -> list[int]:
    """Poll until no process mentions ``marker`` (the farm's key prefix); return survivors."""
    deadline = time.time() + timeout
    while True:
        left = pids_using(marker)
        if not left or time.time() >= deadline:
            return left
        time.sleep(0.1)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigterm_to_a_live_episode_stops_every_farm_process(redis_srv, tmp_path):
    proc, info = start_driver(redis_srv.url, tmp_path)
    prefix = info["prefix"]
    try:
        time.sleep(1.5)  # a few steps: scale-ups spawn more workers
        farm = pids_using(prefix)
        assert len(farm) >= 4, farm  # collector, emitter, 2+ workers
        # One process group of the farm's own, not the driver's.
        assert {os.getpgid(p) for p in farm} == {info["group"]} != {os.getpgid(proc.pid)}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 143
        assert pids_using(prefix) == []  # close() stopped them before the driver exited
        assert wait_gone(prefix, 5.0) == []
        # The heartbeats went with them: the namespace is free for the next farm.
        assert redis_srv.client().keys(f"{prefix}farm_alive:*") == []
    finally:
        proc.kill()
        proc.communicate(timeout=10)
        kill_all(pids_using(prefix))


@pytest.mark.parametrize("mode", ["pdeathsig", "parent-watch"])
def test_sigkill_of_the_parent_takes_the_farm_down(redis_srv, tmp_path, mode):
    """main thread: the kernel's parent-death signal; env in a thread: the getppid() watch."""
    proc, info = start_driver(redis_srv.url, tmp_path,
                              *(["--thread"] if mode == "parent-watch" else []))
    prefix = info["prefix"]
    try:
        assert len(pids_using(prefix)) >= 4
        proc.kill()
        proc.wait(10)
        start = time.time()
        assert wait_gone(prefix, 5.0) == []
        print(f"{mode}: farm gone {time.time() - start:.2f} s after SIGKILL")
    finally:
        proc.communicate(timeout=10)
        kill_all(pids_using(prefix))


def test_two_farms_on_one_redis_each_complete_their_own_tasks(redis_srv):
    """Two 1140-task episodes at once, prefixes a: and b:, 20x faster than real time."""
    def farm(prefix: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "rl_autoscaling.farm.local", "--redis-url", redis_srv.url,
             "--workers", "10", "--time-scale", "0.05", "--seed", "42", "--key-prefix", prefix],
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = {prefix: farm(prefix) for prefix in ("a:", "b:")}
    outs = {prefix: p.communicate(timeout=180) for prefix, p in procs.items()}
    cfg = load_config(None)
    r = redis_srv.client()
    for prefix, p in procs.items():
        assert p.returncode == 0, outs[prefix][1][-2000:]
        summary = json.loads(outs[prefix][0])
        assert summary["key_prefix"] == prefix
        assert summary["expected_tasks"] == 1140
        assert (summary["collected"] == summary["unique_task_ids"]
                == summary["enqueued_total"] == 1140)
        keys = FarmKeys.from_config(cfg, prefix)
        records = [json.loads(x) for x in r.lrange(keys.output, 0, -1)]
        assert len({t["task_id"] for t in records}) == len(records) == 1140
        # Only this farm's workers (named worker-<its pid>-<n>) took its tasks.
        assert {t["pod_name"].rsplit("-", 1)[0] for t in records} == {f"worker-{p.pid}"}
    assert not [k for k in r.keys("*") if not k.startswith((b"a:", b"b:"))]


def test_a_farm_refuses_to_start_while_foreign_workers_are_active(redis_srv):
    cfg = load_config(None, {"base_rate": 60, "phase_definitions": [
        {"name": "only", "phase_duration": 400, "multiplier": 1.0}]})
    first = LiveFarm(cfg, redis_url=redis_srv.url, time_scale=0.05, key_prefix="shared:",
                     scaler_options={"emulate_latency": False})
    second = LiveFarm(cfg, redis_url=redis_srv.url, time_scale=0.05, key_prefix="shared:",
                      scaler_options={"emulate_latency": False}, foreign_grace=1.0)
    try:
        first.reset(seed=1, initial_workers=2)
        with pytest.raises(LiveFarmError) as err:
            second.reset(seed=2, initial_workers=1)
        message = str(err.value)
        assert "\n" not in message
        assert "4 foreign farm process(es)" in message and "'shared:'" in message
        assert redis_srv.url in message
        # The refused farm touched nothing: the first one runs on.
        assert first.scaler.health() is None and second.scaler.pids() == []
        before = first.snapshot().enqueued_total
        first.wait(20)
        assert first.snapshot().enqueued_total > before
        # Once the first farm is closed, its namespace is free at once (no heartbeat left).
        first.close()
        assert active_members(second.link, second.keys) == []
        second.reset(seed=2, initial_workers=1)
        assert second.scaler.health() is None
    finally:
        for farm in (first, second):
            farm.close()


def test_collector_delivers_exactly_once_after_a_crash_mid_batch(redis_srv):
    keys = FarmKeys.from_config(load_config(None), "c:")
    link = RedisLink(redis_srv.url, tries=2, backoff=0.05)
    r = redis_srv.client()

    def result(i: int) -> str:
        return dumps({"task_id": f"t{i}", "task_gen_timestamp": 0.0, "task_deadline": 1e9,
                      "program_start_time": time.time(), "time_scale": 1.0})

    try:
        # A collector died after taking t0, t1 (LMOVE) and before delivering them.
        r.rpush(keys.collecting, result(0), result(1))
        r.rpush(keys.result, *[result(i) for i in range(2, 7)])
        assert collect(link, keys, batch=3) == 5  # the leftovers first, then a batch
        assert collect(link, keys, batch=3) == 2
        assert collect(link, keys, batch=3) == 0
        ids = [json.loads(x)["task_id"] for x in r.lrange(keys.output, 0, -1)]
        assert ids == [f"t{i}" for i in range(7)]
        assert r.llen(keys.collecting) == r.llen(keys.result) == 0
    finally:
        link.close()


def test_heartbeats_are_found_per_prefix_even_with_glob_characters(redis_srv):
    cfg = load_config(None)
    link = RedisLink(redis_srv.url, tries=2, backoff=0.05)
    mine, near = FarmKeys.from_config(cfg, "a*[1]:"), FarmKeys.from_config(cfg, "ab[1]:")
    r = redis_srv.client()
    try:
        r.set(mine.alive("worker", "w1"), "1", px=5000)
        r.set(near.alive("worker", "w2"), "1", px=5000)
        r.set(FarmKeys.from_config(cfg).alive("emitter", "e"), "1", px=5000)
        assert active_members(link, mine) == ["worker:w1"]
        assert active_members(link, near) == ["worker:w2"]
        assert active_members(link, FarmKeys.from_config(cfg)) == ["emitter:e"]
    finally:
        link.close()
