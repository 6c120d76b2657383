"""A scaler that only observes: for KEDA mode, where KEDA and the HPA own the replica count.

The worker count is the number of live worker heartbeats under the farm's key prefix
(``functions.lifecycle``: every worker, local or in a pod, keeps one), so no Kubernetes or
OpenFaaS API is needed; scaling requests are refused.
"""

from __future__ import annotations

from ..farm.functions.lifecycle import active_members
from ..farm.functions.protocol import LiveFarmError
from ..farm.scalers import Scaler


class HeartbeatObserver(Scaler):
    """Observed workers = live ``farm_alive:worker:*`` heartbeats; never scales."""

    name = "observe"

    def start_farm(self, initial_workers: int, seed: int | None = None) -> None:
        raise LiveFarmError("the observing scaler cannot start a farm")

    def stop_farm(self) -> None:
        """Nothing to stop: the farm is not ours."""

    def scale_up(self, count: int) -> int:
        raise LiveFarmError("the observing scaler cannot scale (KEDA does)")

    def scale_down(self, count: int) -> int:
        raise LiveFarmError("the observing scaler cannot scale (KEDA does)")

    def observed_workers(self) -> int:
        return sum(1 for m in active_members(self.link, self.keys) if m.startswith("worker:"))

    def close(self) -> None:
        """Leave the farm as it is."""


__all__ = ["HeartbeatObserver"]
