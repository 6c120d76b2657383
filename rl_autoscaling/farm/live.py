"""The live backend: the real farm on Redis, behind the same interface as the twin.

``LiveFarm`` observes the farm only through Redis (queue lengths, the ``enqueued_total``
counter, the tasks newly appended to ``output_queue``, read incrementally from an index
since nothing drains that list during an episode, and the tasks still queued in
``worker_queue``, ``result_queue`` and the collector's batch, whose ``task_gen_timestamp +
task_deadline`` tell which have missed their deadline already: ``FarmSnapshot.overdue``; a task
inside a worker counts once it reaches ``result_queue``) and resizes it through a
:class:`~rl_autoscaling.farm.scalers.Scaler` (local processes, Kubernetes or OpenFaaS).

Clock: ``program_start_time`` is the wall-clock epoch at which the episode's phase
descriptors are pushed; every time the backend reports (``now``, snapshot times, collect times,
scaling times, ``task_generation_*_time``) is in *farm seconds* since then, i.e. real seconds
divided by ``time_scale``. With ``time_scale=0.1`` the farm runs 10x faster than real time and
``wait(8)`` sleeps 0.8 s, so the env sees numbers comparable to the twin's.

Redis errors: every call retries with exponential backoff (``redis_tries`` tries from
``redis_backoff`` s, about 3 s by default) and then raises :class:`LiveFarmError` naming the
Redis URL. Tasks collected so far stay in :attr:`LiveFarm.records`.

Namespaces: every key of a farm carries its ``key_prefix`` (``FarmKeys``), so farms (and live
env copies) sharing one Redis never share a queue. With the local scaler the default prefix
is a fresh ``farm-<id>:`` per ``LiveFarm``; the cluster scalers default to no prefix, as their
functions read theirs from ``FARM_KEY_PREFIX``. :meth:`LiveFarm.reset` refuses to start while
processes it did not start keep heartbeats under its prefix (``functions.lifecycle``).

Shutdown: :meth:`LiveFarm.close` stops every farm process (idempotent). Nothing global is
installed; a program that should clean up on SIGTERM wraps its run in ``sigterm_exits``
(from ``functions.lifecycle``, re-exported here) and closes the env/farm in a ``finally``
block.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Sequence

import numpy as np

from ..config import FarmConfig
from .base import Completions, FarmBackend, FarmSnapshot, ScaleResult
from .functions.lifecycle import HEARTBEAT_TTL, active_members, sigterm_exits
from .functions.protocol import (
    FarmKeys,
    LiveFarmError,
    RedisLink,
    loads,
    phase_descriptor,
    redis_url_for,
)
from .scalers import Scaler, make_scaler
from .workload import episode_workload, expected_task_count

#: seconds a generated namespace's keys (output_queue etc.) survive ``LiveFarm.close``
KEEP_KEYS = 3600


class LiveFarm(FarmBackend):
    """A real farm reached through Redis.

    Args:
        config: the farm configuration (queue names, timings, workload).
        redis_url: ``redis://host:port/db``; default: from ``config.redis``.
        scaler: ``"local"``, ``"kubernetes"``, ``"openfaas"`` or a ``Scaler`` instance.
        time_scale: real seconds per farm second (< 1 runs faster than real time).
        scaler_options: keyword arguments for the scaler's constructor.
        redis_tries, redis_backoff: retry budget of each Redis call.
        start_timeout: real seconds to wait for the emitter to take the first phase.
        key_prefix: the farm's Redis key namespace; default: a fresh ``farm-<id>:`` with the
            local scaler, none with the cluster scalers.
        foreign_grace: real seconds :meth:`reset` waits for foreign heartbeats to expire
            (a process killed without cleanup) before refusing to start.
    """

    def __init__(self, config: FarmConfig, redis_url: str | None = None,
                 scaler: str | Scaler = "local", time_scale: float = 1.0,
                 scaler_options: dict[str, Any] | None = None, redis_tries: int = 5,
                 redis_backoff: float = 0.2, start_timeout: float = 30.0,
                 key_prefix: str | None = None,
                 foreign_grace: float = HEARTBEAT_TTL + 0.5) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.config = config
        self.redis_url = redis_url or redis_url_for(config)
        self.time_scale = float(time_scale)
        self.start_timeout = float(start_timeout)
        self.foreign_grace = float(foreign_grace)
        self.scaler = make_scaler(scaler, config, **dict(scaler_options or {}))
        #: True when the prefix is ours alone: its keys expire ``KEEP_KEYS`` s after close
        self.own_prefix = key_prefix is None and self.scaler.name == "local"
        if key_prefix is None:
            key_prefix = new_farm_prefix() if self.own_prefix else ""
        self.keys = FarmKeys.from_config(config, key_prefix)
        self.link = RedisLink(self.redis_url, tries=redis_tries, backoff=redis_backoff)
        self.scaler.bind(self.link, self.keys, config, self.time_scale)
        self.expected_tasks = expected_task_count(config)
        self.workload = None  # the current episode's Workload (same as the twin's)
        self.program_start_time = 0.0
        self.task_generation_start_time = None
        self._generation_end: float | None = None
        #: every task collected this episode, as read from output_queue (kept on errors)
        self.records: list[dict[str, Any]] = []
        self._out_index = 0
        self._started = False

    # ------------------------------------------------------------------ clock

    @property
    def now(self) -> float:
        return (time.time() - self.program_start_time) / self.time_scale if self._started else 0.0

    @property
    def task_generation_end_time(self) -> float | None:
        return self._generation_end

    # ------------------------------------------------------------------ episode lifecycle

    def reset(self, *, seed: int, initial_workers: int,
              phase_order: Sequence[int] | None = None) -> FarmSnapshot:
        """Stop the farm, clear its keys, start collector/workers/emitter, start the episode."""
        order = list(phase_order) if phase_order else None
        wl = episode_workload(self.config, seed, order)  # what the emitter will generate
        self.workload = wl
        self.expected_tasks = wl.expected_tasks
        self.scaler.stop_farm()
        self._refuse_foreign_processes()
        self.link.call(lambda r: r.delete(*self.keys.all(), *r.scan_iter(
            match=self.keys.inflight_pattern, count=500)))  # and earlier in-flight lists
        self.records, self._out_index = [], 0
        self._generation_end, self.task_generation_start_time = None, None
        self.scaler.start_farm(initial_workers, seed)
        # The episode starts now: the emitter is waiting on input_queue.
        self.program_start_time = time.time()
        self._started = True
        n = len(wl.phase_names)
        descriptors = [phase_descriptor(
            k, name, phase_count=n, seed=seed, order=order,
            program_start_time=self.program_start_time, time_scale=self.time_scale)
            for k, name in enumerate(wl.phase_names)]

        def push(r):
            pipe = r.pipeline(transaction=True)
            pipe.hset(self.keys.state, mapping={"program_start_time": self.program_start_time,
                                                "time_scale": self.time_scale})
            pipe.rpush(self.keys.input, *descriptors)
            pipe.execute()

        self.link.call(push)
        deadline = time.time() + self.start_timeout
        while self.link.call(lambda r: r.hget(self.keys.state, "generation_start")) is None:
            if time.time() > deadline:
                raise LiveFarmError(f"the emitter did not take the first phase within "
                                    f"{self.start_timeout:.0f} s")
            self._check_health()
            time.sleep(0.005)
        return self.snapshot()

    def attach(self) -> FarmSnapshot:
        """Observe a farm that is already running (its functions started by their own
        deployment): take the episode clock (``program_start_time``, ``time_scale``) from the
        farm's state hash, or start one now if the farm never published it, and read
        ``output_queue`` from its current end. Nothing is stopped, cleared or pushed."""
        keys = self.keys

        def read(r):
            pipe = r.pipeline(transaction=True)
            pipe.hmget(keys.state, ["program_start_time", "time_scale"])
            pipe.llen(keys.output)
            return pipe.execute()

        (start, scale), out_len = self.link.call(read)
        self.program_start_time = float(start) if start is not None else time.time()
        if scale is not None:
            self.time_scale = self.scaler.time_scale = float(scale)
        self.records, self._out_index = [], int(out_len)
        self._started = True
        return self.snapshot()

    def _refuse_foreign_processes(self) -> None:
        """Raise if processes we did not start are alive under our prefix (they would take
        this farm's tasks); heartbeats of processes just killed get ``foreign_grace`` s to
        expire first."""
        deadline = time.time() + self.foreign_grace
        while True:
            members = active_members(self.link, self.keys)
            if not members:
                return
            if time.time() >= deadline:
                shown = ", ".join(members[:3]) + (", ..." if len(members) > 3 else "")
                raise LiveFarmError(
                    f"{len(members)} foreign farm process(es) are active on the queues with key "
                    f"prefix {self.keys.prefix!r} at {self.redis_url} ({shown}); stop them or "
                    f"use another key prefix")
            time.sleep(0.1)

    def close(self) -> None:
        """Stop every farm process and release Redis (idempotent; safe after errors)."""
        try:
            self.scaler.close()
        finally:
            if self.own_prefix:
                self._expire_keys()
            self.link.close()

    def _expire_keys(self) -> None:
        """Let a generated namespace's keys expire (one try: Redis may be gone)."""
        try:
            pipe = self.link.client.pipeline(transaction=False)
            for key in self.keys.all():
                pipe.expire(key, KEEP_KEYS)
            pipe.execute()
        except Exception:  # noqa: BLE001 - closing must not fail on a dead Redis
            pass

    # ------------------------------------------------------------------ acting

    def scale(self, delta: int) -> ScaleResult:
        start = self.now
        if delta > 0:
            applied = self.scaler.scale_up(delta)
        elif delta < 0:
            applied = -self.scaler.scale_down(-delta)
        else:
            return ScaleResult(0, 0.0)
        return ScaleResult(applied, self.now - start)

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` farm seconds, checking the farm's processes as it goes."""
        end = time.time() + max(0.0, seconds) * self.time_scale
        while True:
            self._check_health()
            left = end - time.time()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))

    def _check_health(self) -> None:
        problem = self.scaler.health()
        if problem:
            # A component dying usually means Redis went away: report that if so.
            self.link.call(lambda r: r.ping())
            raise LiveFarmError(problem)

    # ------------------------------------------------------------------ observing

    def snapshot(self) -> FarmSnapshot:
        keys, index = self.keys, self._out_index

        def read(r):
            pipe = r.pipeline(transaction=True)
            pipe.llen(keys.input)
            pipe.llen(keys.worker)
            pipe.llen(keys.result)
            pipe.get(keys.enqueued_total)
            pipe.lrange(keys.output, index, -1)
            pipe.hmget(keys.state, ["generation_start", "generation_end"])
            for queued in (keys.worker, keys.result, keys.collecting):
                pipe.lrange(queued, 0, -1)
            return pipe.execute()

        inp, wq, rq, enq, new_raw, (gen_start, gen_end), *queued = self.link.call(read)
        now = self.now
        overdue = sum(1 for items in queued for raw in items if _past_deadline(loads(raw), now))
        new = [loads(x) for x in new_raw]
        self.records.extend(new)
        self._out_index += len(new)
        if gen_start is not None:
            self.task_generation_start_time = float(gen_start)
        if gen_end is not None:
            self._generation_end = float(gen_end)
        completed = Completions(
            np.array([t["task_collect_timestamp"] for t in new], dtype=float),
            np.array([t["task_completion_time"] for t in new], dtype=float),
            np.array([bool(t["task_QoS"]) for t in new], dtype=bool),
        ) if new else Completions.empty()
        return FarmSnapshot(
            time=now, input_queue=int(inp), worker_queue=int(wq), result_queue=int(rq),
            output_queue=self._out_index, workers=self.scaler.observed_workers(),
            enqueued_total=int(enq or 0), completed=completed, overdue=overdue)

    def drain(self, timeout: float) -> FarmSnapshot:
        """Wait up to ``timeout`` farm seconds until no task is in a worker or result_queue."""
        keys = self.keys
        end = time.time() + max(0.0, timeout) * self.time_scale
        poll = max(0.005, self.config.timing.collector_wait_time * self.time_scale)

        def counts(r):
            pipe = r.pipeline(transaction=True)
            pipe.get(keys.enqueued_total)
            pipe.llen(keys.worker)
            pipe.llen(keys.output)
            return pipe.execute()

        while time.time() < end:
            enq, wq, out = self.link.call(counts)
            if int(enq or 0) - int(wq) - int(out) <= 0:
                break
            time.sleep(poll)
        return self.snapshot()

    def output_records(self) -> list[dict[str, Any]]:
        """Every task in output_queue now (one full read; for tests and analysis)."""
        raw = self.link.call(lambda r: r.lrange(self.keys.output, 0, -1))
        return [loads(x) for x in raw]


def _past_deadline(task: dict[str, Any], now: float) -> bool:
    """True if a task not yet collected at farm time ``now`` has missed its deadline
    (``task_gen_timestamp + task_deadline < now``, the collector's QoS rule)."""
    try:
        return float(task["task_gen_timestamp"]) + float(task["task_deadline"]) < now
    except (KeyError, TypeError, ValueError):
        return False  # not a task (e.g. a control message): never a miss


def new_farm_prefix() -> str:
    """A fresh key namespace, ``farm-<12 hex digits>:``."""
    return f"farm-{uuid.uuid4().hex[:12]}:"


# --------------------------------------------------------------------------- CLI helpers


def add_live_arguments(parser) -> None:
    """Add ``--redis-url``, ``--scaler``, ``--time-scale`` and ``--key-prefix`` to a parser."""
    from .scalers import SCALERS

    parser.add_argument("--redis-url", default=None,
                        help="live backend: redis://host:port/db (default: from the config)")
    parser.add_argument("--scaler", default="local", choices=SCALERS,
                        help="live backend: how workers are scaled")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="live backend: real seconds per farm second (0.1 = 10x faster)")
    parser.add_argument("--key-prefix", default=None,
                        help="live backend: Redis key namespace of the farm (default: a fresh "
                             "farm-<id>: per env with --scaler local, none otherwise); env "
                             "copies given the same prefix refuse to share it")


def live_backend_options(args) -> dict[str, Any]:
    """``backend_options`` for the env from parsed ``add_live_arguments`` flags."""
    opts: dict[str, Any] = {"scaler": getattr(args, "scaler", "local"),
                            "time_scale": float(getattr(args, "time_scale", 1.0))}
    if getattr(args, "redis_url", None):
        opts["redis_url"] = args.redis_url
    if getattr(args, "key_prefix", None) is not None:
        opts["key_prefix"] = args.key_prefix
    return opts


__all__ = ["LiveFarm", "LiveFarmError", "add_live_arguments", "live_backend_options",
           "new_farm_prefix", "sigterm_exits"]
