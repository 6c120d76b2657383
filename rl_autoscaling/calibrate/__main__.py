"""Twin calibration: ``python -m rl_autoscaling.calibrate {validate,fit} --recording R``.

``validate`` replays every agent of a recording (a ``compare_policies`` output; record one on
the live farm with ``compare_policies --backend live --record``) on the twin and prints and
writes the per-step mean absolute errors (``training.twin_validation``) with a plot of both
trajectories per agent. ``fit`` searches the twin's timing parameters that minimise that
score with Ray Tune (``service.twin_fit``), never leaving a closed-loop error (workers, worker
queue, QoS) more than
``--max-worse`` above its start, prints the before/after table per term and writes a partial
config YAML that ``--config`` loads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..common.errors import run_guarded
from ..common.modelio import atomic_write_json
from ..common.rundir import new_run_dir
from ..reporting.twin import plot_twin_validation
from ..training.agents import AgentOptions
from ..training.twin_validation import (
    Guard,
    closed_loop_agents,
    compare_reports,
    format_report,
    load_recording,
    twin_config,
    validate,
)

REPORT_FILE = "twin_validation.json"
PLOT_FILE = "twin_validation.png"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recording", required=True, metavar="FILE_OR_RUN_DIR",
                   help="aggregated_results.json, or the compare_<ts> directory holding it")
    p.add_argument("--config", default=None,
                   help="the twin's farm configuration: a YAML path or a packaged profile name "
                        "(default: the recording's own, else the packaged default)")
    p.add_argument("--episodes", type=int, default=None,
                   help="use the first N recorded episodes of each agent (default: all)")
    p.add_argument("--model", help="SARSA model (.pkl): replay agent SARSA closed loop")
    p.add_argument("--dqn-model", help="DQN model (.pt): replay agent DQN closed loop")
    p.add_argument("--keda-target", type=float, default=5.0,
                   help="KEDA queued tasks per worker, as recorded (default %(default)s)")
    p.add_argument("--keda-window", type=float, default=300.0,
                   help="KEDA scale-down window, seconds, as recorded (default %(default)s)")
    p.add_argument("--static-workers", type=int, default=None,
                   help="N of agent 'Static' (default: the recording's initial workers)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl_autoscaling.calibrate",
                                description="Validate the simulated twin against recorded "
                                            "episodes, or fit its timing parameters to them.")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="per-step errors of the twin against a recording")
    _common(v)
    v.add_argument("--output", default=None, metavar="REPORT.json",
                   help="report file (the plot goes beside it; default: "
                        f"runs/calibrate/validate_<ts>/{REPORT_FILE})")
    f = sub.add_parser("fit", help="fit the twin's timing parameters with Ray Tune")
    _common(f)
    f.add_argument("--output", required=True, metavar="FITTED.yml",
                   help="the fitted partial config YAML (load it with --config)")
    f.add_argument("--params", nargs="+", default=None, metavar="NAME",
                   help="parameters to fit (default: all): scale_up_latency "
                        "scale_down_removal_delay wait_time collector_wait_time "
                        "processing_delay step_overhead")
    f.add_argument("--budget", type=int, default=64,
                   help="Tune trials (num_samples; default %(default)s)")
    f.add_argument("--seed", type=int, default=0, help="the search's seed")
    f.add_argument("--max-concurrent", type=int, default=2,
                   help="trials at a time (default %(default)s)")
    f.add_argument("--num-cpus", type=int, default=None,
                   help="CPUs of the local Ray instance (default: Ray's choice)")
    f.add_argument("--max-worse", type=float, default=100 * Guard().max_worse, metavar="PERCENT",
                   help="no closed-loop error (workers, worker queue, QoS) of the fitted twin "
                        "may be more than this many percent above the start's "
                        "(default %(default)g)")
    f.add_argument("--max-worse-floor", type=float, default=0.0, metavar="UNITS",
                   help="or, when more, this many score units above it (1 worker, 5 tasks, "
                        "5 QoS points): small errors are mostly noise (default 0)")
    return p


def _setup(args: argparse.Namespace):
    recording = load_recording(args.recording)
    config = twin_config(recording, args.config)
    if args.episodes is not None and args.episodes < 1:
        raise ValueError("--episodes must be >= 1")
    opts = AgentOptions(model=args.model, dqn_model=args.dqn_model,
                        static_workers=args.static_workers, keda_target=args.keda_target,
                        keda_window=args.keda_window)
    st = recording.settings
    kw = recording.env_kwargs(config)
    print(f"recording {recording.path}: "
          + ", ".join(f"{n} ({len(r)} episodes)" for n, r in recording.agents.items())
          + f"; backend {st.get('backend', 'unknown')}"
          + (f", time_scale {st['time_scale']}" if "time_scale" in st else "")
          + f"; replayed with {kw['max_steps']} steps of {kw['step_duration']:g} s, "
            f"{kw['initial_workers']} initial workers"
          + ("" if st else " (no settings in the file: compare_policies' defaults)"))
    print(f"recorded actions: {recording.actions_read['reason']}")
    policies = closed_loop_agents(recording, config, opts, progress=print)
    open_only = [n for n in recording.agents if n not in policies]
    if open_only:
        print(f"open loop only (not an agent this package can play, or no model given): "
              f"{', '.join(open_only)}")
    return recording, config, policies


def run_validate(args: argparse.Namespace) -> int:
    recording, config, policies = _setup(args)
    result = validate(recording, config, policies, args.episodes)
    if args.output:
        report_path = Path(args.output)
        plot_path = report_path.with_suffix(".png")
    else:
        out = new_run_dir("runs/calibrate", "validate")
        report_path, plot_path = out / REPORT_FILE, out / PLOT_FILE
    report_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report_path, result.report)
    plot_twin_validation(result.recorded, result.closed_loop, result.open_loop, plot_path)
    print("\n".join(format_report(result.report)))
    print(f"report written to {report_path}, plot to {plot_path}")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from ..service.twin_fit import fit, write_fitted

    recording, config, policies = _setup(args)
    guard = Guard(args.max_worse / 100.0, args.max_worse_floor)
    result = fit(recording, config, policies, params=args.params, budget=args.budget,
                 episodes=args.episodes, seed=args.seed, max_concurrent=args.max_concurrent,
                 num_cpus=args.num_cpus, guard=guard)
    print(f"before (start config) -> after ({result.trials} trials); closed-loop limit: "
          f"{guard.describe()}:")
    print("\n".join(compare_reports(result.start_report, result.best_report, guard)))
    print(f"{result.rejected} of {result.trials} trials left a closed-loop error (workers, "
          f"worker queue, QoS) above its limit (not eligible)")
    for key, value in result.best.items():
        print(f"{key}: {result.start[key]:.4g} -> {value:.4g}")
    path = write_fitted(result, args.output, recording)
    print(f"score {result.start_score:.4f} -> {result.best_score:.4f}; fitted config written "
          f"to {path} (use it with --config {path})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run_validate(args) if args.command == "validate"
                       else run_fit(args))


if __name__ == "__main__":
    sys.exit(main())
