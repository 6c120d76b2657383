"""Scalers against stand-ins: a local HTTP server playing the Kubernetes API server (driven by
the real ``kubernetes`` client) or the OpenFaaS gateway, and a real ``redis-server`` carrying
the farm's SYN/ACK and START messages."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from redis_server import RedisServer

from rl_autoscaling.config import load_config
from rl_autoscaling.farm.functions.protocol import (
    SCALE_DOWN,
    SYN,
    FarmKeys,
    LiveFarmError,
    RedisLink,
    ack,
    loads,
    start_announcement,
)
from rl_autoscaling.farm.scalers import (
    DELETION_COST,
    KubernetesScaler,
    LocalProcessScaler,
    OpenFaaSScaler,
    make_scaler,
)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

NS = "openfaas-fn"
SCALE_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/worker/scale"
# Fast SYN/ACK polling: 3 polls of 1 farm second at 100x real time.
CFG = load_config(None, {"timing.ack_max_polls": 3, "timing.ack_poll_interval": 1.0})
TIME_SCALE = 0.01


class FakeServer:
    """Records every request; ``respond(method, path, query, body)`` -> (status, json)."""

    def __init__(self, respond):
        self.requests: list[dict] = []
        self.respond = respond
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                rec = {"method": self.command, "path": parts.path,
                       "query": parse_qs(parts.query), "body": body,
                       "content_type": self.headers.get("Content-Type"),
                       "authorization": self.headers.get("Authorization")}
                outer.requests.append(rec)
                status, payload = outer.respond(rec)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_POST = _handle

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def redis_link():
    srv = RedisServer().start()
    link = RedisLink(srv.url, tries=2, backoff=0.05)
    yield link
    link.close()
    srv.stop()


def ack_responder(link: RedisLink, pod: str, stop: threading.Event) -> threading.Thread:
    """A stand-in worker: answers each SCALE_DOWN SYN with an ACK naming ``pod``."""
    keys = FarmKeys.from_config(CFG)

    def run():
        while not stop.is_set():
            item = link.client.blpop([keys.worker_control_syn], timeout=0.1)
            if item:
                msg = loads(item[1])
                assert msg["type"] == SCALE_DOWN and msg["action"] == SYN
                link.client.rpush(keys.worker_control_ack, ack(pod, msg.get("request_id")))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class FakeKubernetes:
    """Deployment scale subresource + pod patch; a scale-up makes new 'pods' announce."""

    def __init__(self, link: RedisLink, replicas: int = 3):
        self.replicas = replicas
        self.link = link
        self.keys = FarmKeys.from_config(CFG)
        self.server = FakeServer(self.respond)

    def scale(self):
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "worker", "namespace": NS},
                "spec": {"replicas": self.replicas}, "status": {"replicas": self.replicas}}

    def respond(self, rec):
        if rec["path"] == SCALE_PATH and rec["method"] == "GET":
            return 200, self.scale()
        if rec["path"] == SCALE_PATH and rec["method"] == "PATCH":
            new = rec["body"]["spec"]["replicas"]
            for i in range(self.replicas, new):  # the kubelet starts the new pods
                self.link.client.rpush(self.keys.worker_start, start_announcement(f"worker-new-{i}"))
            self.replicas = new
            return 200, self.scale()
        if rec["path"].startswith(f"/api/v1/namespaces/{NS}/pods/") and rec["method"] == "PATCH":
            name = rec["path"].rsplit("/", 1)[1]
            return 200, {"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": name, "namespace": NS,
                                      **rec["body"]["metadata"]}}
        return 404, {"kind": "Status", "status": "Failure", "code": 404}


@pytest.fixture
def k8s(redis_link):
    from kubernetes import client

    fake = FakeKubernetes(redis_link)
    api = client.ApiClient(client.Configuration(host=fake.server.url))
    scaler = KubernetesScaler(NS, api_client=api)
    scaler.bind(redis_link, FarmKeys.from_config(CFG), CFG, TIME_SCALE)
    yield fake, scaler
    fake.server.close()
    api.close()


def test_kubernetes_scale_up_reads_then_patches_the_scale(k8s):
    fake, scaler = k8s
    assert scaler.scale_up(2) == 2
    reqs = [(r["method"], r["path"], r["body"]) for r in fake.server.requests]
    assert reqs == [("GET", SCALE_PATH, None),
                    ("PATCH", SCALE_PATH, {"spec": {"replicas": 5}})]
    # What the real client sends for a dict body.
    assert fake.server.requests[1]["content_type"] == "application/strategic-merge-patch+json"
    assert scaler.observed_workers() == 5


def test_kubernetes_scale_down_annotates_the_acked_pod_before_lowering_replicas(k8s, redis_link):
    fake, scaler = k8s
    stop = threading.Event()
    ack_responder(redis_link, "worker-5d8f7-abcde", stop)
    try:
        assert scaler.scale_down(1) == 1
    finally:
        stop.set()
    pod_path = f"/api/v1/namespaces/{NS}/pods/worker-5d8f7-abcde"
    reqs = [(r["method"], r["path"], r["body"]) for r in fake.server.requests]
    assert reqs == [
        ("PATCH", pod_path, {"metadata": {"annotations": {DELETION_COST: "-1000"}}}),
        ("GET", SCALE_PATH, None),
        ("PATCH", SCALE_PATH, {"spec": {"replicas": 2}}),
    ]
    assert DELETION_COST == "controller.kubernetes.io/pod-deletion-cost"
    assert fake.replicas == 2


def test_kubernetes_scale_down_without_ack_changes_nothing(k8s, redis_link):
    fake, scaler = k8s
    assert scaler.scale_down(1) == 0  # nobody answers: withdrawn after 3 polls
    assert fake.server.requests == []
    assert redis_link.client.llen("worker_control_syn_queue") == 0  # the SYN was withdrawn
    assert fake.replicas == 3


def test_kubernetes_api_errors_become_live_farm_errors(redis_link):
    from kubernetes import client

    server = FakeServer(lambda rec: (403, {"kind": "Status", "code": 403}))
    api = client.ApiClient(client.Configuration(host=server.url))
    try:
        scaler = KubernetesScaler(NS, api_client=api)
        scaler.bind(redis_link, FarmKeys.from_config(CFG), CFG, TIME_SCALE)
        with pytest.raises(LiveFarmError, match="read scale of deployment openfaas-fn/worker"):
            scaler.scale_up(1)
    finally:
        server.close()
        api.close()


def test_openfaas_gateway_scaler_posts_scale_function_with_basic_auth(redis_link):
    state = {"replicas": 2}
    keys = FarmKeys.from_config(CFG)

    def respond(rec):
        if rec["method"] == "GET" and rec["path"] == "/system/function/worker":
            return 200, {"name": "worker", "replicas": state["replicas"],
                         "availableReplicas": state["replicas"]}
        if rec["method"] == "POST" and rec["path"] == "/system/scale-function/worker":
            for i in range(state["replicas"], rec["body"]["replicas"]):
                redis_link.client.rpush(keys.worker_start, start_announcement(f"worker-{i}"))
            state["replicas"] = rec["body"]["replicas"]
            return 202, {}
        return 404, {}

    server = FakeServer(respond)
    stop = threading.Event()
    try:
        scaler = OpenFaaSScaler(server.url, username="admin", password="s3cret")
        scaler.bind(redis_link, keys, CFG, TIME_SCALE)
        assert scaler.scale_up(1) == 1
        ack_responder(redis_link, "worker-abc", stop)
        assert scaler.scale_down(1) == 1
        assert scaler.observed_workers() == 2
    finally:
        stop.set()
        server.close()
    auth = "Basic " + base64.b64encode(b"admin:s3cret").decode()
    assert all(r["authorization"] == auth for r in server.requests)
    posts = [(r["path"], r["body"]) for r in server.requests if r["method"] == "POST"]
    assert posts == [("/system/scale-function/worker", {"serviceName": "worker", "replicas": 3}),
                     ("/system/scale-function/worker", {"serviceName": "worker", "replicas": 2})]


def test_make_scaler_uses_the_config_names():
    cfg = load_config(None, {"functions.worker": "farm-worker",
                             "functions.gateway_url": "http://gw:8080"})
    assert isinstance(make_scaler("local", cfg), LocalProcessScaler)
    of = make_scaler("openfaas", cfg)
    assert (of.gateway_url, of.worker) == ("http://gw:8080", "farm-worker")
    with pytest.raises(ValueError, match="unknown scaler"):
        make_scaler("swarm", cfg)


@pytest.mark.slow
def test_local_scaler_starts_scales_and_stops_processes(redis_link):
    """Real processes: start, scale up (announced), scale down by SYN/ACK, stop."""
    cfg = load_config(None, {"timing.ack_max_polls": 50})
    keys = FarmKeys.from_config(cfg)
    scaler = LocalProcessScaler(emulate_latency=False)
    scaler.bind(redis_link, keys, cfg, 0.05)
    try:
        redis_link.client.delete(*keys.all())
        scaler.start_farm(2, seed=1)
        assert scaler.observed_workers() == 2
        assert scaler.scale_up(1) == 1 and scaler.observed_workers() == 3
        assert scaler.scale_down(2) == 2
        assert scaler.observed_workers() == 1
        acks = redis_link.client.lrange(keys.worker_control_ack, 0, -1)
        assert acks == []  # consumed by the scaler
        assert scaler.health() is None
    finally:
        scaler.close()
    assert scaler.workers == {} and scaler.components == {}
