"""``python -m rl_autoscaling.serve``: the continuous controller on a real local farm (real
``redis-server``, real worker processes, time scale 0.1), scraped by a real Prometheus; hot
reload, a worker SIGKILLed mid-task, SIGTERM, the KEDA gRPC service (and a Redis outage) and
bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_server import PrometheusServer
from redis_server import RedisServer, free_port

from rl_autoscaling.algorithms.sarsa.policy import SarsaPolicy
from rl_autoscaling.algorithms.sarsa.tabular import (
    TWIN_EDGES,
    Discretiser,
    SarsaHyperparams,
    SarsaLambdaLearner,
)
from rl_autoscaling.common.modelio import atomic_write_bytes
from rl_autoscaling.common.rollout import run_episode
from rl_autoscaling.deploy.cli import main as serve_main
from rl_autoscaling.env import OpenFaaSAutoscalingEnv
from rl_autoscaling.observation import Obs

ROOT = Path(__file__).resolve().parents[1]
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")
TIME_SCALE = 0.1
STEP = 8.0  # farm seconds per decision: 0.8 s real
# Three phases of 1, 3 and 2 tasks/s; seed 42 plays 960 tasks in 383 farm s (38 s real; the
# emitter skips empty windows, so a phase lasts less than its phase_duration). Deadlines of
# 2.5 x p, at least 1.5 farm s: at time scale 0.1 the seed's 2 x p (>= 0.1 s) leaves the
# smallest tasks 5 ms of real slack, and a loaded 2-core machine stalls processes for 100 ms
# and more (measured: p99 of collect - work end 1.25 farm s at load average 8).
WORKLOAD = {"base_rate": 120, "deadline": {"min": 1.5, "coefficient": 2.5},
            "phase_definitions": [
                {"name": "low", "multiplier": 0.5, "phase_duration": 160},
                {"name": "high", "multiplier": 1.5, "phase_duration": 160},
                {"name": "mid", "multiplier": 1.0, "phase_duration": 160}]}
FLOOR = 8  # the Q-table's scale-down floor


def qtable_model(path: Path, floor: int, tag: str = "") -> Path:
    """A SARSA model file written by the real saver: on the twin's states (worker queue bin x
    worker count), scale up while tasks wait, down to ``floor`` workers when none do."""
    learner = SarsaLambdaLearner(Discretiser(TWIN_EDGES), SarsaHyperparams(tie_action=1))
    for queue_bin in range(4):
        for worker_bin in range(31):
            action = 2 if queue_bin >= 1 else (0 if worker_bin + 1 > floor else 1)
            learner.q[(0, queue_bin, 0, 0, worker_bin, 0, 0, 0, 0)] = [
                float(a == action) for a in range(3)]
    return learner.save(path, tag=tag)


class Serve:
    """``serve`` as a subprocess; its JSON log lines collected as they come."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "rl_autoscaling.serve", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     text=True)
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.events.append(json.loads(line))
                self.cond.notify_all()

    def wait_for(self, pred, timeout: float) -> dict:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(pred(e) for e in self.events)
                                    or self.proc.poll() is not None, timeout)
            found = [e for e in self.events if pred(e)]
        assert ok and found, (self.proc.poll(), self.events[-3:],
                              self.proc.poll() is not None and self.proc.stderr.read())
        return found[0]

    def of(self, event: str) -> list[dict]:
        with self.cond:
            return [e for e in self.events if e["event"] == event]

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis_srv():
    srv = RedisServer().start()
    yield srv
    srv.stop()


def local_args(url: str, tmp_path: Path, prefix: str, config: dict, workers: int) -> list[str]:
    cfg = tmp_path / "farm.json"  # YAML is a superset of JSON
    cfg.write_text(json.dumps(config))
    return ["--scaler", "local", "--redis-url", url, "--key-prefix", prefix,
            "--time-scale", str(TIME_SCALE), "--config", str(cfg), "--initial-workers",
            str(workers), "--step-duration", str(STEP), "--observation-window", str(STEP),
            "--seed", "42"]


