"""The trainers' terminal: log lines on stdout, one live progress line on stderr.

``logs/training.log`` gets every line, one per episode included; the console gets the run's
milestones (run directory, checkpoints, evaluations, the end) and, instead of the episode
lines, a summary every tenth of the run plus a live progress line (episodes, episodes/s,
ETA, the latest evaluation). On a terminal the live line is redrawn in place (carriage
return) and cleared before any other console line; elsewhere (a pipe, a file, CI) it is a
plain line at most every :attr:`LiveLine.interval` seconds.

Records are routed by a ``logging`` ``extra``: :data:`FILE_ONLY` (the episode lines) and
:data:`CONSOLE_ONLY` (the summaries, which the log's episode lines already hold).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any, Mapping, Sequence, TextIO

FILE_ONLY = {"file_only": True}
CONSOLE_ONLY = {"console_only": True}
#: Console summaries per run (one every ``ceil(episodes / SUMMARIES)`` episodes, and the last).
SUMMARIES = 10


def not_console_only(record: logging.LogRecord) -> bool:
    """File-handler filter: drop the console's summaries."""
    return not getattr(record, "console_only", False)


class LiveLine:
    """One status line on ``stream``: redrawn in place on a terminal (at most every
    ``redraw`` seconds), else written as a plain line at most every ``interval`` seconds."""

    interval = 5.0
    redraw = 0.1

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.text = ""
        self._shown = False
        self._written: float | None = None  # when last written (None: not yet updated)

    def update(self, text: str) -> None:
        self.text = text
        now = time.perf_counter()
        if self._written is None and not self.tty:
            self._written = now  # the first plain line one interval after the first update
        elif self.tty:
            if not self._shown or now - (self._written or 0.0) >= self.redraw:
                self.show()
        elif now - self._written >= self.interval:
            self._write(text + "\n")

    def show(self) -> None:
        """(Re)draw the line on a terminal."""
        if self.tty and self.text:
            self._write("\r\x1b[K" + self.text)
            self._shown = True

    def hide(self) -> None:
        """Clear the line on a terminal (before another line is written there)."""
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = False

    def finish(self) -> None:
        """Clear the line for good."""
        self.hide()
        self.text = ""

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: lose the status only
            self.tty = False
        self._written = time.perf_counter()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ConsoleHandler(logging.StreamHandler):
    """The console's log handler: skips :data:`FILE_ONLY` records and keeps the live line
    below the log lines (cleared before each, redrawn after)."""

    def __init__(self, stream: TextIO | None = None, live: LiveLine | None = None) -> None:
        super().__init__(stream or sys.stdout)
        self.live = live or LiveLine()
        self.addFilter(lambda record: not getattr(record, "file_only", False))

    def emit(self, record: logging.LogRecord) -> None:
        self.live.hide()
        super().emit(record)
        self.live.show()

    def close(self) -> None:
        self.live.finish()
        super().close()


def console_of(logger: logging.Logger) -> ConsoleHandler | None:
    return next((h for h in logger.handlers if isinstance(h, ConsoleHandler)), None)


class ConsoleProgress:
    """Feeds the console of ``logger`` (if it has one) episode by episode: the live line
    and a summary of the episodes since the last one every ``ceil(total / SUMMARIES)``."""

    def __init__(self, logger: logging.Logger, total: int) -> None:
        self.logger, self.total = logger, total
        self.console = console_of(logger)
        self.every = max(1, math.ceil(total / SUMMARIES))
        self.window: list[Mapping[str, Any]] = []

    def episode(self, record: Mapping[str, Any], status: str,
                checkpoints: Sequence[Mapping[str, Any]] = ()) -> None:
        """After episode ``record["episode"]``; ``status``: progress, rate, ETA;
        ``checkpoints``: the evaluation records so far (the last one is shown)."""
        if self.console is None:
            return
        ep = int(record["episode"])
        self.window.append(record)
        latest = f" | {evaluation_status(checkpoints[-1])}" if checkpoints else ""
        if ep % self.every == 0 or ep == self.total:
            self.logger.info("%s | %s%s", summary_line(self.window, self.total), status,
                             latest, extra=CONSOLE_ONLY)
            self.window = []
        self.console.live.update(f"Episode {ep}/{self.total} {status}{latest}")

    def finish(self) -> None:
        if self.console is not None:
            self.console.live.finish()


def summary_line(records: Sequence[Mapping[str, Any]], total: int) -> str:
    """``Episodes a-b/T: mean final_qos=... mean_workers=... total_reward=...`` over
    ``records`` (the means of the fields they have)."""
    first, last = int(records[0]["episode"]), int(records[-1]["episode"])
    span = f"{first}-{last}" if last > first else f"{last}"
    parts = [f"{key}={_mean(records, key):.{digits}f}"
             for key, digits in (("final_qos", 4), ("mean_workers", 2), ("total_reward", 2))
             if any(r.get(key) is not None for r in records)]
    epsilon = records[-1].get("epsilon")
    if epsilon is not None:
        parts.append(f"epsilon={float(epsilon):.4f}")
    return f"Episodes {span}/{total}: mean " + " ".join(parts)


def evaluation_status(record: Mapping[str, Any]) -> str:
    """The latest checkpoint evaluation in a few words."""
    return (f"eval @{record.get('episode')}: final_qos "
            f"{float(record.get('mean_final_qos', math.nan)):.4f} workers "
            f"{float(record.get('mean_mean_workers', math.nan)):.2f}")


def _mean(records: Sequence[Mapping[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in records if r.get(key) is not None]
    return sum(values) / len(values) if values else math.nan
