"""A smoke Tune experiment on a two-node ``ray.cluster_utils.Cluster`` (two 2-CPU nodes on this
machine): DQN with two remote env runners, whose trial (1 CPU + 1 CPU per runner, packed) cannot
fit on one node, so the runners land on both nodes; the exported run still holds the training
episodes those remote runners finished.

The cluster runs in a child process with its own ``RAY_TMPDIR`` (Ray's session dirs and its
"current cluster" address file stay out of /tmp/ray, so no other ``ray.init()`` on the machine
can find it) and a token made for the test; the child shuts it down, and the test kills any
process still naming that temp dir.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from procs import free_ports, kill_pids_using

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600
TRAINING_KEYS = {"episode", "steps", "total_reward", "final_qos", "epsilon", "mean_workers"}

SCRIPT = textwrap.dedent("""
    import json, sys
    import ray
    from ray.cluster_utils import Cluster

    out, storage, runs = sys.argv[1:4]
    dashboard_port, agent_port = map(int, sys.argv[4:6])
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": dashboard_port, "dashboard_agent_listen_port": agent_port})
    try:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])

        from rl_autoscaling.service.tune import main
        code = main(["--algo", "dqn", "--smoke", "--address", cluster.address,
                     "--set", "resources.num_env_runners=2",
                     "--set", "stop.training_iteration=4",
                     "--storage-path", storage, "--output", runs])

        from ray.util.state import list_actors
        runners = list_actors(filters=[("class_name", "=", "SingleAgentEnvRunner")],
                              detail=True, limit=1000, raise_on_missing_output=False)
        trainables = list_actors(filters=[("class_name", "=", "DQNFarm")], detail=True,
                                 limit=1000, raise_on_missing_output=False)
        json.dump({"code": code, "nodes": nodes,
                   "runner_nodes": [a["node_id"] for a in runners],
                   "trainable_nodes": [a["node_id"] for a in trainables]}, open(out, "w"))
    finally:
        ray.shutdown()
        cluster.shutdown()
""")


@pytest.mark.ray
def test_smoke_experiment_spreads_env_runners_over_two_nodes(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="rl2n", dir="/tmp")  # short: Ray's socket paths
    out, storage, runs = tmp_path / "out.json", tmp_path / "tune", tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": temp_dir,
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out), str(storage), str(runs),
         *map(str, free_ports(2))],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate(timeout=60)
        kill_pids_using(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)

    assert proc.returncode == 0 and out.exists(), log[-6000:]
    report = json.loads(out.read_text())
    assert report["code"] == 0, log[-6000:]
    assert len(report["nodes"]) == 2
    # Both env runners ran, one on each node (the trial's bundles do not fit on one node).
    assert len(report["runner_nodes"]) == 2, report
    assert set(report["runner_nodes"]) == set(report["nodes"]), report
    assert len(report["trainable_nodes"]) == 1 and report["trainable_nodes"][0] in report["nodes"]

    (trial,) = [p for p in (storage / "dqn").iterdir() if p.is_dir()]
    rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()
            if line.strip()]
    assert rows[-1]["training_iteration"] == 4 and rows[-1]["done"]
    assert sorted(trial.glob("checkpoint_*"))
    # The exported run has the episodes the remote runners finished, numbered 1..n.
    (run_dir,) = runs.iterdir()
    assert run_dir.name.startswith("dqn_run_")
    training = json.loads((run_dir / "training_metrics.json").read_text())["episodes"]
    assert training, "no training episodes collected from the remote env runners"
    assert [r["episode"] for r in training] == list(range(1, len(training) + 1))
    assert len(training) == sum(len(r.get("training_episodes", [])) for r in rows)
    for rec in training:
        assert TRAINING_KEYS <= set(rec) and 0 <= rec["final_qos"] <= 1 and rec["steps"] >= 1
    assert json.loads((run_dir / "evaluation_metrics.json").read_text())["checkpoints"]
    models = {p.name for p in (run_dir / "models").iterdir()}
    assert "dqn_final.pt" in models
