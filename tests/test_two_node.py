"""A smoke Tune experiment on a two-node ``ray.cluster_utils.Cluster`` (two 2-CPU nodes on this
machine): DQN with two remote env runners of two vector envs each, whose trial (1 CPU + 1 CPU per
runner, packed) cannot fit on one node, so the runners land on both nodes; the exported run still
holds the training episodes those remote runners finished, and the four env copies play four
distinct workload streams, the same ones when the experiment runs again (the trainable reports
them, read inside the runners: ``env_streams.farm_env_streams``).

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

from rl_autoscaling.common.rollout import training_seed

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600
TRAINING_KEYS = {"episode", "steps", "total_reward", "final_qos", "epsilon", "mean_workers"}

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import ray
    from ray.cluster_utils import Cluster

    sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
    from env_streams import farm_env_streams
    import rl_autoscaling.service.tune as service

    out, storage, runs = sys.argv[1:4]
    dashboard_port, agent_port = map(int, sys.argv[4:6])

    service_trainable_class = service.trainable_class

    def trainable_class(algo):  # the service's trainable, reporting its env copies' streams
        base = service_trainable_class(algo)

        class StreamReporting(base):
            def step(self):
                result = super().step()
                result["env_streams"] = [c for runner in self.env_runner_group.foreach_env_runner(
                    farm_env_streams, local_env_runner=False) for c in runner]
                return result

        StreamReporting.__name__ = StreamReporting.__qualname__ = base.__name__
        return StreamReporting

    service.trainable_class = trainable_class
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": dashboard_port, "dashboard_agent_listen_port": agent_port})
    try:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])

        def experiment(storage, runs):
            return service.main([
                "--algo", "dqn", "--smoke", "--address", cluster.address,
                "--set", "resources.num_env_runners=2",
                "--set", "resources.num_envs_per_env_runner=2",
                "--set", "stop.training_iteration=4", "--storage-path", storage,
                "--output", runs])

        code = experiment(storage, runs)

        from ray.util.state import list_actors
        runners = list_actors(filters=[("class_name", "=", "SingleAgentEnvRunner")],
                              detail=True, limit=1000, raise_on_missing_output=False)
        trainables = list_actors(filters=[("class_name", "=", "DQNFarm")], detail=True,
                                 limit=1000, raise_on_missing_output=False)
        # the same experiment again: its env copies must play the same streams
        again = experiment(storage + "_again", runs + "_again")
        json.dump({"code": code, "again": again, "nodes": nodes,
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

    # Two runners (one per node) x two vector envs: four env copies, four distinct workload
    # streams (seeds and arrivals) at every iteration and over the episodes, each the copy's
    # own training seed; the same experiment again plays the same streams.
    assert report["again"] == 0, log[-6000:]
    streams = _env_streams(rows)
    (trial_again,) = [p for p in (tmp_path / "tune_again" / "dqn").iterdir() if p.is_dir()]
    rows_again = [json.loads(line) for line in
                  (trial_again / "result.json").read_text().splitlines() if line.strip()]
    assert _env_streams(rows_again) == streams
    for copies in streams:
        assert sorted(tuple(copy[:2]) for copy, _, _, _ in copies) == [(1, 0), (1, 1), (2, 0),
                                                                        (2, 1)]
        assert len({seed for _, _, seed, _ in copies}) == 4
        assert len({arrivals for _, _, _, arrivals in copies}) == 4
    episodes = {(tuple(copy), n): (seed, arrivals)
                for copies in streams for copy, n, seed, arrivals in copies}
    assert len({seed for seed, _ in episodes.values()}) == len(episodes)
    assert len({arrivals for _, arrivals in episodes.values()}) == len(episodes)
    assert len({n for _, n in episodes}) > 1  # several episodes per copy
    task_seed = json.loads((trial / "params.json").read_text())["env_config"]["task_seed"]
    for ((worker, vector, _), n), (seed, _) in episodes.items():
        assert seed == training_seed(task_seed, n - 1, worker, vector)


def _env_streams(rows: list[dict]) -> list[list]:
    """Per result row, its env copies' streams (``env_streams.farm_env_streams``), by copy."""
    return [sorted(r["env_streams"]) for r in rows]
