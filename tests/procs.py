"""Process and port helpers for tests that start their own Ray heads / clusters."""

from __future__ import annotations

import os
import socket
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
