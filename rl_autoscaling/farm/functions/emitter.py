"""The emitter (docs/farm.md): pop phase descriptors from ``input_queue`` and generate each
phase's tasks in real time (scaled by ``time_scale``).

The first descriptor of an episode carries the episode's seed and phase order; the emitter
builds the whole workload with ``workload.generate_workload`` exactly as the twin does (same
seed -> same tasks), then emits phase after phase, popping the next descriptor when its phase
starts. Each batch of due tasks is pushed to ``worker_queue`` and ``enqueued_total`` is
incremented in one MULTI/EXEC transaction. The state hash records ``generation_start`` and
``generation_end`` (farm seconds).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..workload import episode_workload
from .protocol import (
    PHASE,
    TERMINATE,
    FunctionContext,
    RedisLink,
    dumps,
    farm_time,
    loads,
    new_task,
    sleep_until,
)


class _Stop(Exception):
    pass


def run(ctx: FunctionContext) -> str:
    """Wait for an episode's first descriptor, emit the episode, repeat until TERMINATE."""
    keys = ctx.keys
    link = ctx.link()
    link.call(lambda r: r.hset(keys.state, "emitter_ready", time.time()))
    while True:
        if _terminated(link, keys.emitter_control_syn):
            return "terminated"
        item = link.call(lambda r: r.blpop([keys.input], timeout=0.2))
        if item is None:
            continue
        desc = loads(item[1])
        if desc.get("type") != PHASE or int(desc.get("position", -1)) != 0:
            continue  # a stale descriptor of an earlier episode
        try:
            emit_episode(ctx, link, desc)
        except _Stop:
            return "terminated"


def _terminated(link: RedisLink, queue: str) -> bool:
    raw = link.call(lambda r: r.lpop(queue))
    return raw is not None and loads(raw).get("type") == TERMINATE


def emit_episode(ctx: FunctionContext, link: RedisLink, first: dict[str, Any]) -> int:
    """Emit every task of the episode ``first`` starts; returns the number emitted."""
    keys = ctx.keys
    scale = float(first["time_scale"])
    wl = episode_workload(ctx.config, first["seed"], first.get("order"))
    t0 = time.time()
    link.call(lambda r: r.hset(keys.state, "generation_start", farm_time(first, t0)))
    due_at = t0 + wl.arrivals * scale  # wall time each task is due
    bounds = np.searchsorted(wl.phase_index, np.arange(len(wl.phase_names) + 1))
    stop = lambda: _terminated(link, keys.emitter_control_syn)  # noqa: E731
    for pos in range(len(wl.phase_names)):
        if pos > 0:
            if not sleep_until(t0 + wl.phase_starts[pos] * scale, stop):
                raise _Stop
            link.call(lambda r: r.lpop(keys.input))  # this phase's descriptor
        i, end = int(bounds[pos]), int(bounds[pos + 1])
        while i < end:
            now = time.time()
            j = int(np.searchsorted(due_at[:end], now, side="right"))
            if j <= i:
                if not sleep_until(min(due_at[i], now + 0.05), stop):
                    raise _Stop
                continue
            stamp = farm_time(first, now)
            batch = [dumps(new_task(
                index=k, now=stamp, processing=float(wl.processing[k]),
                deadline=float(wl.deadlines[k]), image_size=int(wl.image_sizes[k]),
                phase=wl.phase_names[pos], program_start_time=first["program_start_time"],
                time_scale=scale)) for k in range(i, j)]
            link.call(lambda r: _push_tasks(r, keys.worker, keys.enqueued_total, batch))
            i = j
    if not sleep_until(t0 + wl.end_time * scale, stop):
        raise _Stop
    link.call(lambda r: r.hset(keys.state, "generation_end", farm_time(first)))
    return wl.expected_tasks


def _push_tasks(r, queue: str, counter: str, batch: list[str]) -> None:
    """Enqueue tasks and bump the counter atomically (MULTI/EXEC)."""
    pipe = r.pipeline(transaction=True)
    pipe.rpush(queue, *batch)
    pipe.incrby(counter, len(batch))
    pipe.execute()


def main(argv: list[str] | None = None) -> int:
    from ._cli import function_main

    return function_main("emitter", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
