"""Scalers: how the live backend starts, stops and resizes the farm (one interface, three
implementations).

* :class:`LocalProcessScaler` - emitter, collector and workers as local OS processes.
* :class:`KubernetesScaler` - the function Deployments, through the official ``kubernetes``
  client (in-cluster or kubeconfig). Scale-down waits for the worker's ACK and marks the ACKed
  pod with ``controller.kubernetes.io/pod-deletion-cost`` *before* lowering ``replicas``, so
  the ReplicaSet removes that idle pod, never a busy one.
* :class:`OpenFaaSScaler` - the OpenFaaS gateway (``/system/scale-function/{name}``, basic
  auth). The gateway cannot choose which pod goes: prefer ``KubernetesScaler`` when it matters.

Scale-down always goes through SCALE_DOWN SYN/ACK (docs/farm.md/§3): the SYN is read by the first
worker between tasks, so no task is interrupted; with no ACK after ``ack_max_polls`` polls of
``ack_poll_interval`` (farm seconds) the request is withdrawn and counts as not applied.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FarmConfig
from .functions.protocol import (
    ENV_CONFIG_JSON,
    ENV_KEY_PREFIX,
    ENV_PARENT_PID,
    ENV_PDEATHSIG,
    ENV_WORKER_START_AT,
    SCALE_DOWN,
    FarmKeys,
    LiveFarmError,
    RedisLink,
    config_json,
    control,
    loads,
)

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SCALERS = ("local", "kubernetes", "openfaas")


class Scaler(ABC):
    """Starts/stops the farm's functions and changes the number of workers.

    The live backend calls :meth:`bind` once, then per episode :meth:`stop_farm`, checks that
    no foreign process is alive under its key prefix, clears the farm's Redis keys, and
    :meth:`start_farm`; during the episode :meth:`scale_up`,
    :meth:`scale_down` and :meth:`observed_workers`. Durations are real seconds; the backend
    converts them to farm seconds with ``time_scale``.
    """

    name = "scaler"

    def bind(self, link: RedisLink, keys: FarmKeys, config: FarmConfig,
             time_scale: float) -> None:
        """Attach to the farm's Redis (for START announcements and SYN/ACK)."""
        self.link, self.keys, self.config, self.time_scale = link, keys, config, time_scale

    @abstractmethod
    def start_farm(self, initial_workers: int, seed: int | None = None) -> None:
        """Start collector, ``initial_workers`` workers and the emitter (waiting on
        ``input_queue``); return once all have announced themselves."""

    @abstractmethod
    def stop_farm(self) -> None:
        """Stop every function of the farm (no-op if nothing runs)."""

    @abstractmethod
    def scale_up(self, count: int) -> int:
        """Add ``count`` workers; block until they started. Returns the workers added."""

    @abstractmethod
    def scale_down(self, count: int) -> int:
        """Retire up to ``count`` idle workers via SYN/ACK. Returns the workers removed."""

    @abstractmethod
    def observed_workers(self) -> int:
        """Worker count as the cluster reports it (rises at once, drops after removal)."""

    def health(self) -> str | None:
        """A message if a farm component died, else None."""
        return None

    def close(self) -> None:
        self.stop_farm()

    # ------------------------------------------------------------------ protocol helpers

    def _scaled(self, farm_seconds: float) -> float:
        return farm_seconds * self.time_scale

    def _start_index(self) -> int:
        return int(self.link.call(lambda r: r.llen(self.keys.worker_start)))

    def _wait_started(self, index: int, count: int, timeout: float,
                      names: set[str] | None = None) -> list[str]:
        """Wait (real ``timeout``) for ``count`` START announcements after list ``index``."""
        seen: list[str] = []
        deadline = time.time() + timeout
        while True:
            raw = self.link.call(lambda r: r.lrange(self.keys.worker_start, index, -1))
            index += len(raw)
            for item in raw:
                pod = loads(item).get("pod_name")
                if names is None or pod in names:
                    seen.append(pod)
            if len(seen) >= count or time.time() >= deadline:
                return seen
            self._check_alive()
            time.sleep(0.01)

    def _check_alive(self) -> None:
        problem = self.health()
        if problem:
            raise LiveFarmError(problem)

    def _wait_state(self, fields: list[str], timeout: float) -> None:
        deadline = time.time() + timeout
        while True:
            values = self.link.call(lambda r: r.hmget(self.keys.state, fields))
            if all(v is not None for v in values):
                return
            if time.time() >= deadline:
                missing = [f for f, v in zip(fields, values) if v is None]
                raise LiveFarmError(f"farm did not start within {timeout:.0f} s "
                                    f"(no {', '.join(missing)} in {self.keys.state})")
            self._check_alive()
            time.sleep(0.01)

    def syn_ack(self) -> dict[str, Any] | None:
        """Send SCALE_DOWN SYN and poll for the ACK; returns the ACK or None (withdrawn)."""
        timing, keys = self.config.timing, self.keys
        syn = control(SCALE_DOWN, request_id=uuid.uuid4().hex)
        self.link.call(lambda r: r.rpush(keys.worker_control_syn, syn))
        for _ in range(timing.ack_max_polls):
            time.sleep(self._scaled(timing.ack_poll_interval))
            raw = self.link.call(lambda r: r.lpop(keys.worker_control_ack))
            if raw is not None:
                return loads(raw)
        # Withdraw the SYN; if a worker took it meanwhile, its ACK is on the way.
        if self.link.call(lambda r: r.lrem(keys.worker_control_syn, 1, syn)):
            return None
        deadline = time.time() + max(1.0, self._scaled(timing.ack_poll_interval))
        while time.time() < deadline:
            raw = self.link.call(lambda r: r.lpop(keys.worker_control_ack))
            if raw is not None:
                return loads(raw)
            time.sleep(0.01)
        return None