def workload_collected(r, prefix: str) -> bool:
    """The local farm's emitter is done and every task it emitted is in output_queue."""
    done = r.hget(f"{prefix}input_queue:state", "generation_end") is not None
    emitted = int(r.get(f"{prefix}worker_queue:enqueued_total") or 0)
    return done and emitted == r.llen(f"{prefix}output_queue")


def busy_worker_pid(r, prefix: str) -> tuple[str, int] | None:
    """(name, pid) of a local worker holding a task in its in-flight list."""
    for key in r.scan_iter(match=f"{prefix}worker_queue:inflight:*"):
        if r.llen(key):
            name = key.decode().rsplit(":", 1)[1]
            beat = r.get(f"{prefix}farm_alive:worker:{name}")
            if beat:
                return name, int(beat.decode().split("@")[0])
    return None


@pytest.mark.slow
@needs_redis
def test_serve_runs_a_model_continuously_on_the_local_farm(redis_srv, tmp_path):
    model = qtable_model(tmp_path / "sarsa_best.pkl", floor=FLOOR)
    metrics_port, prefix = free_port(), "serve-test:"
    # (fails here, before the farm starts, when prometheus is not installed)
    prometheus = PrometheusServer([f"127.0.0.1:{metrics_port}"], tmp_path / "prometheus")
    summary = tmp_path / "summary.json"
    r = redis_srv.client()
    serve = Serve("--model", str(model), "--metrics-port", str(metrics_port),
                  "--summary", str(summary),
                  *local_args(redis_srv.url, tmp_path, prefix, WORKLOAD, workers=8))
    try:
        with prometheus:
            first = serve.wait_for(lambda e: e["event"] == "start", 60)
            # A half-written file is never seen (atomic rename); a bad one is refused once.
            serve.wait_for(lambda e: e.get("step") == 8, 30)
            atomic_write_bytes(model, b"not a pickle")
            refused = serve.wait_for(lambda e: e["event"] == "model_refused", 10)
            assert "not a valid model file" in refused["reason"]
            # The next version (same rules, new bytes) is swapped in between steps.
            qtable_model(model, floor=FLOOR, tag="v2")
            reloaded = serve.wait_for(lambda e: e["event"] == "model_reloaded", 10)
            assert reloaded["sha256"] != first["sha256"]
            # SIGKILL a worker in the middle of a task (in the high-load phase).
            serve.wait_for(lambda e: e.get("step") == 18, 30)
            deadline, lost_task = time.time() + 10, None
            while lost_task is None and time.time() < deadline:
                victim = busy_worker_pid(r, prefix)
                if victim is None:
                    time.sleep(0.01)
                    continue
                os.kill(victim[1], signal.SIGKILL)
                # busy when it died: its task is still in its list (the reaper waits for the
                # heartbeat to expire); else it had just finished: kill another one
                lost_task = r.lindex(f"{prefix}worker_queue:inflight:{victim[0]}", 0)
            assert lost_task is not None
            # The workload played out (every emitted task collected): SIGTERM the controller.
            deadline = time.time() + 60
            while not workload_collected(r, prefix) and time.time() < deadline:
                time.sleep(0.2)
            collected_at = time.time()  # one more decision observes the last collections
            serve.wait_for(lambda e: e["event"] == "decision" and e["ts"] > collected_at, 10)
            # the clock starts once the signal is queued
            serve.proc.send_signal(signal.SIGTERM)
            sent = time.time()
            stop = serve.wait_for(lambda e: e["event"] == "stop", 10)
            assert serve.finish(timeout=30) == 0
            scraped_reloads = prometheus.query(
                "max_over_time(rl_autoscaler_model_reloads_total[10m])")
            served = prometheus.query("count(count_over_time(rl_autoscaler_model_info[10m]))")
            decisions = prometheus.query("sum(max_over_time(rl_autoscaler_decisions_total[10m]))")
    finally:
        serve.kill()
    stderr = serve.proc.stderr.read()
    assert stderr == "", stderr
    out = json.loads(summary.read_text())
    decision_lines = serve.of("decision")
    # SIGTERM: the step under way is finished, no other one started, nothing scaled down.
    # The log's ts is rounded to the millisecond: a decision logged just before the signal (the
    # one that triggered it, read at once) can carry a ts up to 0.5 ms later than it was made.
    # A step started after the signal would be logged a whole step later.
    assert len([e for e in decision_lines if e["ts"] > sent + 0.0005]) <= 1
    assert stop["ts"] - sent <= STEP * TIME_SCALE + 1.0  # (+ a scale-up's block, <= 0.9 s)
    last = decision_lines[-1]
    assert stop["workers_left"] == last["workers"] + last["applied"]
    # Every decision after the reload was made by the new model, every one before by the old.
    assert {e["model"] for e in decision_lines} == {first["sha256"], reloaded["sha256"]}
    assert out["model_reloads"] == 1 and out["fallbacks"] == 0
    assert out["decisions"] == len(decision_lines) >= 30  # steps with a scale-up take longer
    span = decision_lines[-1]["ts"] - decision_lines[0]["ts"]
    assert span >= 0.95 * 360 * TIME_SCALE  # it served through the whole workload
    counts = [e["workers"] for e in decision_lines]
    assert FLOOR in counts and min(counts) >= FLOOR - 1  # the floor (- the killed worker)
    assert max(counts) > FLOOR  # ... and up under load
    # Prometheus saw the reload, both models and the decisions while it ran.
    assert float(scraped_reloads[0]["value"][1]) == 1.0
    assert float(served[0]["value"][1]) == 2.0
    # (the last scrape may precede the last few decisions)
    assert out["decisions"] / 2 <= float(decisions[0]["value"][1]) <= out["decisions"]
    # Every emitted task collected exactly once, the killed worker's task included.
    records = [json.loads(x) for x in r.lrange(f"{prefix}output_queue", 0, -1)]
    ids = [t["task_id"] for t in records]
    emitted = int(r.get(f"{prefix}worker_queue:enqueued_total"))
    assert len(ids) == len(set(ids)) == emitted == out["tasks_emitted"] == out["tasks_completed"]
    assert json.loads(lost_task)["task_id"] in ids
    assert not list(r.scan_iter(match=f"{prefix}worker_queue:inflight:*"))
    # The same model on the twin, same workload: final QoS within 3 points.
    twin = OpenFaaSAutoscalingEnv(config=WORKLOAD, step_duration=STEP, observation_window=STEP,
                                  initial_workers=8, max_steps=10_000, min_workers=1)
    run_episode(twin, SarsaPolicy.load(model).act, seed=42)
    print("final QoS: live", out["final_qos"], "twin", twin.get_episode_final_qos())
    assert abs(out["final_qos"] - twin.get_episode_final_qos()) <= 0.03, (
        out["final_qos"], twin.get_episode_final_qos())


