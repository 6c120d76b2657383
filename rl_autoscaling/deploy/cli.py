"""``python -m rl_autoscaling.serve``: run a trained autoscaler continuously.

    python -m rl_autoscaling.serve --model runs/sarsa_run_<ts>/models/sarsa_best.pkl \\
        --scaler kubernetes --metrics-port 9100
    python -m rl_autoscaling.serve --policy static16 --scaler local --time-scale 0.1 \\
        --summary summary.json

Startup checks everything before the farm is touched: the policy (``--model`` through the safe
loaders, or ``--policy`` by name), the metrics and gRPC ports, the Redis connection. Each
problem is one ``error: ...`` line on stderr and exit code 2, with nothing scaled.

Then, every ``--step-duration`` farm seconds, :class:`~.controller.Controller` observes, decides
and (unless ``--dry-run`` or ``--keda-grpc``) scales, writing one JSON line per decision on
stdout. SIGTERM or SIGINT finishes the current step, leaves the worker count as it is and exits
0 (``--summary`` written). With ``--scaler local`` the farm is local processes that play the
configured workload once (``--seed``, from ``--initial-workers``) and stop with the process.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from ..common.errors import UserError, run_guarded
from ..common.modelio import atomic_write_json
from ..common.settings import check_values
from ..config import load_config
from ..env import EnvSettings, OpenFaaSAutoscalingEnv
from ..farm.live import LiveFarm, add_live_arguments
from ..farm.workload import episode_workload
from ..training.agents import AgentOptions
from .controller import Controller, Guardrails, json_log
from .metrics import ControllerMetrics, MetricsServer
from .policy_source import ModelIdentity, ModelSource, baseline_policy

#: real seconds between Redis tries at startup and within a step
REDIS_TRIES, REDIS_BACKOFF = 3, 0.2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rl_autoscaling.serve",
        description="Run a trained autoscaler (or a baseline) continuously on a live farm.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="SARSA .pkl or DQN .pt model file; reloaded when the "
                                       "file is replaced (atomic rename)")
    which.add_argument("--policy", help="a baseline by name instead (static16, keda, "
                                        "kedacalibrated, ...: any compare_policies agent)")
    p.add_argument("--backend", default="live", choices=["live"],
                   help="the farm backend (serving runs on the live farm only)")
    add_live_arguments(p)
    p.set_defaults(scaler="kubernetes")
    p.add_argument("--config", help="farm config YAML (default: the packaged one)")
    p.add_argument("--step-duration", type=float, default=8.0,
                   help="farm seconds per decision (the step the policy was trained on)")
    p.add_argument("--observation-window", type=float, default=8.0,
                   help="seconds of collected tasks behind the time/QoS observations")
    p.add_argument("--action-deltas", type=int, nargs="+", default=[-1, 0, 1],
                   help="worker delta per action index (the policy's action set)")
    p.add_argument("--min-workers", type=int, default=1, help="never fewer workers")
    p.add_argument("--max-workers", type=int, default=32, help="never more workers")
    p.add_argument("--dry-run", action="store_true", help="decide and log, never scale")
    p.add_argument("--metrics-port", type=int,
                   help="serve Prometheus /metrics and /healthz on this port")
    p.add_argument("--metrics-host", default="0.0.0.0", help="address of the metrics server")
    p.add_argument("--keda-grpc", type=int, metavar="PORT",
                   help="KEDA external scaler mode: answer KEDA's gRPC calls on PORT with the "
                        "policy's desired worker count (target 1); KEDA scales, not us (the "
                        "workers are counted by their Redis heartbeats, except with --scaler "
                        "local)")
    p.add_argument("--summary", help="write a JSON summary here at exit")
    p.add_argument("--initial-workers", type=int, default=12,
                   help="--scaler local: workers the local farm starts with")
    p.add_argument("--seed", type=int, default=42, help="--scaler local: the workload's seed")
    p.add_argument("--slo", type=float, default=None,
                   help="final-QoS SLO of a calibrated baseline (default: the config's)")
    p.add_argument("--calibration-episodes", type=int, default=20,
                   help="twin episodes per candidate when calibrating a baseline")
    p.add_argument("--backoff-max", type=float, default=30.0,
                   help="longest wait (real s) between tries while the farm is unreachable")
    return p


def _twin_env_factory(args: argparse.Namespace, cfg):
    steps = math.ceil(episode_workload(cfg, 0).end_time / args.step_duration) + 2

    def make() -> OpenFaaSAutoscalingEnv:
        return OpenFaaSAutoscalingEnv(
            config=cfg, step_duration=args.step_duration, max_steps=steps,
            observation_window=args.observation_window, initial_workers=args.initial_workers,
            min_workers=args.min_workers, max_workers=args.max_workers,
            action_deltas=tuple(args.action_deltas))
    return make


def load_source(args: argparse.Namespace, cfg) -> ModelSource:
    """The served policy (UserError, one line, on any problem)."""
    size = len(args.action_deltas)
    if args.model:
        return ModelSource.from_file(args.model, size)
    from ..training.calibration import calibration_seeds

    slo = args.slo if args.slo is not None else float(cfg.reward.slo_cost.qos_target)
    opts = AgentOptions(action_deltas=tuple(args.action_deltas), min_workers=args.min_workers,
                        max_workers=args.max_workers, initial_workers=args.initial_workers,
                        step_duration=args.step_duration)
    policy = baseline_policy(args.policy, opts, _twin_env_factory(args, cfg), slo,
                             calibration_seeds(args.calibration_episodes))
    return ModelSource(policy, ModelIdentity(policy.name, "builtin", "", time.time()), None, size)


def open_farm(args: argparse.Namespace, cfg) -> LiveFarm:
    """The live farm: local processes started now, or a running cluster farm attached."""
    options: dict[str, Any] = {}
    scaler: Any = args.scaler
    if args.scaler == "local":
        options["scaler_options"] = {"tolerate_worker_loss": True}
    elif args.keda_grpc is not None:  # KEDA owns the replicas: count workers, never scale
        from .observer import HeartbeatObserver

        scaler = HeartbeatObserver()
    try:
        farm = LiveFarm(cfg, redis_url=args.redis_url, scaler=scaler,
                        time_scale=args.time_scale, key_prefix=args.key_prefix,
                        redis_tries=REDIS_TRIES, redis_backoff=REDIS_BACKOFF, **options)
    except UserError:
        raise
    except Exception as exc:  # e.g. no kubeconfig for --scaler kubernetes
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--scaler {args.scaler}: {detail}") from None
    try:
        farm.link.call(lambda r: r.ping())
        if args.scaler == "local":
            farm.reset(seed=args.seed, initial_workers=args.initial_workers, phase_order=None)
        else:
            farm.attach()
    except BaseException:
        farm.close()
        raise
    return farm


def serve(args: argparse.Namespace) -> int:
    if args.time_scale <= 0:
        raise UserError(f"--time-scale must be > 0, got {args.time_scale}")
    # the bounds' one owner: EnvSettings
    check_values(EnvSettings, step_duration=args.step_duration,
                 observation_window=args.observation_window)
    guard = Guardrails(args.min_workers, args.max_workers, tuple(args.action_deltas))
    if args.summary:
        _check_writable(Path(args.summary))
    cfg = load_config(args.config)
    source = load_source(args, cfg)
    metrics = ControllerMetrics()
    servers: list[Any] = []
    changed = threading.Event()
    farm = env = None
    try:
        if args.metrics_port is not None:
            stale = 3 * args.step_duration * args.time_scale + 30.0
            servers.append(MetricsServer(metrics, args.metrics_port, args.metrics_host, stale))
        controller_ref: list[Controller] = []
        if args.keda_grpc is not None:
            from .keda import ExternalScalerService, KedaServer

            def state():
                c = controller_ref[0]
                with c.lock:
                    return c.keda_state

            servers.append(KedaServer(ExternalScalerService(state, changed), args.keda_grpc))
        farm = open_farm(args, cfg)
        farm.expected_tasks = 2**62  # the farm's workload never "ends" for the controller
        env = OpenFaaSAutoscalingEnv(
            backend=farm, config=cfg, step_duration=args.step_duration,
            observation_window=args.observation_window, max_steps=2**62, min_workers=0,
            max_workers=10**6, initial_workers=0, action_deltas=tuple(args.action_deltas))
        controller = Controller(env, source, guard, metrics, dry_run=args.dry_run,
                                keda=args.keda_grpc is not None,
                                count_from_start=args.scaler == "local",
                                backoff_max=args.backoff_max, on_decision=changed.set)
        controller_ref.append(controller)
        for server in servers:
            server.start()
        stop = threading.Event()
        with _stop_on_signals(stop):
            summary = controller.run(stop)
        workers = int(farm.scaler.observed_workers()) if args.scaler == "local" else None
        json_log("stop", workers_left=workers if workers is not None else "unchanged",
                 **summary)
        if args.summary:
            atomic_write_json(Path(args.summary), summary)
        return 0
    finally:
        for server in servers:
            server.close()
        if env is not None:
            env.close()
        elif farm is not None:
            farm.close()


def _check_writable(path: Path) -> None:
    """Fail now, not at exit, if the summary cannot be written."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if path.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"--summary {path}: cannot write there")


class _stop_on_signals:  # noqa: N801 - a context manager used like a function
    """SIGTERM and SIGINT set ``stop`` (the loop finishes its step); handlers restored after."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def __enter__(self):
        def handler(signum, frame) -> None:
            self.stop.set()

        self.previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self.previous.items():
            signal.signal(s, old)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: serve(args))


__all__ = ["build_parser", "main", "serve"]
