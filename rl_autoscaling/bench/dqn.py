"""``python -m rl_autoscaling.bench dqn``: RLlib DQN throughput on the simulated twin.

Three figures, printed (never asserted):

- sampled: env steps/s while RLlib's env runner only collects (before ``--warmup-steps``);
- trained: env steps/s with one gradient update per env step (the training regime);
- greedy .pt: env steps/s of plain-PyTorch greedy roll-outs of the exported network.

The env is the CLIs' (30 steps of 8 s, 8 s window, 12 initial workers); network and batch size
are the docs/algorithms.md#dqn defaults unless given.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl_autoscaling.bench dqn",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--sample-steps", type=int, default=600,
                   help="env steps sampled without learning (also the warm-up)")
    p.add_argument("--train-steps", type=int, default=900,
                   help="env steps sampled with one update each")
    p.add_argument("--greedy-episodes", type=int, default=20,
                   help="episodes of plain-torch greedy inference")
    p.add_argument("--batch-size", type=int, default=64, help="transitions per update")
    p.add_argument("--hidden-layers", type=int, nargs="+", default=[128, 64],
                   help="MLP hidden layer sizes")
    p.add_argument("--seed", type=int, default=0, help="RLlib and workload seed")
    return p


def run(args: argparse.Namespace) -> dict[str, float]:
    import ray

    from ..algorithms.dqn.config import DqnHyperparams, dqn_config
    from ..algorithms.dqn.model import ObservationScaler, build_q_network
    from ..algorithms.dqn.policy import DqnPolicy
    from ..algorithms.dqn.training_env import register_dqn_env
    from ..algorithms.dqn.weights import learner_module, q_network_state_dict
    from ..common.rollout import run_episode
    from ..env import OpenFaaSAutoscalingEnv

    env_config = {"max_steps": 30, "step_duration": 8, "observation_window": 8,
                  "initial_workers": 12, "task_seed": args.seed}
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
        started = True
    register_dqn_env()
    hp = DqnHyperparams(batch_size=args.batch_size, warmup_steps=args.sample_steps,
                        hidden_layers=tuple(args.hidden_layers))
    algo = dqn_config(hp, env_config, seed=args.seed).build_algo()
    out: dict[str, float] = {}
    try:
        def sampled() -> int:
            r = algo.train()
            return int(r["env_runners"]["num_env_steps_sampled_lifetime"])

        t0, n0 = time.perf_counter(), 0
        n = n0
        while n < args.sample_steps:
            n = sampled()
        out["sampled_steps"] = n - n0
        out["sampled_steps_per_s"] = (n - n0) / (time.perf_counter() - t0)
        t1, n1 = time.perf_counter(), n
        while n < n1 + args.train_steps:
            n = sampled()
        out["trained_steps"] = n - n1
        out["trained_steps_per_s"] = (n - n1) / (time.perf_counter() - t1)

        space = OpenFaaSAutoscalingEnv(**env_config).observation_space
        net = build_q_network(9, hp.hidden_layers, 3)
        net.load_state_dict(q_network_state_dict(learner_module(algo)))
        policy = DqnPolicy(net, ObservationScaler.from_space(space))
    finally:
        algo.stop()
        if started:
            ray.shutdown()
    env = OpenFaaSAutoscalingEnv(**env_config)
    steps, t2 = 0, time.perf_counter()
    for ep in range(args.greedy_episodes):
        steps += run_episode(env, policy, seed=args.seed + ep).steps
    out["greedy_steps"] = steps
    out["greedy_steps_per_s"] = steps / (time.perf_counter() - t2)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.sample_steps < args.batch_size or args.train_steps < 1 or args.greedy_episodes < 1:
        print("error: need --sample-steps >= --batch-size, --train-steps >= 1 and "
              "--greedy-episodes >= 1", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    r = run(args)
    print(f"{'phase':<12} {'env steps':>10} {'steps/s':>10}")
    for name, key in (("sampled", "sampled"), ("trained", "trained"), ("greedy .pt", "greedy")):
        print(f"{name:<12} {r[key + '_steps']:>10.0f} {r[key + '_steps_per_s']:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