# --------------------------------------------------------------------------- bad input


@needs_redis
@pytest.mark.parametrize("case", ["missing_model", "corrupt_model", "redis_down", "port_in_use",
                                  "unknown_policy", "summary_is_a_dir"])
def test_bad_input_is_one_line_and_scales_nothing(case, redis_srv, tmp_path, capsys):
    import socket

    model = qtable_model(tmp_path / "sarsa.pkl", floor=FLOOR)
    url = redis_srv.url
    extra: list[str] = ["--model", str(model)]
    busy = socket.socket()
    if case == "missing_model":
        extra = ["--model", str(tmp_path / "nope.pkl")]
    elif case == "corrupt_model":
        (tmp_path / "bad.pkl").write_bytes(b"\x80\x04not a model")
        extra = ["--model", str(tmp_path / "bad.pkl")]
    elif case == "redis_down":
        url = f"redis://127.0.0.1:{free_port()}/0"
    elif case == "port_in_use":
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        extra += ["--metrics-port", str(busy.getsockname()[1]), "--metrics-host", "127.0.0.1"]
    elif case == "unknown_policy":
        extra = ["--policy", "nosuchpolicy"]
    elif case == "summary_is_a_dir":
        extra += ["--summary", str(tmp_path)]
    try:
        code = serve_main([*extra, *local_args(url, tmp_path, "bad:", WORKLOAD, workers=2)])
    finally:
        busy.close()
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    expected = {"missing_model": "not found", "corrupt_model": "not a valid model file",
                "redis_down": "unreachable", "port_in_use": "--metrics-port",
                "unknown_policy": "unknown agent", "summary_is_a_dir": "--summary"}[case]
    assert expected in err
    assert redis_srv.client().dbsize() == 0  # no farm started, nothing scaled


