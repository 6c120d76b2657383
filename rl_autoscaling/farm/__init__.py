"""Farm backends behind one interface (``base.FarmBackend``): the simulated twin (default)
and the live farm."""

from __future__ import annotations

from typing import Any

from ..config import FarmConfig
from .base import Completions, FarmBackend, FarmSnapshot, ScaleResult

BACKENDS = ("simulated", "live")


def make_backend(name: str, config: FarmConfig, **options: Any) -> FarmBackend:
    """Build the backend called ``name`` for ``config``; ``options`` go to its constructor."""
    if name == "simulated":
        from .simulated import SimulatedFarm

        if options:
            raise ValueError(f"the simulated backend takes no options, got {sorted(options)}")
        return SimulatedFarm(config)
    if name == "live":
        try:
            from .live import LiveFarm
        except ImportError:
            raise ValueError("backend 'live' is not available in this build") from None
        return LiveFarm(config, **options)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Completions", "FarmBackend", "FarmSnapshot", "ScaleResult", "make_backend"]
