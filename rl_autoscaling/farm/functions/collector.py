"""The collector (SPEC §1): every ``collector_wait_time`` pop all results, stamp them, and
push them to ``output_queue``.

Added fields: ``task_collect_timestamp`` (farm seconds since program start),
``task_completion_time`` = pick-up time - ``task_gen_timestamp`` (end to end) and ``task_QoS``
= completion time <= ``task_deadline``. Nothing drains ``output_queue`` during an episode.
"""

from __future__ import annotations

import time

from .protocol import TERMINATE, FunctionContext, dumps, farm_time, loads

BATCH = 256  # results moved per round trip


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
    while True:
        raw = link.call(lambda r: r.lpop(keys.collector_control_syn))
        if raw is not None and loads(raw).get("type") == TERMINATE:
            return "terminated"
        while True:
            batch = link.call(lambda r: r.lpop(keys.result, BATCH))
            if not batch:
                break
            now = time.time()
            out = [dumps(stamp(loads(item), now)) for item in batch]
            link.call(lambda r: r.rpush(keys.output, *out))
            if len(batch) < BATCH:
                break
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    from ._cli import function_main

    return function_main("collector", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