# --------------------------------------------------------------------------- KEDA


@pytest.mark.slow
@needs_redis
def test_keda_external_scaler_answers_the_policys_decision(redis_srv, tmp_path):
    import grpc

    from rl_autoscaling.deploy.keda import client_stubs
    from rl_autoscaling.farm.functions.protocol import dumps, new_task

    prefix, port = "keda:", free_port()
    model = qtable_model(tmp_path / "sarsa.pkl", floor=FLOOR)
    r = redis_srv.client()
    start = time.time()  # the farm's clock, as its emitter would publish it
    r.hset(f"{prefix}input_queue:state", mapping={"program_start_time": start,
                                                  "time_scale": TIME_SCALE})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen(
        [sys.executable, "-m", "rl_autoscaling.farm.functions.worker", "--redis-url",
         redis_srv.url, "--name", f"w{i}", "--time-scale", str(TIME_SCALE), "--key-prefix",
         prefix], env=env, stderr=subprocess.DEVNULL) for i in range(2)]
    restarted: list[RedisServer] = []
    serve = Serve("--model", str(model), "--keda-grpc", str(port), "--scaler", "kubernetes",
                  "--redis-url", redis_srv.url, "--key-prefix", prefix,
                  "--time-scale", str(TIME_SCALE), "--step-duration", str(STEP),
                  "--backoff-max", "1")
    try:
        serve.wait_for(lambda e: e["event"] == "decision" and e["workers"] == 2, 60)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        rpc = client_stubs(channel)
        m = _keda_messages()
        ref = m["ScaledObjectRef"](name="worker", namespace="openfaas-fn")
        # Idle farm: not active; the policy holds 2 workers (below its floor, nothing queued).
        assert rpc["IsActive"](ref, timeout=5).result is False
        spec = rpc["GetMetricSpec"](ref, timeout=5).metricSpecs[0]
        assert spec.targetSize == 1 and spec.targetSizeFloat == 1.0
        request = m["GetMetricsRequest"](scaledObjectRef=ref, metricName=spec.metricName)
        idle = rpc["GetMetrics"](request, timeout=5).metricValues[0]
        assert idle.metricValue == 2 and idle.metricName == spec.metricName
        # 100 tasks arrive at once: the policy asks for one worker more; KEDA is told so.
        tasks = [dumps(new_task(index=i, now=(time.time() - start) / TIME_SCALE, processing=1.5,
                                deadline=3.0, image_size=1024, phase="burst",
                                program_start_time=start, time_scale=TIME_SCALE))
                 for i in range(100)]
        r.rpush(f"{prefix}worker_queue", *tasks)
        r.incrby(f"{prefix}worker_queue:enqueued_total", len(tasks))
        seen = serve.wait_for(lambda e: e["event"] == "decision" and e["worker_queue"] > 15, 30)
        busy = rpc["GetMetrics"](request, timeout=5).metricValues[0]
        obs = np.zeros(9, dtype=np.float32)
        obs[Obs.WORKER_QUEUE], obs[Obs.WORKERS] = seen["worker_queue"], seen["workers"]
        policy_delta = (-1, 0, 1)[SarsaPolicy.load(model).act(obs, {})]
        assert busy.metricValue == seen["desired"] == 2 + policy_delta == 3
        assert busy.metricValueFloat == 3.0
        assert rpc["IsActive"](ref, timeout=5).result is True
        stream = rpc["StreamIsActive"](ref, timeout=5)
        assert next(stream).result is True
        stream.cancel()
        # Redis goes away: hold the count, one line per outage, KEDA still gets an answer.
        port_of_redis = redis_srv.port
        redis_srv.kill()
        down = serve.wait_for(lambda e: e["event"] == "farm_unreachable", 20)
        held = serve.wait_for(lambda e: e["event"] == "decision" and e["fallback"] == "stale"
                              and e["ts"] > down["ts"], 20)
        assert held["delta"] == 0
        assert rpc["GetMetrics"](request, timeout=5).metricValues[0].metricValue >= 2
        restarted.append(RedisServer(port=port_of_redis).start())
        serve.wait_for(lambda e: e["event"] == "farm_reachable", 30)
        channel.close()
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.finish(timeout=30) == 0
    finally:
        serve.kill()
        for w in workers:
            w.terminate()
            w.wait(10)
        for srv in restarted:
            srv.stop()
    assert len(serve.of("farm_unreachable")) == len(serve.of("farm_reachable")) == 1
    # KEDA scales, never serve (None: a step that failed in the outage)
    assert all(e["applied"] in (0, None) for e in serve.of("decision"))


