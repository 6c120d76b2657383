"""Submit a training experiment to a Ray cluster as a Ray job (Ray's Jobs SDK).

    python -m rl_autoscaling.submit --address http://HEAD:8265 --algo dqn [tune args ...]

Everything after the known flags goes to ``python -m rl_autoscaling.tune`` on the cluster, which
runs with ``--address auto`` (the cluster the job runs on). By default the package source is
shipped as the job's ``working_dir``; with ``--no-upload`` the cluster's image must already
have the package installed (the KubeRay image in cluster/Dockerfile does). The command streams
the job's logs and exits 0 when the job SUCCEEDED, 1 otherwise; ``--no-wait`` prints the job
id and returns at once.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from ..common.errors import run_guarded

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding rl_autoscaling/
UPLOAD_EXCLUDES = [".git", ".venv", "runs", "**/__pycache__", "*.egg-info", ".pytest_cache"]


def build_entrypoint(algo: str, tune_args: Sequence[str]) -> str:
    args = ["python", "-m", "rl_autoscaling.tune", "--algo", algo, "--address", "auto",
            *tune_args]
    return " ".join(shlex.quote(a) for a in args)


def build_runtime_env(upload: bool, working_dir: Path) -> dict:
    env: dict = {"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}}
    if upload:
        env["working_dir"] = str(working_dir)
        env["excludes"] = UPLOAD_EXCLUDES
    return env


async def _stream_logs(client, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        print(lines, end="", flush=True)


def wait_for(client, job_id: str, follow: bool, poll: float = 1.0):
    """Stream logs (or poll) until the job reaches a terminal state; return the status."""
    from ray.job_submission import JobStatus

    if follow:
        try:
            asyncio.run(_stream_logs(client, job_id))
        except Exception as exc:  # the log stream can drop; the status poll below decides
            print(f"(log stream ended: {exc})", file=sys.stderr)
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    while (status := client.get_job_status(job_id)) not in terminal:
        time.sleep(poll)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rl_autoscaling.submit", description=__doc__.split("\n\n")[0],
        epilog="Unknown arguments are passed to rl_autoscaling.tune (e.g. --smoke, --set k=v).")
    parser.add_argument("--address", required=True,
                        help="Ray dashboard / Jobs API address, e.g. http://127.0.0.1:8265")
    parser.add_argument("--algo", required=True, choices=("sarsa", "dqn"), help="algorithm")
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return")
    parser.add_argument("--no-upload", action="store_true",
                        help="do not ship the source; the cluster image has the package")
    parser.add_argument("--working-dir", type=Path, default=PACKAGE_ROOT,
                        help="source tree to ship as the job's working_dir (default: this one)")
    parser.add_argument("--job-id", default=None, help="submission id (default: generated)")
    args, tune_args = parser.parse_known_args(argv)
    # SIGTERM/SIGHUP while following the job: like Ctrl+C (the job keeps running)
    return run_guarded(lambda: _submit(args, tune_args))


def _submit(args: argparse.Namespace, tune_args: list[str]) -> int:
    from ray.job_submission import JobStatus, JobSubmissionClient

    from .ray_auth import RayAuthError, dashboard_headers

    try:
        headers = dashboard_headers(args.address)  # the token, if the dashboard wants one
    except RayAuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        client = JobSubmissionClient(args.address, headers=headers)
    except Exception as exc:
        print(f"error: cannot reach the Ray Jobs API at {args.address}: {exc}", file=sys.stderr)
        return 2
    if not args.no_upload and not (args.working_dir / "rl_autoscaling").is_dir():
        print(f"error: --working-dir {args.working_dir} holds no rl_autoscaling package",
              file=sys.stderr)
        return 2
    job_id = client.submit_job(
        entrypoint=build_entrypoint(args.algo, tune_args),
        runtime_env=build_runtime_env(not args.no_upload, args.working_dir),
        submission_id=args.job_id,
        metadata={"app": "rl_autoscaling", "algo": args.algo},
    )
    print(f"submitted job {job_id}", flush=True)
    if args.no_wait:
        return 0
    try:
        status = wait_for(client, job_id, follow=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted: job {job_id} keeps running; stop it with "
              f"`ray job stop --address {args.address} {job_id}`", file=sys.stderr)
        return 130
    print(f"job {job_id}: {status.value}")
    return 0 if status == JobStatus.SUCCEEDED else 1
