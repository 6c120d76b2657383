"""The worker (docs/farm.md): check the control queue, else pop a task, else sleep ``wait_time``.

A worker started with ``FARM_WORKER_START_AT`` (the local scaler's emulated deploy latency)
waits until that wall-clock time before announcing itself and taking tasks, as a pod does
until it is ready.

A task is "processed" by sleeping ``(p + processing_delay) x time_scale`` real seconds; the
result (the task plus ``task_work_time``, ``task_work_timestamp``, ``processing_time``,
``image_size``, ``status``, ``pod_name``) goes to ``result_queue``. Control messages are read
only between tasks, so a task is never interrupted: on SCALE_DOWN SYN the worker pushes its
ACK and stops taking tasks; on TERMINATE it stops.

No task is lost when a worker dies mid-task (eviction, OOM kill, node loss): the worker takes
a task with ``LMOVE worker_queue -> <worker_queue>:inflight:<name>`` (atomic) and, once done,
one Lua script removes it from that list and pushes the result, so a task is always in exactly
one list. When the worker's heartbeat expires, the collector's reaper moves what its in-flight
list holds back to the head of ``worker_queue`` (``collector.reap``); the task keeps its
``task_gen_timestamp``, so its deadline still counts from the original enqueue. A worker
whose task was re-queued meanwhile (it was presumed dead) finds it gone and drops its result,
so the task is delivered once. A worker that starts re-queues what a predecessor of the same
name left in its list. LMOVE needs Redis 6.2 or newer.
"""

from __future__ import annotations

import os
import time

from .protocol import (
    ENV_WORKER_START_AT,
    REQUEUE,
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

# KEYS: in-flight list, result_queue; ARGV: the task as taken, the result. Delivers only if
# the task is still ours (not re-queued by the reaper), so a retried call cannot deliver twice.
_FINISH = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def run(ctx: FunctionContext) -> str:
    """The worker loop; returns why it stopped ("scaled_down" or "terminated")."""
    keys, timing = ctx.keys, ctx.config.timing
    link = ctx.link()
    poll = max(timing.wait_time * ctx.time_scale, 0.002)
    start_at = float(os.environ.get(ENV_WORKER_START_AT) or 0.0)
    time.sleep(max(0.0, start_at - time.time()))  # an emulated deploy latency
    inflight = keys.inflight(ctx.name)
    link.call(lambda r: r.eval(REQUEUE, 2, inflight, keys.worker))  # a predecessor's task
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
        raw = link.call(lambda r: r.lmove(keys.worker, inflight, "LEFT", "RIGHT"))
        if raw is None:
            time.sleep(poll)
            continue
        out = dumps(process(loads(raw), ctx))
        link.call(lambda r: r.eval(_FINISH, 2, inflight, keys.result, raw, out))


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