def _keda_messages():
    from rl_autoscaling.deploy.keda import message_classes

    return message_classes()


def test_keda_descriptors_are_kedas_proto():
    """The service descriptor built in code is byte for byte what protoc compiles from KEDA's
    externalscaler.proto (fingerprint taken with grpc_tools.protoc 1.85.1)."""
    import hashlib

    from rl_autoscaling.deploy.keda import PROTO_SHA256, file_descriptor

    fd = file_descriptor()
    assert hashlib.sha256(fd.SerializeToString()).hexdigest() == PROTO_SHA256
    assert [m.name for m in fd.service[0].method] == [
        "IsActive", "StreamIsActive", "GetMetricSpec", "GetMetrics", "StreamMetricSpec"]


def test_help_and_the_readme_commands_work_as_written():
    import re
    import shlex

    from rl_autoscaling.deploy.cli import build_parser

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    help_run = subprocess.run([sys.executable, "-m", "rl_autoscaling.serve", "--help"],
                              capture_output=True, text=True, env=env, timeout=60)
    assert help_run.returncode == 0 and "--keda-grpc" in help_run.stdout
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deploying the autoscaler"):]
    section = section[:section.index("\n## ", 5)]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    commands = [shlex.split(c.replace("\\\n", " "), comments=True)
                for c in re.split(r"\n(?=\S)", block) if "rl_autoscaling.serve" in c]
    assert len(commands) == 5
    for argv in commands:
        assert argv[:3] == ["python", "-m", "rl_autoscaling.serve"]
        if argv[3:] != ["--help"]:
            args = build_parser().parse_args(argv[3:])  # every flag exists as written
            assert args.model or args.policy
    # the flags the README's bullets name exist too
    flags = set(re.findall(r"`(--[a-z-]+)", section))
    known = {opt for action in build_parser()._actions for opt in action.option_strings}
    assert flags and flags <= known, flags - known


def test_dqn_model_files_are_served_and_checked_on_reload(tmp_path):
    """A DQN .pt goes through the safe loader; a replacement with another action set is
    refused once and the old model keeps serving; a good one is swapped in."""
    import torch

    from rl_autoscaling.algorithms.dqn.model import build_q_network, save_dqn_model
    from rl_autoscaling.deploy.policy_source import ModelSource
    from rl_autoscaling.observation import DEFAULT_HIGH, DEFAULT_LOW

    def write(path, actions, seed):
        torch.manual_seed(seed)
        net = build_q_network(9, [8], actions)
        return save_dqn_model(path, state_dict=net.state_dict(), obs_low=DEFAULT_LOW,
                              obs_high=DEFAULT_HIGH, hidden_layers=[8], action_size=actions)

    path = write(tmp_path / "dqn_best.pt", 3, 0)
    source = ModelSource.from_file(path, action_size=3)
    obs = np.zeros(9, dtype=np.float32)
    obs[Obs.WORKERS] = 4
    assert source.identity.policy == "DQN" and 0 <= source.policy.act(obs, {}) < 3
    assert source.poll(obs, {}) is None  # unchanged
    old = source.identity.sha256
    write(tmp_path / "next.pt", 5, 1).replace(path)  # atomic rename, wrong action set
    kind, reason = source.poll(obs, {})
    assert kind == "refused" and "5 actions" in reason
    assert source.poll(obs, {}) is None and source.identity.sha256 == old  # refused once
    write(tmp_path / "next.pt", 3, 2).replace(path)
    assert source.poll(obs, {})[0] == "reloaded" and source.identity.sha256 != old
    assert source.reloads == 1 and source.refusals == 1
