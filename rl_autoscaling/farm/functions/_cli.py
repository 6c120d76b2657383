"""Shared command line of the three functions."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from .lifecycle import guard_parent, parent_from_env, registered, sigterm_exits
from .protocol import FunctionContext, LiveFarmError


def function_main(role: str, run: Callable[[FunctionContext], str],
                  argv: list[str] | None = None) -> int:
    """Run ``role`` as its own process: die with the parent, register, loop until told."""
    parser = argparse.ArgumentParser(prog=f"rl_autoscaling.farm.functions.{role}",
                                     description=f"Run the farm's {role} until told to stop.")
    parser.add_argument("--redis-url", help="redis://host:port/db (default: $REDIS_URL or config)")
    parser.add_argument("--name", help="pod name (default: $POD_NAME or the host name)")
    parser.add_argument("--time-scale", type=float, help="real seconds per farm second")
    parser.add_argument("--key-prefix",
                        help="the farm's Redis key namespace (default: $FARM_KEY_PREFIX or none)")
    args = parser.parse_args(argv)
    ctx = FunctionContext.from_env(role, args.redis_url, args.name, args.time_scale,
                                   args.key_prefix)
    try:
        # SIGTERM (the scaler's stop, the parent's death) unwinds, removing the heartbeat.
        with sigterm_exits():
            guard_parent()
            with registered(ctx, role, parent_from_env()):
                outcome = run(ctx)
    except LiveFarmError as exc:
        print(f"{role} {ctx.name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"{role} {ctx.name}: {outcome}", file=sys.stderr)
    return 0
