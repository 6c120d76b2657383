"""``python -m rl_autoscaling.bench sarsa``: SARSA(lambda) training throughput.

Three figures, printed (never asserted; the machine is shared and noisy):

- ``core``: the tabular learner's ``train_episode`` on the twin (30 steps of 8 s, 12 initial
  workers), i.e. env steps + online updates: episodes/s and updates/s;
- ``rllib``: the same through ``SarsaLambda.train()`` (one episode per iteration), i.e. with
  RLlib's per-iteration bookkeeping (timers, metrics, result dict);
- ``update``: the SARSA(lambda) update alone on a replayed transition stream (no env), with
  the default lambda 0.5 and with lambda 0.
"""

from __future__ import annotations

import argparse
import time
from typing import Sequence

ENV_CONFIG = {"max_steps": 30, "step_duration": 8.0, "observation_window": 8.0,
              "initial_workers": 12, "task_seed": 42}


def bench_core(episodes: int, seed: int = 42) -> dict[str, float]:
    """Episodes/s and updates/s of ``SarsaLambdaLearner.train_episode`` on the twin."""
    from ..algorithms.sarsa.tabular import SarsaLambdaLearner
    from ..env import OpenFaaSAutoscalingEnv

    env = OpenFaaSAutoscalingEnv.from_env_config(ENV_CONFIG)
    learner = SarsaLambdaLearner(seed=seed)
    updates = 0
    start = time.perf_counter()
    for _ in range(episodes):
        updates += learner.train_episode(env).updates
    wall = time.perf_counter() - start
    env.close()
    return {"episodes": episodes, "updates": updates, "wall_s": wall,
            "episodes_per_s": episodes / wall, "updates_per_s": updates / wall}


def bench_rllib(episodes: int, seed: int = 42) -> dict[str, float]:
    """Episodes/s and updates/s of ``SarsaLambda.train()`` (one episode per iteration)."""
    import logging

    from ..algorithms.sarsa.algorithm import SarsaLambdaConfig

    for name in ("ray", "ray.rllib", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)
    algo = SarsaLambdaConfig().environment(env_config=ENV_CONFIG).debugging(
        seed=seed).build_algo()
    updates = 0
    start = time.perf_counter()
    for _ in range(episodes):
        updates += algo.train()["learners"]["sarsa"]["updates"]
    wall = time.perf_counter() - start
    algo.stop()
    return {"episodes": episodes, "updates": updates, "wall_s": wall,
            "episodes_per_s": episodes / wall, "updates_per_s": updates / wall}


def bench_update(updates: int, trace_lambda: float, seed: int = 42) -> dict[str, float]:
    """Updates/s of ``SarsaLambdaLearner.update`` on a recorded stream of transitions."""
    from ..algorithms.sarsa.tabular import SarsaHyperparams, SarsaLambdaLearner
    from ..env import OpenFaaSAutoscalingEnv

    env = OpenFaaSAutoscalingEnv.from_env_config(ENV_CONFIG)
    learner = SarsaLambdaLearner(hyperparams=SarsaHyperparams(trace_lambda=trace_lambda),
                                 seed=seed)
    stream = []  # (s, a, r, s', a') of a few random episodes, replayed cyclically
    for ep in range(5):
        obs, _ = env.reset(seed=seed + ep)
        s, a = learner.state(obs), int(learner.rng.integers(3))
        while True:
            obs, r, term, trunc, _ = env.step(a)
            s2, a2 = learner.state(obs), int(learner.rng.integers(3))
            done = term or trunc
            stream.append((s, a, float(r), None if done else s2, None if done else a2))
            if done:
                break
            s, a = s2, a2
    env.close()
    start = time.perf_counter()
    for i in range(updates):
        s, a, r, s2, a2 = stream[i % len(stream)]
        learner.update(s, a, r, s2, a2)
        if s2 is None:
            learner.traces.clear()
    wall = time.perf_counter() - start
    return {"updates": updates, "wall_s": wall, "updates_per_s": updates / wall}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl_autoscaling.bench sarsa",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=300, help="episodes per figure")
    parser.add_argument("--updates", type=int, default=200_000, help="updates for 'update'")
    parser.add_argument("--seed", type=int, default=42, help="seed")
    parser.add_argument("--skip-rllib", action="store_true",
                        help="skip the RLlib figure (saves the ~4 s RLlib import)")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.updates < 1:
        parser.error("--episodes and --updates must be >= 1")
    bench_core(3, args.seed)  # warm-up: imports and first allocations
    print(f"{'figure':<16} {'episodes':>8} {'updates':>9} {'wall s':>8} {'episodes/s':>11} "
          f"{'updates/s':>11}")
    rows = [("core", bench_core(args.episodes, args.seed))]
    if not args.skip_rllib:
        bench_rllib(2, args.seed)  # warm-up: RLlib import and algorithm build
        rows.append(("rllib", bench_rllib(args.episodes, args.seed)))
    rows.append(("update lambda=.5", bench_update(args.updates, 0.5, args.seed)))
    rows.append(("update lambda=0", bench_update(args.updates, 0.0, args.seed)))
    for name, r in rows:
        eps = str(r["episodes"]) if "episodes" in r else "-"
        eps_rate = f"{r['episodes_per_s']:.1f}" if "episodes_per_s" in r else "-"
        print(f"{name:<16} {eps:>8} {r['updates']:>9} {r['wall_s']:>8.2f} {eps_rate:>11} "
              f"{r['updates_per_s']:>11.0f}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
