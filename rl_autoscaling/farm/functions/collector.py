"""The collector (docs/farm.md): every ``collector_wait_time`` pop all results, stamp them, and
push them to ``output_queue``.

Added fields: ``task_collect_timestamp`` (farm seconds since program start),
``task_completion_time`` = pick-up time - ``task_gen_timestamp`` (end to end) and ``task_QoS``
= completion time <= ``task_deadline``. Nothing drains ``output_queue`` during an episode.

Exactly once, even if the collector dies mid-batch: results are moved (``LMOVE``, atomic)
from ``result_queue`` to the farm's ``collecting`` list, stamped, and appended to
``output_queue`` by one Lua script that also empties ``collecting``. A result is therefore
always in exactly one list; a collector that starts finds what its predecessor left in
``collecting`` and delivers it first. The script only delivers if ``collecting`` still holds
the batch it was given, so a retried call (reply lost) cannot append a batch twice.
LMOVE needs Redis 6.2 or newer.

The collector is also the farm's reaper (every ``REAP_PERIOD`` real seconds): a worker's
in-flight list whose heartbeat key has expired (the worker died mid-task) is moved back to the
head of ``worker_queue`` by one Lua script that first checks the heartbeat is still missing
(see ``functions.worker``).
"""

from __future__ import annotations

import time

from .protocol import (
    REQUEUE,
    TERMINATE,
    FarmKeys,
    FunctionContext,
    RedisLink,
    dumps,
    farm_time,
    loads,
)

BATCH = 256  # results moved per round trip
REAP_PERIOD = 1.0  # real seconds between reaper passes

# KEYS: in-flight list, the worker's heartbeat, worker_queue: re-queue if the worker is gone.
_REAP = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
""" + REQUEUE.replace("KEYS[2]", "KEYS[3]")

# KEYS: collecting, output; ARGV: batch size, then the stamped results.
_DELIVER = """
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[2], unpack(ARGV, 2))
redis.call('DEL', KEYS[1])
return 1
"""


def stamp(result: dict, now: float) -> dict:
    """Add the collector's fields to one result (``now`` is a wall-clock epoch)."""
    collect = farm_time(result, now)
    completion = collect - float(result["task_gen_timestamp"])
    result.update({
        "task_collect_timestamp": collect,
        "task_completion_time": completion,
        "task_QoS": bool(completion <= float(result["task_deadline"])),
    })
    return result


def run(ctx: FunctionContext) -> str:
    keys = ctx.keys
    link = ctx.link()
    poll = max(ctx.config.timing.collector_wait_time * ctx.time_scale, 0.002)
    link.call(lambda r: r.hset(keys.state, "collector_ready", time.time()))
    next_reap = time.time() + REAP_PERIOD
    while True:
        raw = link.call(lambda r: r.lpop(keys.collector_control_syn))
        if raw is not None and loads(raw).get("type") == TERMINATE:
            return "terminated"
        while collect(link, keys) >= BATCH:
            pass
        if time.time() >= next_reap:
            reap(link, keys)
            next_reap = time.time() + REAP_PERIOD
        time.sleep(poll)


def reap(link: RedisLink, keys: FarmKeys) -> int:
    """Re-queue the in-flight tasks of workers whose heartbeat expired; returns how many."""
    lists = link.call(lambda r: list(r.scan_iter(match=keys.inflight_pattern, count=500)))
    moved = 0
    for raw_key in lists:
        key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        beat = keys.alive("worker", keys.inflight_worker(key))
        moved += int(link.call(lambda r: r.eval(_REAP, 3, key, beat, keys.worker)))
    return moved


def collect(link: RedisLink, keys: FarmKeys, batch: int = BATCH) -> int:
    """Move up to ``batch`` results to ``output_queue`` (plus any left in ``collecting``);
    returns how many were delivered."""

    def take(r) -> list[bytes]:
        pipe = r.pipeline(transaction=True)
        for _ in range(min(batch, int(r.llen(keys.result)))):
            pipe.lmove(keys.result, keys.collecting, "LEFT", "RIGHT")
        pipe.lrange(keys.collecting, 0, -1)
        return pipe.execute()[-1]

    taken = link.call(take)
    if not taken:
        return 0
    now = time.time()
    out = [dumps(stamp(loads(item), now)) for item in taken]
    link.call(lambda r: r.eval(_DELIVER, 2, keys.collecting, keys.output, len(out), *out))
    return len(out)


def main(argv: list[str] | None = None) -> int:
    from ._cli import function_main

    return function_main("collector", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
