"""Submit a training experiment to a Ray cluster as a Ray job (Ray's Jobs SDK).

    python -m rl_autoscaling.submit --address http://HEAD:8265 --algo dqn [--fetch DIR] [tune args ...]

Everything after the known flags goes to ``python -m rl_autoscaling.tune`` on the cluster, which
runs with ``--address auto`` (the cluster the job runs on). By default the package is shipped
with the job: a source checkout as the job's ``working_dir``, an installed package (a wheel)
as a ``py_modules`` entry; with ``--no-upload`` the cluster's image must already have the
package installed (the KubeRay image in cluster/Dockerfile does).

Results never land in the job's working_dir (a cache the head may delete): Tune's storage path
is an absolute path on the head, by default ``$RL_AUTOSCALING_STORAGE`` (the KubeRay
RayCluster sets it to its shared volume, ``/data/tune``) or else
``~/ray_results/rl_autoscaling`` of the head's user, and every trial is exported into the
seed's run layout under ``<storage-path>/runs/``. ``--fetch DIR`` copies those exported runs
to ``DIR`` on this machine when the job succeeded and the storage path is reachable from here
(a local head, a shared mount); otherwise it says where they are and how to copy them.

The command streams the job's logs and exits 0 when the job SUCCEEDED (and, with ``--fetch``,
its runs were fetched), 1 otherwise; ``--no-wait`` prints the job id and returns at once.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shlex
import shutil
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Sequence

from ..common.errors import run_guarded

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the rl_autoscaling package directory
PACKAGE_ROOT = PACKAGE_DIR.parent  # the directory holding rl_autoscaling/
UPLOAD_EXCLUDES = [".git", ".venv", "runs", "**/__pycache__", "*.egg-info", ".pytest_cache",
                   "build", "dist"]
#: The environment variable a cluster sets to its persistent storage path (KubeRay: /data/tune).
STORAGE_ENV = "RL_AUTOSCALING_STORAGE"
#: The head-side default when the cluster sets no STORAGE_ENV (expanded by the job's shell).
DEFAULT_STORAGE = "$HOME/ray_results/rl_autoscaling"
STORAGE_LINE = "rl_autoscaling storage path: "
#: The tune CLI's line per exported trial (service/tune.py): "exported <trial> -> <run dir>".
EXPORTED = re.compile(r"^exported (?P<trial>/.+) -> (?P<run>/.+)$", re.MULTILINE)
SOURCE_MARKER = ("logs", "tune_trial.txt")  # export.py: the trial a run directory came from


def is_uri(path: str) -> bool:
    return "://" in path


def is_source_checkout(root: Path) -> bool:
    """``root`` holds the package's source tree (not an installation's site-packages)."""
    return (root / "pyproject.toml").is_file() and (root / "rl_autoscaling").is_dir()


def build_entrypoint(algo: str, tune_args: Sequence[str], storage_path: str | None = None,
                     output: str | None = None) -> str:
    """The job's shell command. Without ``storage_path`` the head picks it
    (``$RL_AUTOSCALING_STORAGE``, else ``~/ray_results/rl_autoscaling``) and the command
    echoes it first; the exported runs go to ``output`` or ``<storage>/runs``."""
    args = ["python", "-m", "rl_autoscaling.tune", "--algo", algo, "--address", "auto"]
    quoted = " ".join(shlex.quote(a) for a in args)
    if storage_path is None:
        storage = f'"${{{STORAGE_ENV}:-{DEFAULT_STORAGE}}}"'
        prefix = f'S={storage}; echo "{STORAGE_LINE}$S"; exec '
        paths = '--storage-path "$S" --output ' + (shlex.quote(output) if output else '"$S/runs"')
    else:
        prefix = ""
        runs = output or str(PurePosixPath(storage_path) / "runs")
        paths = f"--storage-path {shlex.quote(storage_path)} --output {shlex.quote(runs)}"
    rest = " ".join(shlex.quote(a) for a in tune_args)
    return f"{prefix}{quoted} {paths}" + (f" {rest}" if rest else "")


def build_runtime_env(upload: bool, working_dir: Path | None = None) -> dict:
    """Ray's runtime_env: a source tree as ``working_dir``; without one (an installed
    package) the package directory itself as a ``py_modules`` entry."""
    env: dict = {"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}}
    if upload:
        if working_dir is not None:
            env["working_dir"] = str(working_dir)
        else:
            env["py_modules"] = [str(PACKAGE_DIR)]
        env["excludes"] = UPLOAD_EXCLUDES
    return env


def exported_runs(logs: str) -> dict[str, str]:
    """{run directory: trial directory} of the tune CLI's ``exported`` lines in job logs."""
    return {m["run"]: m["trial"] for m in EXPORTED.finditer(logs)}


