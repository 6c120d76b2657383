"""Process and port helpers for tests that start their own Ray heads / clusters."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free right now (held open together, then released)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def pids_using(temp_dir: str) -> list[int]:
    """Processes whose command line mentions ``temp_dir`` (a test head's raylet, GCS, workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmdline:
            pids.append(int(entry.name))
    return pids


def kill_pids_using(temp_dir: str, timeout: float = 30.0) -> None:
    """SIGKILL every process whose command line names ``temp_dir`` until none is left."""
    deadline = time.time() + timeout
    while (left := pids_using(temp_dir)) and time.time() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


def stop_ray_head(proc: subprocess.Popen, temp_dir: str) -> None:
    """Stop one test head only: SIGTERM its ``ray start --block`` (which shuts its processes
    down; signalling the whole group at once makes that shutdown hang for a minute), then
    kill its process group and any process still naming its temp dir, and remove the dir."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=30)
    kill_pids_using(temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)
