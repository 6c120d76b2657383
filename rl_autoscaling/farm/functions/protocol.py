"""The farm's wire protocol (docs/farm.md): Redis keys, task fields, control messages, time.

Every message is one JSON object on a Redis list; producers ``RPUSH`` and consumers ``LPOP``,
so every list is FIFO. The same module is used by the emitter, the workers and the collector
(as local processes or OpenFaaS functions) and by the live backend that observes them.

Time convention
---------------
``time_scale`` s < 1 runs the farm faster than real time: one *farm second* lasts s real
seconds. Processing sleeps, poll intervals, emitter gaps and (emulated) scaling latencies are
all multiplied by s, and every timestamp a component writes into a task is in farm seconds
since the episode's ``program_start_time`` (a wall-clock epoch, carried by the phase
descriptors and by every task), so completion times and deadlines compare exactly as on the
real farm and on the twin. Control messages (START, ACK) carry wall-clock epochs.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from ...common.errors import UserError
from ...config import FarmConfig, from_dict, load_config, to_dict

T = TypeVar("T")

# Control message types (docs/farm.md).
SCALE_DOWN, TERMINATE, START = "SCALE_DOWN", "TERMINATE", "START"
SYN, ACK = "SYN", "ACK"
PHASE = "PHASE"

#: Environment variables the functions read (set by the local farm or by stack.yml).
ENV_REDIS_URL = "REDIS_URL"
ENV_CONFIG_JSON = "FARM_CONFIG_JSON"  # the full config as JSON (local farm)
ENV_CONFIG_FILE = "FARM_CONFIG_FILE"  # or a YAML file on top of the packaged default
ENV_TIME_SCALE = "TIME_SCALE"
ENV_POD_NAME = "POD_NAME"  # default: the host name (the pod name on Kubernetes)
ENV_KEY_PREFIX = "FARM_KEY_PREFIX"  # the farm's Redis key namespace (default: none)
#: set by the local scaler: the spawning process; the function exits when it is gone
ENV_PARENT_PID = "FARM_PARENT_PID"
#: set by the local scaler when the parent-death signal may be used (see lifecycle.py)
ENV_PDEATHSIG = "FARM_PDEATHSIG"
# wall-clock epoch before which a new worker neither announces itself nor takes tasks (the
# local scaler's emulated deploy latency; unset: at once)
ENV_WORKER_START_AT = "FARM_WORKER_START_AT"


class LiveFarmError(UserError, RuntimeError):
    """The live farm cannot go on (Redis unreachable, a component died, a timeout)."""


@dataclass(frozen=True)
class FarmKeys:
    """Every Redis key of one farm: the configured queues plus bookkeeping, all under
    ``prefix``.

    The prefix is the farm's namespace: two farms on one Redis (or several live env copies)
    with different prefixes never share a queue, so a worker only ever takes its own farm's
    tasks. Every running farm process also keeps a heartbeat key (:meth:`alive`, with a TTL)
    under the prefix; :attr:`alive_pattern` finds them (see ``functions.lifecycle``).
    """

    input: str
    worker: str
    result: str
    output: str
    enqueued_total: str
    worker_start: str
    worker_control_syn: str
    worker_control_ack: str
    emitter_control_syn: str
    collector_control_syn: str
    state: str  # hash: program_start_time, time_scale, generation_start/_end, *_ready
    collecting: str  # results the collector took but has not yet appended to output
    prefix: str = ""

    @classmethod
    def from_config(cls, cfg: FarmConfig, prefix: str = "") -> FarmKeys:
        q = cfg.queues
        names = (q.input, q.worker, q.result, q.output, q.enqueued_total, q.worker_start,
                 q.worker_control_syn, q.worker_control_ack, q.emitter_control_syn,
                 q.collector_control_syn, f"{q.input}:state", f"{q.result}:collecting")
        return cls(*(prefix + name for name in names), prefix=prefix)

    def all(self) -> list[str]:
        """The farm's queue and state keys (not the heartbeats, which belong to processes)."""
        return [v for k, v in self.__dict__.items() if k != "prefix"]

    def alive(self, role: str, name: str) -> str:
        """The heartbeat key of the farm process ``name`` playing ``role``."""
        return f"{self.prefix}farm_alive:{role}:{name}"

    @property
    def alive_pattern(self) -> str:
        """``SCAN MATCH`` pattern of this farm's heartbeat keys (the prefix glob-escaped)."""
        return f"{_glob_escape(self.prefix)}farm_alive:*"

    def inflight(self, name: str) -> str:
        """The list holding the task worker ``name`` is processing (moved there from
        ``worker`` by LMOVE; see ``functions.worker``)."""
        return f"{self.worker}:inflight:{name}"

    def inflight_worker(self, key: str) -> str:
        """The worker name of an :meth:`inflight` key."""
        return key[len(self.inflight("")):]

    @property
    def inflight_pattern(self) -> str:
        """``SCAN MATCH`` pattern of this farm's in-flight lists."""
        return f"{_glob_escape(self.inflight(''))}*"


#: Lua, KEYS: an in-flight list, worker_queue: move the list's tasks back to the head of
#: worker_queue in their order; returns how many.
REQUEUE = """
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end
return n
"""


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


# --------------------------------------------------------------------------- messages


