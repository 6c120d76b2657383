"""User errors and the one wrapper that turns them into a one-line message and an exit code.

Every CLI runs its work through :func:`run_guarded`: a :class:`UserError` (or a ``ValueError``
/ ``FileNotFoundError`` raised on bad input) becomes ``error: <first line>`` on stderr and
exit code :data:`EXIT_USAGE`, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

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


def run_guarded(fn: Callable[[], int | None]) -> int:
    """Run ``fn``; user errors become ``error: ...`` on stderr and exit code 2."""
    try:
        return int(fn() or 0)
    except (UserError, ValueError, FileNotFoundError) as exc:
        return fail(error_message(exc))


__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "UserError", "error_message", "fail",
           "run_guarded"]
