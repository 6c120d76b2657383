"""The one rule for new output directories: ``<base>/<prefix>_<UTC YYYYmmdd_HHMMSS>[_N]/``.

Two runs started in the same second get ``_2``, ``_3``, ... suffixes; a base that cannot be
created or written (a file, no permission) is a :class:`~rl_autoscaling.common.errors.UserError`
naming the path, never a traceback.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .errors import UserError


def utc_timestamp(now: datetime | None = None) -> str:
    """``YYYYmmdd_HHMMSS`` in UTC."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%d_%H%M%S")


def new_run_dir(base: str | Path, prefix: str, timestamp: str | None = None) -> Path:
    """Create and return ``<base>/<prefix>_<timestamp>`` (with a ``_N`` suffix on a clash)."""
    first = Path(base) / f"{prefix}_{timestamp or utc_timestamp()}"
    path, n = first, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            if not Path(base).is_dir():
                raise UserError(f"output directory {base} is not a directory") from None
            n += 1
            path = first.with_name(f"{first.name}_{n}")
        except NotADirectoryError:
            raise UserError(f"output directory {base} is not a directory") from None
        except OSError as exc:
            raise UserError(f"cannot create {path}: {exc.strerror or exc}") from None


__all__ = ["new_run_dir", "utc_timestamp"]