def fetch_runs(runs: dict[str, str], dest: Path) -> list[Path]:
    """Copy each exported run directory into ``dest``; raises FileNotFoundError naming the
    first one that is not reachable from this machine (or is not the run of that trial)."""
    fetched = []
    for run, trial in runs.items():
        src = Path(run)
        marker = src.joinpath(*SOURCE_MARKER)
        if not marker.is_file() or marker.read_text().strip() != trial:
            raise FileNotFoundError(run)
        target = dest / src.name
        shutil.copytree(src, target, dirs_exist_ok=True)
        fetched.append(target)
    return fetched


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
    parser.add_argument("--storage-path", default=None,
                        help=f"Tune storage path on the head: absolute, or a URI (default: "
                             f"${STORAGE_ENV} on the head, else ~/ray_results/rl_autoscaling)")
    parser.add_argument("--output", default=None,
                        help="absolute path on the head for the exported runs "
                             "(default: <storage-path>/runs)")
    parser.add_argument("--fetch", type=Path, default=None, metavar="DIR",
                        help="after a successful job, copy the exported runs to DIR (needs the "
                             "storage path reachable from this machine)")
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return")
    parser.add_argument("--no-upload", action="store_true",
                        help="do not ship the package; the cluster image has it installed")
    parser.add_argument("--working-dir", type=Path, default=None,
                        help="source tree to ship as the job's working_dir (default: this "
                             "checkout; an installed package is shipped as py_modules)")
    parser.add_argument("--job-id", default=None, help="submission id (default: generated)")
    args, tune_args = parser.parse_known_args(argv)
    # SIGTERM/SIGHUP while following the job: like Ctrl+C (the job keeps running)
    return run_guarded(lambda: _submit(args, tune_args))


def _check_paths(args: argparse.Namespace) -> str | None:
    """The first problem with the path options, or None."""
    if args.storage_path is not None and not (is_uri(args.storage_path)
                                              or PurePosixPath(args.storage_path).is_absolute()):
        return (f"--storage-path {args.storage_path} must be absolute (a path on the head) or a "
                f"URI: a relative path lands in the job's cached working_dir")
    if args.output is not None and not PurePosixPath(args.output).is_absolute():
        return f"--output {args.output} must be an absolute path on the head"
    if args.storage_path and is_uri(args.storage_path) and args.output is None:
        return "with a URI --storage-path, give --output (an absolute path on the head)"
    if args.fetch is not None and args.no_wait:
        return "--fetch needs the job to finish: drop --no-wait"
    return None


def _submit(args: argparse.Namespace, tune_args: list[str]) -> int:
    from ray.job_submission import JobStatus, JobSubmissionClient

    from .ray_auth import RayAuthError, dashboard_headers

    if (problem := _check_paths(args)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    working_dir = args.working_dir
    if working_dir is None and is_source_checkout(PACKAGE_ROOT):
        working_dir = PACKAGE_ROOT
    if not args.no_upload and working_dir is not None \
            and not (working_dir / "rl_autoscaling").is_dir():
        print(f"error: --working-dir {working_dir} holds no rl_autoscaling package",
              file=sys.stderr)
        return 2
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
    job_id = client.submit_job(
        entrypoint=build_entrypoint(args.algo, tune_args, args.storage_path, args.output),
        runtime_env=build_runtime_env(not args.no_upload, working_dir),
        submission_id=args.job_id,
        metadata={"app": "rl_autoscaling", "algo": args.algo},
    )
    print(f"submitted job {job_id}", flush=True)
    where = args.storage_path or f"${STORAGE_ENV} (else ~/ray_results/rl_autoscaling)"
    print(f"results on the head: Tune experiments in {where}, exported runs in "
          f"{args.output or '<storage path>/runs'}", flush=True)
    if args.no_wait:
        return 0
    try:
        status = wait_for(client, job_id, follow=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted: job {job_id} keeps running; stop it with "
              f"`ray job stop --address {args.address} {job_id}`", file=sys.stderr)
        return 130
    print(f"job {job_id}: {status.value}")
    if status != JobStatus.SUCCEEDED:
        return 1
    runs = exported_runs(client.get_job_logs(job_id))
    for run in runs:
        print(f"exported run on the head: {run}")
    if args.fetch is None:
        return 0
    return _fetch(runs, args.fetch)


def _fetch(runs: dict[str, str], dest: Path) -> int:
    if not runs:
        print("error: the job's logs name no exported run to fetch", file=sys.stderr)
        return 1
    try:
        for target in fetch_runs(runs, dest):
            print(f"fetched {target}")
    except FileNotFoundError as exc:
        print(f"error: {exc.args[0]} is on the cluster, not reachable from this machine; copy "
              f"it from the head (e.g. `kubectl cp <namespace>/<head-pod>:{exc.args[0]} "
              f"{dest / Path(exc.args[0]).name}`)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot fetch into {dest}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
