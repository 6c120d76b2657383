"""``python -m rl_autoscaling.bench dqn``: RLlib DQN throughput on the simulated twin.

For each scale-out layout (``--runners`` remote env runners x ``--envs`` vector envs per
runner) it prints, never asserts:

- sampled: env steps/s while RLlib only collects (before ``--warmup-steps``);
- trained: env steps/s in the training regime (``updates_per_step`` updates of ``batch_size``
  per env step, docs/algorithms.md#dqn);
- updates/step: gradient updates per sampled env step measured in the trained phase (the
  replay ratio divided by the batch size: the same for every layout);

and once, greedy .pt: env steps/s of plain-PyTorch greedy roll-outs of the exported network.

The env is the CLIs' (30 steps of 8 s, 8 s window, 12 initial workers); network, batch size
and ``rollout_fragment_length`` are the ``DqnHyperparams`` defaults unless given.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Sequence

from ..env import EnvSettings

#: The recipe's env on the default workload (30 steps of 8 s, 8 s window, 12 workers).
ENV_CONFIG = {k: v for k, v in EnvSettings().env_config().items()
              if k in ("max_steps", "step_duration", "observation_window", "initial_workers")}


def build_parser() -> argparse.ArgumentParser:
    from ..algorithms.dqn.config import DqnHyperparams

    p = argparse.ArgumentParser(prog="python -m rl_autoscaling.bench dqn",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--sample-steps", type=int, default=240,
                   help="env steps sampled without learning (also the warm-up)")
    p.add_argument("--train-steps", type=int, default=1200,
                   help="env steps sampled in the training regime")
    p.add_argument("--greedy-episodes", type=int, default=20,
                   help="episodes of plain-torch greedy inference")
    p.add_argument("--runners", type=int, nargs="+", default=[0, 1, 2],
                   help="remote env runner counts to measure (default 0 1 2)")
    p.add_argument("--envs", type=int, nargs="+", default=[1, 4],
                   help="vector envs per env runner to measure (default 1 4)")
    p.add_argument("--rollout-fragment-length", type=int,
                   default=DqnHyperparams.rollout_fragment_length,
                   help="env steps per env copy per training step (default %(default)s)")
    p.add_argument("--updates-per-step", type=float, default=DqnHyperparams.updates_per_step,
                   help="gradient updates per env step (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="transitions per update")
    p.add_argument("--hidden-layers", type=int, nargs="+", default=[128, 64],
                   help="MLP hidden layer sizes")
    p.add_argument("--seed", type=int, default=0, help="RLlib and workload seed")
    return p


def measure(args: argparse.Namespace, runners: int, envs: int) -> dict[str, float]:
    """Sampled / trained env steps/s and updates per env step of one layout."""
    from ..algorithms.dqn.config import DqnHyperparams, dqn_config

    hp = DqnHyperparams(batch_size=args.batch_size, warmup_steps=args.sample_steps,
                        hidden_layers=tuple(args.hidden_layers), num_env_runners=runners,
                        num_envs_per_env_runner=envs,
                        rollout_fragment_length=args.rollout_fragment_length,
                        updates_per_step=args.updates_per_step)
    algo = dqn_config(hp, {**ENV_CONFIG, "task_seed": args.seed}, seed=args.seed).build_algo()
    learner = algo.learner_group._learner
    try:
        def sampled() -> int:
            r = algo.train()
            return int(r["env_runners"]["num_env_steps_sampled_lifetime"])

        t0, n = time.perf_counter(), 0
        while n < args.sample_steps:
            n = sampled()
        out = {"sampled_steps": n, "sampled_steps_per_s": n / (time.perf_counter() - t0)}
        t1, n1, u1 = time.perf_counter(), n, learner.num_gradient_updates
        while n < n1 + args.train_steps:
            n = sampled()
        # updates made on steps sampled in this phase (the first call also learns on the
        # warm-up's last training step when it crossed the threshold mid-way)
        out["trained_steps"] = n - n1
        out["trained_steps_per_s"] = (n - n1) / (time.perf_counter() - t1)
        out["updates_per_step"] = (learner.num_gradient_updates - u1) / (n - n1)
        out["algo"] = algo
    except BaseException:
        algo.stop()
        raise
    return out


def greedy(args: argparse.Namespace, algo) -> dict[str, float]:
    from ..algorithms.dqn.config import DqnHyperparams
    from ..algorithms.dqn.model import ObservationScaler, build_q_network, derived_inputs_of
    from ..algorithms.dqn.policy import DqnPolicy
    from ..algorithms.dqn.weights import learner_module, q_network_state_dict
    from ..common.rollout import run_episode
    from ..env import OpenFaaSAutoscalingEnv

    env = OpenFaaSAutoscalingEnv(**ENV_CONFIG)
    scaler = ObservationScaler.from_space(env.observation_space,
                                          derived_inputs_of(DqnHyperparams().to_dict()))
    net = build_q_network(scaler.size, tuple(args.hidden_layers), 3)
    net.load_state_dict(q_network_state_dict(learner_module(algo)))
    policy = DqnPolicy(net, scaler)
    steps, t = 0, time.perf_counter()
    for ep in range(args.greedy_episodes):
        steps += run_episode(env, policy, seed=args.seed + ep).steps
    return {"greedy_steps": steps, "greedy_steps_per_s": steps / (time.perf_counter() - t)}


def run(args: argparse.Namespace) -> list[dict[str, float]]:
    import ray

    from ..algorithms.dqn.training_env import register_dqn_env

    started = False
    if not ray.is_initialized():  # ports Ray picks itself (never 6379)
        ray.init(num_cpus=max(2, max(args.runners)), include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
        started = True
    register_dqn_env()
    rows = []
    try:
        for runners in args.runners:
            for envs in args.envs:
                r = measure(args, runners, envs)
                algo = r.pop("algo")
                try:
                    if not rows:
                        r.update(greedy(args, algo))
                finally:
                    algo.stop()
                rows.append({"runners": runners, "envs": envs, **r})
                print_row(rows[-1], header=len(rows) == 1)
    finally:
        if started:
            ray.shutdown()
    return rows


def print_row(r: dict[str, float], header: bool) -> None:
    if header:
        print(f"{'runners':>7} {'envs':>4} {'sampled/s':>10} {'trained/s':>10} "
              f"{'updates/step':>12}", flush=True)
    print(f"{r['runners']:>7} {r['envs']:>4} {r['sampled_steps_per_s']:>10.1f} "
          f"{r['trained_steps_per_s']:>10.1f} {r['updates_per_step']:>12.3f}", flush=True)
    if "greedy_steps_per_s" in r:
        print(f"(greedy .pt: {r['greedy_steps_per_s']:.1f} env steps/s)", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.sample_steps < args.batch_size or args.train_steps < 1
            or args.greedy_episodes < 1 or min(args.runners) < 0 or min(args.envs) < 1):
        print("error: need --sample-steps >= --batch-size, --train-steps >= 1, "
              "--greedy-episodes >= 1, --runners >= 0 and --envs >= 1", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    print(f"replay ratio: {args.updates_per_step:g} update(s) of {args.batch_size} per env step; "
          f"rollout_fragment_length {args.rollout_fragment_length}", flush=True)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
