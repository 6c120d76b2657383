"""Run a local farm of real processes against a Redis server, for one episode.

    python -m rl_autoscaling.farm.local --redis-url redis://127.0.0.1:6380/0 --workers 4 \\
        --time-scale 0.1 --seed 42

starts the collector, ``--workers`` worker processes and the emitter (the same functions an
OpenFaaS deployment runs), pushes one episode's phase descriptors (the workload of ``--seed``,
identical to the twin's), waits until every task reached ``output_queue`` (or ``--timeout``
farm seconds), prints a JSON summary and stops the processes. ``--time-scale 0.1`` runs 10x
faster than real time. The farm uses only its own keys (the config's queue names under
``--key-prefix``, by default a fresh ``farm-<id>:`` printed in the summary) in the given
database; they are cleared first, and it refuses to start while foreign farm processes are
active under that prefix. SIGTERM, SIGHUP and Ctrl+C stop the farm's processes before the
program exits (status 130).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ..common.errors import run_guarded
from ..config import ConfigError, load_config
from .live import LiveFarm


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl_autoscaling.farm.local",
                                description="Run one episode on a local farm of real processes.")
    p.add_argument("--redis-url", required=True, help="redis://host:port/db the farm uses")
    p.add_argument("--workers", type=int, default=4, help="worker processes (fixed)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="real seconds per farm second (0.1 = 10x faster than real time)")
    p.add_argument("--seed", type=int, default=42, help="task seed of the episode")
    p.add_argument("--config", help="farm config YAML (default: the packaged one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="config override, e.g. --set base_rate=120 (repeatable)")
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="give up after this many farm seconds")
    p.add_argument("--no-latency", action="store_true",
                   help="do not emulate the cluster's scaling latencies")
    p.add_argument("--key-prefix", default=None,
                   help="Redis key namespace of the farm (default: a fresh farm-<id>:)")
    return p


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> dict:
    cfg = load_config(args.config, _overrides(args.set))
    farm = LiveFarm(cfg, redis_url=args.redis_url, scaler="local", time_scale=args.time_scale,
                    scaler_options={"emulate_latency": not args.no_latency},
                    key_prefix=args.key_prefix)
    wall = time.time()
    try:
        snap = farm.reset(seed=args.seed, initial_workers=args.workers, phase_order=None)
        while farm.now < args.timeout:
            farm.wait(1.0)
            snap = farm.snapshot()
            if snap.input_queue == 0 and snap.output_queue >= farm.expected_tasks:
                break
        recs = farm.records
        times = np.array([r["task_completion_time"] for r in recs], dtype=float)
        qos = np.array([r["task_QoS"] for r in recs], dtype=bool)
        return {
            "redis_url": farm.redis_url, "key_prefix": farm.keys.prefix, "workers": args.workers,
            "time_scale": args.time_scale,
            "seed": args.seed, "expected_tasks": farm.expected_tasks,
            "enqueued_total": snap.enqueued_total, "collected": len(recs),
            "unique_task_ids": len({r["task_id"] for r in recs}),
            "qos": float(qos.mean()) if qos.size else 1.0,
            "completion_time_mean": float(times.mean()) if times.size else None,
            "farm_seconds": farm.now, "wall_seconds": time.time() - wall,
        }
    finally:
        farm.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def go() -> int:
        summary = run(args)
        print(json.dumps(summary, indent=2))
        return 0 if summary["collected"] >= summary["expected_tasks"] else 1

    # bad input / farm errors: one line, exit 2; SIGTERM, SIGHUP, Ctrl+C: the farm is stopped
    # (run's finally), exit 130
    return run_guarded(go)


if __name__ == "__main__":
    raise SystemExit(main())
