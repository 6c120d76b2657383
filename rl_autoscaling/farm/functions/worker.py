"""The worker (docs/farm.md): check the control queue, else pop a task, else sleep ``wait_time``.

A worker started with ``FARM_WORKER_START_AT`` (the local scaler's emulated deploy latency)
waits until that wall-clock time before announcing itself and taking tasks, as a pod does
until it is ready.

A task is "processed" by sleeping ``(p + processing_delay) x time_scale`` real seconds; the
result (the task plus ``task_work_time``, ``task_work_timestamp``, ``processing_time``,
``image_size``, ``status``, ``pod_name``) goes to ``result_queue``. Control messages are read
only between tasks, so a task is never interrupted: on SCALE_DOWN SYN the worker pushes its
ACK and stops taking tasks; on TERMINATE it stops.
"""

from __future__ import annotations

import os
import time

from .protocol import (
    ENV_WORKER_START_AT,
    SCALE_DOWN,
    SYN,
    TERMINATE,
    FunctionContext,
    ack,
    dumps,
    farm_time,
    loads,
    start_announcement,
)


def run(ctx: FunctionContext) -> str:
    """The worker loop; returns why it stopped ("scaled_down" or "terminated")."""
    keys, timing = ctx.keys, ctx.config.timing
    link = ctx.link()
    poll = max(timing.wait_time * ctx.time_scale, 0.002)
    start_at = float(os.environ.get(ENV_WORKER_START_AT) or 0.0)
    time.sleep(max(0.0, start_at - time.time()))  # an emulated deploy latency
    link.call(lambda r: r.rpush(keys.worker_start, start_announcement(ctx.name)))
    while True:
        raw = link.call(lambda r: r.lpop(keys.worker_control_syn))
        if raw is not None:
            msg = loads(raw)
            if msg.get("type") == SCALE_DOWN and msg.get("action") == SYN:
                link.call(lambda r: r.rpush(keys.worker_control_ack,
                                                 ack(ctx.name, msg.get("request_id"))))
                return "scaled_down"
            if msg.get("type") == TERMINATE:
                return "terminated"
            continue  # unknown control message: ignore
        raw = link.call(lambda r: r.lpop(keys.worker))
        if raw is None:
            time.sleep(poll)
            continue
        result = process(loads(raw), ctx)
        link.call(lambda r: r.rpush(keys.result, dumps(result)))


def process(task: dict, ctx: FunctionContext) -> dict:
    """Sleep the task's processing time (scaled) and return the result message."""
    scale = float(task.get("time_scale", ctx.time_scale))
    task.setdefault("time_scale", scale)
    p = float(task["task_processing_time_simulated"])
    start = time.time()
    time.sleep(max(0.0, (p + ctx.config.timing.processing_delay) * scale))
    end = time.time()
    task.update({
        "task_work_timestamp": farm_time(task, start) if "program_start_time" in task else None,
        "task_work_time": (end - start) / scale,
        "processing_time": p,
        "image_size": task.get("task_data_size"),
        "status": "completed",
        "pod_name": ctx.name,
    })
    return task


def main(argv: list[str] | None = None) -> int:
    from ._cli import function_main

    return function_main("worker", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