# =========================================================================== local processes


class LocalProcessScaler(Scaler):
    """Emitter, collector and workers as local processes (``python -m ...functions.<role>``).

    The farm's processes never outlive the scaler: they share one process group of their own
    (:attr:`group`; :meth:`stop_farm` signals it as a whole), and each one exits when its
    parent dies, by the parent-death signal or by polling its parent pid (see
    ``functions.lifecycle``). :meth:`close` stops them; the scaler installs no signal
    handler, so a program that must survive SIGTERM cleanly calls ``close`` itself (see
    ``farm.live.sigterm_exits``).

    Args:
        python: interpreter for the child processes.
        emulate_latency: make scale-up last the config's ``scale_up_latency`` and keep a
            retired worker counted for ``scale_down_removal_delay`` (both x ``time_scale``),
            like the real cluster: each new worker draws its latency and takes tasks only
            once it has passed (as the twin models it); process start-up time counts
            toward the latency.
        start_timeout: real seconds to wait for processes to announce themselves.
        log_dir: where each process's stderr goes (default: a temporary directory).
        tolerate_worker_loss: a worker process that dies (killed, OOM) is replaced, as a
            ReplicaSet replaces a lost pod (a new worker, after the emulated deploy latency;
            the collector's reaper re-queues the dead one's in-flight task), instead of
            failing the farm's health check; emitter and collector deaths still do. Lost
            workers are listed in :attr:`lost_workers`.
    """

    name = "local"

    def __init__(self, python: str = sys.executable, emulate_latency: bool = True,
                 start_timeout: float = 60.0, log_dir: str | Path | None = None,
                 redis_url: str | None = None, tolerate_worker_loss: bool = False) -> None:
        self.python = python
        self.tolerate_worker_loss = bool(tolerate_worker_loss)
        self.lost_workers: list[str] = []
        self.emulate_latency = emulate_latency
        self.start_timeout = float(start_timeout)
        self._own_log_dir = log_dir is None
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="rl_farm_logs_"))
        self.redis_url = redis_url
        self.workers: dict[str, subprocess.Popen] = {}
        self.components: dict[str, subprocess.Popen] = {}
        #: the farm's process group (the first process spawned leads it), or None
        self.group: int | None = None
        self._group_procs: list[subprocess.Popen] = []  # members of ``group`` we started
        self._spawned: list[tuple[str, str]] = []  # (role, name) since the last stop
        self._retiring: list[float] = []  # wall time each retired worker stops being counted
        self._rng = np.random.default_rng()
        self._serial = 0

    def bind(self, link: RedisLink, keys: FarmKeys, config: FarmConfig,
             time_scale: float) -> None:
        super().bind(link, keys, config, time_scale)
        self.redis_url = self.redis_url or link.url
        root = str(Path(__file__).resolve().parents[2])
        self._env = dict(os.environ)
        self._env[ENV_CONFIG_JSON] = config_json(config)
        self._env[ENV_KEY_PREFIX] = keys.prefix
        self._env["PYTHONPATH"] = os.pathsep.join(
            [root] + ([self._env["PYTHONPATH"]] if self._env.get("PYTHONPATH") else []))

    def pids(self) -> list[int]:
        """Process ids of the farm's running processes."""
        procs = list(self.components.values()) + list(self.workers.values())
        return [p.pid for p in procs if p.poll() is None]

    def _spawn(self, role: str, name: str,
               extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**self._env, **(extra_env or {})}
        env[ENV_PARENT_PID] = str(os.getpid())  # now: the scaler may have been forked since
        # The kernel's parent-death signal follows the forking *thread*: only ask for it
        # from the main thread, which lives as long as this process (lifecycle.py).
        env[ENV_PDEATHSIG] = "1" if threading.current_thread() is threading.main_thread() else "0"
        cmd = [self.python, "-m", f"rl_autoscaling.farm.functions.{role}",
               "--redis-url", self.redis_url, "--name", name,
               "--time-scale", repr(self.time_scale), "--key-prefix", self.keys.prefix]
        with open(self.log_dir / f"{name}.log", "ab") as log:
            def popen(group: int) -> subprocess.Popen:
                return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=log,
                                        process_group=group)

            proc = None
            if self._group_alive():
                try:
                    proc = popen(self.group)
                except OSError:  # the group emptied meanwhile
                    proc = None
            if proc is None:
                proc = popen(0)  # a new group, led by this process
                self.group, self._group_procs = proc.pid, []
        self._group_procs.append(proc)
        self._spawned.append((role, name))
        return proc

    def _group_alive(self) -> bool:
        """True while a process we started (not yet reaped) holds :attr:`group`, so the id
        cannot have been reused by anyone else."""
        return self.group is not None and any(p.poll() is None for p in self._group_procs)

    def _new_name(self, role: str) -> str:
        self._serial += 1
        return f"{role}-{os.getpid()}-{self._serial}"

    def start_farm(self, initial_workers: int, seed: int | None = None) -> None:
        self.stop_farm()
        self._rng = np.random.default_rng(None if seed is None else [int(seed), 11])
        index = self._start_index()
        self.components["collector"] = self._spawn("collector", self._new_name("collector"))
        names = self._spawn_workers(initial_workers)
        self.components["emitter"] = self._spawn("emitter", self._new_name("emitter"))
        started = self._wait_started(index, len(names), self.start_timeout, set(names))
        if len(started) < len(names):
            raise LiveFarmError(f"only {len(started)} of {len(names)} workers started within "
                                f"{self.start_timeout:.0f} s (logs in {self.log_dir})")
        self._wait_state(["collector_ready", "emitter_ready"], self.start_timeout)

    def _spawn_workers(self, count: int, start_at: list[float] | None = None) -> list[str]:
        """Spawn ``count`` workers; worker ``i`` takes tasks from wall time ``start_at[i]``."""
        names = [self._new_name("worker") for _ in range(count)]
        for i, name in enumerate(names):
            extra = {ENV_WORKER_START_AT: repr(start_at[i])} if start_at else None
            self.workers[name] = self._spawn("worker", name, extra)
        return names

    def stop_farm(self) -> None:
        """SIGTERM the farm's process group, SIGKILL it after 3 s, forget its heartbeats."""
        procs = list(self.components.values()) + list(self.workers.values())
        self._signal_all(procs, signal.SIGTERM)
        deadline = time.time() + 3.0
        for proc in procs:
            try:
                proc.wait(max(0.01, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self._signal_all(procs, signal.SIGKILL)
                proc.wait()
        if not self._group_alive():
            self.group, self._group_procs = None, []
        self.components.clear()
        self.workers.clear()
        self._retiring.clear()
        self._forget_heartbeats()

    def _signal_all(self, procs: list[subprocess.Popen], sig: int) -> None:
        if self._group_alive():
            try:
                os.killpg(self.group, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in procs:  # also those outside the group (spawned after it emptied)
            if proc.poll() is None:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass

    def _forget_heartbeats(self) -> None:
        """Delete the heartbeat keys of stopped processes (a killed one cannot); one try, as
        they expire anyway and ``close`` must not hang on a dead Redis."""
        if not self._spawned:
            return
        keys = [self.keys.alive(role, name) for role, name in self._spawned]
        self._spawned = []
        try:
            self.link.client.delete(*keys)
        except Exception:  # noqa: BLE001 - Redis may be gone; the keys expire by themselves
            pass

    def scale_up(self, count: int) -> int:
        start = time.time()
        index = self._start_index()
        start_at = None
        if self.emulate_latency:  # each new worker is ready only after its own latency
            start_at = [start + self._scaled(self.config.timing.scale_up_latency.sample(self._rng))
                        for _ in range(count)]
        names = self._spawn_workers(count, start_at)
        timeout = self.start_timeout + (max(start_at) - start if start_at else 0.0)
        started = self._wait_started(index, count, timeout, set(names))
        if len(started) < count:
            raise LiveFarmError(f"{count - len(started)} new worker(s) did not start within "
                                f"{timeout:.0f} s (logs in {self.log_dir})")
        if start_at:
            time.sleep(max(0.0, max(start_at) - time.time()))
        return count

    def scale_down(self, count: int) -> int:
        applied = 0
        for _ in range(count):
            msg = self.syn_ack()
            if msg is None:
                break
            proc = self.workers.pop(str(msg.get("pod_name")), None)
            if proc is not None:  # it exits by itself after the ACK
                try:
                    proc.wait(5.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            delay = (self.config.timing.scale_down_removal_delay.sample(self._rng)
                     if self.emulate_latency else 0.0)
            self._retiring.append(float(msg.get("ack_timestamp", time.time()))
                                  + self._scaled(delay))
            applied += 1
        return applied

    def observed_workers(self) -> int:
        self._replace_lost_workers()
        now = time.time()
        self._retiring = [t for t in self._retiring if t > now]
        return len(self.workers) + len(self._retiring)

    def _replace_lost_workers(self) -> None:
        if not self.tolerate_worker_loss:
            return
        lost = [name for name, proc in self.workers.items() if proc.poll() is not None]
        for name in lost:
            del self.workers[name]
            self.lost_workers.append(name)
        if lost:  # like a ReplicaSet: new pods, ready after the deploy latency
            start = time.time()
            start_at = [start + self._scaled(self.config.timing.scale_up_latency.sample(self._rng))
                        for _ in lost] if self.emulate_latency else None
            self._spawn_workers(len(lost), start_at)

    def health(self) -> str | None:
        self._replace_lost_workers()
        for role, proc in list(self.components.items()) + list(self.workers.items()):
            code = proc.poll()
            if code is not None:
                tail = _tail(self.log_dir / f"{_proc_name(proc)}.log")
                return f"farm {role} process exited with code {code}" + (f": {tail}" if tail else "")
        return None

    def close(self) -> None:
        """Stop every farm process (idempotent) and remove the temporary log directory."""
        self.stop_farm()
        if self._own_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)


def _proc_name(proc: subprocess.Popen) -> str:
    args = list(proc.args)
    return args[args.index("--name") + 1] if "--name" in args else "process"


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


# =========================================================================== replica scalers


class ReplicaScaler(Scaler):
    """A farm whose functions are replicated services (Deployments / OpenFaaS functions)."""

    def __init__(self, worker: str = "worker", emitter: str = "emitter",
                 collector: str = "collector", ready_timeout: float = 300.0,
                 poll: float = 1.0) -> None:
        self.worker, self.emitter, self.collector = worker, emitter, collector
        self.ready_timeout = float(ready_timeout)
        self.poll = float(poll)

    @abstractmethod
    def get_replicas(self, function: str) -> tuple[int, int]:
        """(desired, observed) replicas of ``function``."""

    @abstractmethod
    def set_replicas(self, function: str, replicas: int) -> None:
        """Set the desired replicas of ``function``."""

    def before_removal(self, pod_name: str) -> None:
        """Hook run after the ACK and before replicas are lowered."""

    def start_farm(self, initial_workers: int, seed: int | None = None) -> None:
        index = self._start_index()
        self.set_replicas(self.collector, 1)
        self.set_replicas(self.worker, initial_workers)
        self.set_replicas(self.emitter, 1)
        started = self._wait_started(index, initial_workers, self.ready_timeout)
        if len(started) < initial_workers:
            raise LiveFarmError(f"only {len(started)} of {initial_workers} workers announced "
                                f"themselves within {self.ready_timeout:.0f} s")
        self._wait_state(["collector_ready", "emitter_ready"], self.ready_timeout)

    def stop_farm(self) -> None:
        functions = (self.emitter, self.collector, self.worker)
        for fn in functions:
            self.set_replicas(fn, 0)
        deadline = time.time() + self.ready_timeout
        for fn in functions:
            while self.get_replicas(fn)[1] > 0:
                if time.time() >= deadline:
                    raise LiveFarmError(f"{fn} still has pods {self.ready_timeout:.0f} s "
                                        "after scaling it to 0")
                time.sleep(self.poll)

    def scale_up(self, count: int) -> int:
        desired, _ = self.get_replicas(self.worker)
        index = self._start_index()
        self.set_replicas(self.worker, desired + count)
        # Block like the real farm: until the new workers announce themselves.
        self._wait_started(index, count, self.ready_timeout)
        return count

    def scale_down(self, count: int) -> int:
        applied = 0
        for _ in range(count):
            msg = self.syn_ack()
            if msg is None:
                break
            self.before_removal(str(msg.get("pod_name")))
            desired, _ = self.get_replicas(self.worker)
            self.set_replicas(self.worker, max(0, desired - 1))
            applied += 1
        return applied

    def observed_workers(self) -> int:
        return self.get_replicas(self.worker)[1]

    def close(self) -> None:
        """Leave the cluster's functions as they are (stop them with ``stop_farm``)."""


class KubernetesScaler(ReplicaScaler):
    """Scale the worker Deployment with the official ``kubernetes`` client.

    Args:
        namespace: namespace of the function Deployments (config ``functions.namespace``).
        worker, emitter, collector: Deployment names.
        api_client: a ready ``kubernetes.client.ApiClient``; default: in-cluster config when
            ``KUBERNETES_SERVICE_HOST`` is set, else ``kubeconfig`` / ``context``.
        deletion_cost: value of the pod-deletion-cost annotation put on the ACKed pod
            (lower than every other pod's, default 0, so it is removed first).
    """

    name = "kubernetes"

    def __init__(self, namespace: str = "openfaas-fn", worker: str = "worker",
                 emitter: str = "emitter", collector: str = "collector", *,
                 api_client: Any = None, kubeconfig: str | None = None,
                 context: str | None = None, deletion_cost: int = -1000,
                 ready_timeout: float = 300.0, poll: float = 1.0) -> None:
        super().__init__(worker, emitter, collector, ready_timeout, poll)
        from kubernetes import client, config

        if api_client is None:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and kubeconfig is None:
                config.load_incluster_config()
            else:
                config.load_kube_config(config_file=kubeconfig, context=context)
            api_client = client.ApiClient()
        self.namespace = namespace
        self.deletion_cost = int(deletion_cost)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def _api(self, what: str, fn, *args, **kwargs):
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise LiveFarmError(f"Kubernetes API: {what} failed ({exc.status} {exc.reason})") from exc
        except OSError as exc:  # urllib3 connection errors derive from OSError
            raise LiveFarmError(f"Kubernetes API unreachable: {what} ({exc})") from exc

    def get_replicas(self, function: str) -> tuple[int, int]:
        scale = self._api(f"read scale of deployment {self.namespace}/{function}",
                          self.apps.read_namespaced_deployment_scale, function, self.namespace)
        return int(scale.spec.replicas or 0), int((scale.status and scale.status.replicas) or 0)

    def set_replicas(self, function: str, replicas: int) -> None:
        self._api(f"scale deployment {self.namespace}/{function} to {replicas}",
                  self.apps.patch_namespaced_deployment_scale, function, self.namespace,
                  {"spec": {"replicas": int(replicas)}})

    def before_removal(self, pod_name: str) -> None:
        """Mark the ACKed (idle) pod as the cheapest to delete."""
        body = {"metadata": {"annotations": {DELETION_COST: str(self.deletion_cost)}}}
        self._api(f"annotate pod {self.namespace}/{pod_name}",
                  self.core.patch_namespaced_pod, pod_name, self.namespace, body)


class OpenFaaSScaler(ReplicaScaler):
    """Scale functions through the OpenFaaS gateway's REST API (basic auth).

    ``POST {gateway}/system/scale-function/{name}`` with ``{"serviceName", "replicas"}`` and
    ``GET {gateway}/system/function/{name}`` (``replicas`` / ``availableReplicas``).
    Credentials default to ``$OPENFAAS_USERNAME`` (``admin``) and ``$OPENFAAS_PASSWORD``.
    """

    name = "openfaas"

    def __init__(self, gateway_url: str = "http://127.0.0.1:8080", worker: str = "worker",
                 emitter: str = "emitter", collector: str = "collector", *,
                 username: str | None = None, password: str | None = None,
                 namespace: str | None = None, timeout: float = 10.0,
                 ready_timeout: float = 300.0, poll: float = 1.0) -> None:
        super().__init__(worker, emitter, collector, ready_timeout, poll)
        self.gateway_url = gateway_url.rstrip("/")
        user = username or os.environ.get("OPENFAAS_USERNAME", "admin")
        secret = password if password is not None else os.environ.get("OPENFAAS_PASSWORD", "")
        self._auth = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
        self.namespace = namespace
        self.timeout = float(timeout)

    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        query = f"?{urllib.parse.urlencode({'namespace': self.namespace})}" if self.namespace else ""
        url = f"{self.gateway_url}{path}{query}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": self._auth,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise LiveFarmError(f"OpenFaaS gateway {method} {url} failed ({exc.code} {exc.reason})") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise LiveFarmError(f"OpenFaaS gateway at {self.gateway_url} is unreachable ({exc})") from exc
        return json.loads(raw) if raw.strip() else None

    def get_replicas(self, function: str) -> tuple[int, int]:
        info = self._request("GET", f"/system/function/{function}") or {}
        return int(info.get("replicas", 0)), int(info.get("availableReplicas", 0))

    def set_replicas(self, function: str, replicas: int) -> None:
        body: dict[str, Any] = {"serviceName": function, "replicas": int(replicas)}
        if self.namespace:
            body["namespace"] = self.namespace
        self._request("POST", f"/system/scale-function/{function}", body)


def make_scaler(name: str | Scaler, config: FarmConfig, **options: Any) -> Scaler:
    """Build the scaler ``name`` (local, kubernetes, openfaas) from the farm config."""
    if isinstance(name, Scaler):
        return name
    fn = config.functions
    names = {"worker": fn.worker, "emitter": fn.emitter, "collector": fn.collector}
    if name == "local":
        return LocalProcessScaler(**options)
    if name == "kubernetes":
        return KubernetesScaler(**{"namespace": fn.namespace, **names, **options})
    if name == "openfaas":
        return OpenFaaSScaler(**{"gateway_url": fn.gateway_url, **names, **options})
    raise ValueError(f"unknown scaler {name!r}; choose one of {', '.join(SCALERS)}")


__all__ = ["DELETION_COST", "KubernetesScaler", "LocalProcessScaler", "OpenFaaSScaler",
           "ReplicaScaler", "SCALERS", "Scaler", "make_scaler"]
