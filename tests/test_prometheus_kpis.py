"""The KPI gauges as an operator's Prometheus and Grafana see them: a real Prometheus (Debian's
``prometheus``) scrapes the metrics export port of a local Ray head (free ports, token
authentication) every second while ``python -m rl_autoscaling.tune --address <head> --name
<experiment> --set seeds=2`` trains two SARSA smoke trials (two training seeds); then every
query of the trials' panels in the Grafana dashboard (``cluster/grafana``) answers one series
per trial, labelled with the experiment's name and the trial's name (as Tune names it), and the
trial selector's query lists both trials.

The head's workers report their metrics every second (``RAY_metrics_report_interval_ms``; the
default is 10 s, longer than a smoke trial); Ray keeps a gauge for two report intervals after
its last report, so the queries ask for the whole run (a range query), as Grafana's panels do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import RayHead, pids_using
from prometheus_server import PrometheusServer

from rl_autoscaling.service.kpis import KPI_NAMES, METRIC_PREFIX

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "cluster" / "grafana" / "rl_autoscaling_kpis.json"
#: Grafana's $__rate_interval: 4 scrape intervals at least
RATE_INTERVAL = "4s"

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def scraped_head(tmp_path):
    head = RayHead(num_cpus=2, env={"PYTHONPATH": str(ROOT),
                                    "RAY_metrics_report_interval_ms": "1000"})
    prometheus = None
    try:
        prometheus = PrometheusServer([f"127.0.0.1:{head.metrics_port}"],
                                      tmp_path / "prometheus").start()
        head.wait_ready()
        prometheus.wait_ready()
        prometheus.wait_scraped()
        yield head, prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        head.stop()
    assert not pids_using(head.temp_dir), "processes of the test's Ray head survived"


def panel_queries(experiment: str) -> list[tuple[str, str]]:
    """(title, PromQL) of every dashboard panel of the trials (those that select ``$experiment``;
    the controller row's panels are about ``python -m rl_autoscaling.serve``), with its
    variables set as Grafana would for this experiment, all trials and all algorithms."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert re.escape(experiment) == experiment  # Grafana would escape it
    values = {"$experiment": experiment, "$trial": ".*", "$algo": ".*",
              "$__rate_interval": RATE_INTERVAL}
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            if "$experiment" not in expr:
                continue
            for name, value in values.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, expr
            out.append((panel["title"], expr))
    return out


def test_every_dashboard_panel_has_one_series_per_trial_of_the_experiment(scraped_head,
                                                                           tmp_path):
    head, prometheus = scraped_head
    experiment = "kpi_e2e"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0",
           **head.auth_env}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "rl_autoscaling.tune", "--algo", "sarsa", "--smoke",
         "--address", head.gcs, "--name", experiment, "--set", "seeds=2",
         "--storage-path", str(tmp_path / "tune"), "--output", str(tmp_path / "runs")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + head.output()
    time.sleep(2.5)  # the last report and scrape
    end = time.time()
    # Tune's trial names, e.g. SarsaLambdaFarm_1a2b3_00000 (each trial directory starts so)
    trial_dirs = [p.name for p in (tmp_path / "tune" / experiment).iterdir() if p.is_dir()]
    trials = {re.match(r"^([A-Za-z]+_[0-9a-f]+_\d{5})_", d).group(1) for d in trial_dirs}
    assert len(trials) == 2, trial_dirs

    queries = panel_queries(experiment)
    # the panels query every KPI metric the trials export (kpis.py; Ray's "ray_" prefix)
    assert {f"ray_{METRIC_PREFIX}{name}" for name in KPI_NAMES} | {
        "ray_rl_autoscaling_episodes_total"} <= {
        m for _, expr in queries for m in re.findall(r"ray_rl_autoscaling_\w+", expr)}
    for title, expr in queries:
        series = prometheus.query_range(expr, start, end)
        labels = [s["metric"] for s in series]
        detail = (title, expr, labels)
        assert len(labels) == 2, detail
        assert {label["trial"] for label in labels} == trials, detail
        assert all(label["experiment"] == experiment for label in labels), detail
        assert len({label["algo"] for label in labels}) == 1 and labels[0]["algo"] != "-"
        assert all(s["values"] for s in series), detail
    # the dashboard's trial selector lists both trials of the experiment
    selector = f'ray_rl_autoscaling_episodes_total{{experiment="{experiment}"}}'
    listed = prometheus.get("label/trial/values", **{"match[]": selector}, start=start,
                            end=end)
    assert set(listed) == trials