def dumps(msg: Mapping[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


def loads(raw: bytes | str) -> dict[str, Any]:
    return json.loads(raw)


def control(kind: str, action: str = SYN, **fields: Any) -> str:
    """A control message, e.g. ``control(SCALE_DOWN)`` -> the SYN of docs/farm.md."""
    return dumps({"type": kind, "action": action, **fields})


def ack(pod_name: str, request_id: str | None = None) -> str:
    """A worker's answer to SCALE_DOWN SYN (``ack_timestamp`` is a wall-clock epoch)."""
    extra = {"request_id": request_id} if request_id else {}
    return control(SCALE_DOWN, ACK, pod_name=pod_name, ack_timestamp=time.time(), **extra)


def start_announcement(pod_name: str, role: str = "worker") -> str:
    return dumps({"type": START, "role": role, "pod_name": pod_name, "timestamp": time.time()})


def phase_descriptor(position: int, name: str, *, phase_count: int, seed: int,
                     order: list[int] | None, program_start_time: float,
                     time_scale: float) -> str:
    """One ``input_queue`` item; the first one also tells the emitter the episode's seed."""
    return dumps({"type": PHASE, "position": position, "name": name,
                  "phase_count": phase_count, "seed": int(seed), "order": order,
                  "program_start_time": program_start_time, "time_scale": time_scale})


def new_task(*, index: int, now: float, processing: float, deadline: float, image_size: int,
             phase: str, program_start_time: float, time_scale: float) -> dict[str, Any]:
    """A task as the emitter pushes it (docs/farm.md fields plus bookkeeping)."""
    return {
        "task_id": str(uuid.uuid4()),
        "task_index": index,  # position in the episode's workload (same seed -> same task)
        "task_gen_timestamp": now,
        "task_application": "image_processing",
        "task_priority": 0,
        "task_expected_duration": processing,
        "task_data_size": image_size,
        "task_deadline": deadline,
        "task_processing_time_simulated": processing,
        "task_emit_timestamp": now,
        "task_phase": phase,
        "program_start_time": program_start_time,
        "time_scale": time_scale,
    }


def farm_time(task_or_desc: Mapping[str, Any], wall: float | None = None) -> float:
    """Farm seconds since the episode start, for a wall time (default: now)."""
    wall = time.time() if wall is None else wall
    return (wall - float(task_or_desc["program_start_time"])) / float(task_or_desc["time_scale"])


# --------------------------------------------------------------------------- runtime context


def redis_url_for(cfg: FarmConfig) -> str:
    return f"redis://{cfg.redis.host}:{cfg.redis.port}/{cfg.redis.db}"


def connect(url: str, timeout: float = 2.0):
    """A redis-py client with bounded socket timeouts (a dead server never hangs a call)."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


class RedisLink:
    """A Redis client whose calls retry with exponential backoff, then raise LiveFarmError.

    ``tries`` attempts are made, sleeping ``backoff``, 2x``backoff``, ... between them
    (5 tries from 0.2 s wait about 3 s in total).
    """

    def __init__(self, url: str, tries: int = 5, backoff: float = 0.2,
                 timeout: float = 2.0, max_backoff: float = 60.0) -> None:
        self.url, self.tries, self.backoff = url, max(1, int(tries)), float(backoff)
        self.max_backoff = float(max_backoff)
        self.client = connect(url, timeout)

    def call(self, fn: Callable[[Any], T]) -> T:
        import redis

        delay = self.backoff
        for attempt in range(1, self.tries + 1):
            try:
                return fn(self.client)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if attempt == self.tries:
                    raise LiveFarmError(
                        f"Redis at {self.url} is unreachable after {self.tries} tries "
                        f"({type(exc).__name__}: {exc})") from exc
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection must not fail
            pass


@dataclass
class FunctionContext:
    """What a farm function needs: Redis, config, its name and the time scale."""

    redis_url: str
    config: FarmConfig
    name: str
    time_scale: float = 1.0
    #: give up after Redis has been unreachable this many real seconds
    redis_patience: float = 10.0
    #: the farm's Redis key namespace (``FarmKeys.prefix``)
    key_prefix: str = ""

    @property
    def keys(self) -> FarmKeys:
        return FarmKeys.from_config(self.config, self.key_prefix)

    def link(self) -> RedisLink:
        # Functions retry for about ``redis_patience`` seconds before giving up.
        tries = max(2, int(self.redis_patience / 0.5))
        return RedisLink(self.redis_url, tries=tries, backoff=0.05, max_backoff=0.5)

    @classmethod
    def from_env(cls, role: str, redis_url: str | None = None, name: str | None = None,
                 time_scale: float | None = None,
                 key_prefix: str | None = None) -> FunctionContext:
        """Build from arguments, falling back to the environment variables above."""
        raw = os.environ.get(ENV_CONFIG_JSON)
        if raw:
            cfg = from_dict(json.loads(raw))
        else:
            cfg = load_config(os.environ.get(ENV_CONFIG_FILE) or None)
        url = redis_url or os.environ.get(ENV_REDIS_URL) or redis_url_for(cfg)
        # On Kubernetes the host name is the pod name: what KubernetesScaler annotates.
        pod = name or os.environ.get(ENV_POD_NAME) or socket.gethostname()
        scale = time_scale if time_scale is not None else float(os.environ.get(ENV_TIME_SCALE, "1"))
        prefix = key_prefix if key_prefix is not None else os.environ.get(ENV_KEY_PREFIX, "")
        return cls(url, cfg, pod, scale, key_prefix=prefix)


def config_json(cfg: FarmConfig) -> str:
    """The config as the JSON the functions read from ``FARM_CONFIG_JSON``."""
    return json.dumps(to_dict(cfg))


def sleep_until(deadline: float, check: Callable[[], bool] | None = None,
                quantum: float = 0.05) -> bool:
    """Sleep until the wall time ``deadline``; ``check()`` returning True aborts (-> False)."""
    while True:
        left = deadline - time.time()
        if left <= 0:
            return True
        if check is not None and check():
            return False
        time.sleep(min(left, quantum))
