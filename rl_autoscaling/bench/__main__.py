"""Benchmarks: ``python -m rl_autoscaling.bench {sim,sarsa,dqn,policies} [options]``.

Figures are printed, never asserted: the machine is shared and noisy, so compare ratios.

``sim`` measures the simulated twin on the default workload (30 steps of 8 s, 12 initial
workers, as the CLIs use) under a random and a fixed (no-op) policy: env steps/s, episodes/s,
simulated tasks/s, simulated seconds per wall second and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import importlib
import resource
import sys
import time
from typing import Callable, Sequence

import numpy as np

# Other benchmarks live next to the code they measure; imported only when asked for.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sarsa": ("rl_autoscaling.bench.sarsa", "main"),
    "dqn": ("rl_autoscaling.bench.dqn", "main"),
    "policies": ("rl_autoscaling.bench.policies", "main"),
}


def peak_rss_mib() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_sim(episodes: int, policy: str, seed: int = 0) -> dict[str, float]:
    """Run ``episodes`` episodes with a ``random`` or ``fixed`` policy; return the figures."""
    from ..env import EnvSettings, OpenFaaSAutoscalingEnv

    env = OpenFaaSAutoscalingEnv.from_env_config(EnvSettings().env_config())
    rng = np.random.default_rng(seed)
    pick: Callable[[], int] = (lambda: int(rng.integers(3))) if policy == "random" else (lambda: 1)
    steps = tasks = 0
    sim_seconds = 0.0
    start = time.perf_counter()
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        while True:
            _, _, term, trunc, info = env.step(pick())
            steps += 1
            if term or trunc:
                break
        tasks += info["processed_tasks"]
        sim_seconds += env.backend.now
    wall = time.perf_counter() - start
    return {
        "episodes": episodes, "steps": steps, "wall_s": wall,
        "steps_per_s": steps / wall, "episodes_per_s": episodes / wall,
        "tasks_per_s": tasks / wall, "sim_s_per_wall_s": sim_seconds / wall,
        "peak_rss_mib": peak_rss_mib(),
    }


def main_sim(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl_autoscaling.bench sim",
                                     description=__doc__.split("\n\n")[-1])
    parser.add_argument("--episodes", type=int, default=300, help="episodes per policy")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    bench_sim(5, "fixed", args.seed)  # warm-up: imports and first allocations
    print(f"{'policy':<8} {'episodes':>8} {'steps/s':>10} {'episodes/s':>11} "
          f"{'tasks/s':>11} {'sim-s/wall-s':>13} {'peak RSS MiB':>13}")
    for policy in ("random", "fixed"):
        r = bench_sim(args.episodes, policy, args.seed)
        print(f"{policy:<8} {r['episodes']:>8} {r['steps_per_s']:>10.0f} "
              f"{r['episodes_per_s']:>11.1f} {r['tasks_per_s']:>11.0f} "
              f"{r['sim_s_per_wall_s']:>13.0f} {r['peak_rss_mib']:>13.1f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = ["sim", *SUBCOMMANDS]
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m rl_autoscaling.bench {{{','.join(names)}}} [options]\n\n"
              f"{__doc__.strip()}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "sim":
        return main_sim(rest)
    if name not in SUBCOMMANDS:
        print(f"error: unknown benchmark {name!r}; choose one of {', '.join(names)}",
              file=sys.stderr)
        return 2
    module, func = SUBCOMMANDS[name]
    try:
        entry = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        print(f"error: benchmark {name!r} is not available in this build", file=sys.stderr)
        return 2
    return int(entry(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
