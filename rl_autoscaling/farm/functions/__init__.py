"""The farm's own functions (docs/farm.md): emitter, worker and collector, written once.

Each role has ``run(ctx)`` (the loop, until TERMINATE or a SCALE_DOWN ACK) and a ``main()``
so it runs as a local process (``python -m rl_autoscaling.farm.functions.worker``) or inside
an OpenFaaS function (``handler.py``). ``protocol`` holds the keys, messages and time rules.
"""

from .protocol import FarmKeys, FunctionContext, LiveFarmError, RedisLink

ROLES = ("emitter", "worker", "collector")

__all__ = ["FarmKeys", "FunctionContext", "LiveFarmError", "RedisLink", "ROLES"]
