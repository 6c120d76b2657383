"""User errors and the one wrapper that turns them into a one-line message and an exit code.

Every CLI runs its work through :func:`run_guarded`: a :class:`UserError` (or a ``ValueError``
/ ``FileNotFoundError`` raised on bad input) becomes ``error: <first line>`` on stderr and
exit code :data:`EXIT_USAGE`, never a traceback.

Inside :func:`run_guarded` (and any :func:`signals_interrupt` block) SIGTERM and SIGHUP behave
like Ctrl+C: they raise ``KeyboardInterrupt`` in the main thread, so a trainer saves its
interrupt model, a live farm is stopped by the ``finally`` blocks, and the program exits with
:data:`EXIT_INTERRUPTED` (docs/artefacts.md).
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error the user can fix (bad flag, file, config, service): printed as one line."""


def error_message(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name if empty)."""
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        text = f"file not found: {exc.filename}"
    else:
        text = str(exc)
    if isinstance(exc, KeyError) and text.startswith("'"):
        text = text.strip("'")
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def fail(message: str) -> int:
    """Print ``error: message`` on stderr; return :data:`EXIT_USAGE`."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


#: signals that stop a CLI the way Ctrl+C does
INTERRUPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                          if hasattr(signal, name))


@contextmanager
def signals_interrupt(signals: tuple[int, ...] = INTERRUPT_SIGNALS) -> Iterator[None]:
    """Within the block, ``signals`` (default SIGTERM, SIGHUP) raise ``KeyboardInterrupt`` in
    the main thread, exactly like Ctrl+C; the previous handlers are restored afterwards.

    After the first one, further ``signals`` are ignored while the program unwinds (saving the
    interrupt model, stopping the farm), so the clean-up is not cut short; Ctrl+C still works.
    When a library has its own Ctrl+C handler installed (Ray Tune's graceful stop), the signal
    is handed to it instead. Outside the main thread (where Python cannot install handlers)
    it does nothing. Nesting is harmless: re-enter the block after a library replaced the
    handlers (``ray.init`` installs its own SIGTERM handler).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint) and on_sigint is not signal.default_int_handler:
            on_sigint(signal.SIGINT, frame)  # e.g. Ray Tune's graceful stop
            return
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_guarded(fn: Callable[[], int | None], interrupted: str = "interrupted") -> int:
    """Run ``fn`` with :func:`signals_interrupt`; user errors become ``error: ...`` on stderr
    and exit code 2; an interrupt (Ctrl+C, SIGTERM, SIGHUP) that ``fn`` did not handle prints
    ``interrupted`` and returns :data:`EXIT_INTERRUPTED`."""
    try:
        with signals_interrupt():
            return int(fn() or 0)
    except (UserError, ValueError, FileNotFoundError) as exc:
        return fail(error_message(exc))
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED


__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "INTERRUPT_SIGNALS", "UserError", "error_message",
           "fail", "run_guarded", "signals_interrupt"]
