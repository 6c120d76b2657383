"""How a farm process lives and dies: heartbeat registry, parent watch, parent-death signal.

Every farm function (emitter, worker, collector), as a local process or inside an OpenFaaS
pod, runs inside :func:`registered`: a daemon thread keeps the heartbeat key
``FarmKeys.alive(role, name)`` alive (``HEARTBEAT_TTL`` real seconds, refreshed every
``HEARTBEAT_PERIOD``) and deletes it when the function stops. The live backend refuses to
start a farm while heartbeats of processes it did not start exist under its key prefix
(:func:`active_members`), since such processes would take its tasks.

Processes started by the local scaler must not outlive it (an orphaned worker keeps taking
tasks from whatever farm next uses its queues): they get ``FARM_PARENT_PID`` and, when it is
safe, ``FARM_PDEATHSIG=1`` in their environment.

* :func:`die_with_parent` asks Linux (``prctl(PR_SET_PDEATHSIG)``) to send SIGTERM when the
  parent dies. The kernel ties that signal to the parent *thread* that forked the process,
  so the scaler only asks for it when it spawns from the main thread.
* The heartbeat thread also polls ``os.getppid()`` and terminates the process when it no
  longer is ``FARM_PARENT_PID`` (reparented: the parent died), which covers every other case.

SIGTERM (from either path, or from the scaler's stop) is turned into ``SystemExit`` by
:func:`sigterm_exits` in ``_cli.function_main``, so the heartbeat key is deleted on the way
out. Programs driving a live farm use the same context manager so their ``finally`` blocks
close the farm.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from .protocol import ENV_PARENT_PID, ENV_PDEATHSIG, FarmKeys, FunctionContext, RedisLink, connect

#: real seconds a heartbeat key lives without a refresh
HEARTBEAT_TTL = 5.0
#: real seconds between refreshes (and between parent checks)
HEARTBEAT_PERIOD = 0.5
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
#: exit status after SIGTERM (128 + 15, as a shell reports it)
SIGTERM_EXIT = 143


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send ``sig`` to this process when its parent thread dies (Linux only).

    Returns False where ``prctl`` is unavailable; the parent watch of :class:`Heartbeat`
    still applies there.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parent_from_env() -> int | None:
    """The ``FARM_PARENT_PID`` this process must not outlive, if any."""
    raw = os.environ.get(ENV_PARENT_PID)
    return int(raw) if raw and raw.isdigit() else None


def orphaned(parent_pid: int | None) -> bool:
    """True when this process was meant to die with ``parent_pid`` and it is gone."""
    return parent_pid is not None and os.getppid() != parent_pid


def guard_parent() -> None:
    """At process start: arm the parent-death signal if asked, exit if already orphaned."""
    parent = parent_from_env()
    if parent is not None and os.environ.get(ENV_PDEATHSIG) == "1":
        die_with_parent(signal.SIGTERM)
    if orphaned(parent):  # the parent died before the signal was armed
        raise SystemExit(0)


class Heartbeat:
    """Keeps ``keys.alive(role, name)`` alive from a daemon thread; watches the parent.

    The value is ``"<pid>@<host>"``. Redis errors in the thread are ignored (the function's
    own loop reports an unreachable Redis); the key then simply expires.
    """

    def __init__(self, ctx: FunctionContext, role: str, parent_pid: int | None = None,
                 ttl: float = HEARTBEAT_TTL, period: float = HEARTBEAT_PERIOD) -> None:
        self.key = ctx.keys.alive(role, ctx.name)
        self.value = f"{os.getpid()}@{os.uname().nodename}"
        self.url, self.parent_pid = ctx.redis_url, parent_pid
        self.ttl_ms, self.period = int(ttl * 1000), float(period)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{role}", daemon=True)
        self._client = connect(self.url, timeout=max(0.5, period))

    def start(self) -> Heartbeat:
        self._beat()  # registered before the function announces itself
        self._thread.start()
        return self

    def _beat(self) -> None:
        try:
            self._client.set(self.key, self.value, px=self.ttl_ms)
        except Exception:  # noqa: BLE001 - see the class docstring
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if orphaned(self.parent_pid):
                # The main thread's SIGTERM handler unwinds the function (and stop()s us).
                os.kill(os.getpid(), signal.SIGTERM)
                return
            self._beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * self.period)
        try:
            self._client.delete(self.key)
        except Exception:  # noqa: BLE001 - the key expires by itself
            pass
        self._client.close()


@contextmanager
def registered(ctx: FunctionContext, role: str,
               parent_pid: int | None = None) -> Iterator[Heartbeat]:
    """Run the body with a heartbeat for (``role``, ``ctx.name``); removed on any exit."""
    beat = Heartbeat(ctx, role, parent_pid).start()
    try:
        yield beat
    finally:
        beat.stop()


def active_members(link: RedisLink, keys: FarmKeys) -> list[str]:
    """Heartbeat keys alive under ``keys.prefix``, as ``"role:name"`` (sorted)."""
    skip = len(keys.alive("", "")) - 1  # "<prefix>farm_alive:"
    found = link.call(lambda r: list(r.scan_iter(match=keys.alive_pattern, count=500)))
    return sorted((k.decode() if isinstance(k, bytes) else k)[skip:] for k in found)


@contextmanager
def sigterm_exits(code: int = SIGTERM_EXIT) -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(code)`` so ``finally`` blocks (a farm
    process's heartbeat removal; a driving program's ``env.close()`` / ``LiveFarm.close()``)
    run; the previous handler is restored afterwards.

    Later SIGTERMs are ignored while the first one unwinds, so the farm's stop is not cut
    short. Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(code)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["HEARTBEAT_PERIOD", "HEARTBEAT_TTL", "Heartbeat", "SIGTERM_EXIT", "active_members",
           "die_with_parent", "guard_parent", "orphaned", "parent_from_env", "registered",
           "sigterm_exits"]
