"""Observability: the Grafana dashboard in cluster/grafana queries only metrics the service
exports (as kpis.py defines them, with Ray's ``ray_`` Prometheus prefix; the controller's as
``serve`` exports them on /metrics), and the KPI metrics carry the algorithm, experiment and
trial tags the dashboard groups by."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rl_autoscaling.service import kpis

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "cluster" / "grafana" / "rl_autoscaling_kpis.json"
RAY_PROMETHEUS_PREFIX = "ray_"
# Labels Ray itself puts on every custom metric sample.
RAY_LABELS = {"Component", "NodeAddress", "SessionName", "Version", "WorkerId"}


class _Recorder:
    """Stands in for ray.util.metrics.Gauge / Counter: records definitions and samples."""

    made: list = []  # noqa: RUF012 - reset by the fixture

    def __init__(self, name, description="", tag_keys=()):
        self.name, self.tag_keys, self.samples = name, tuple(tag_keys), []
        _Recorder.made.append(self)

    def set(self, value, tags=None):
        self.samples.append((value, dict(tags or {})))

    inc = set


@pytest.fixture
def recorded_metrics(monkeypatch):
    import ray.util.metrics as ray_metrics

    _Recorder.made = []
    monkeypatch.setattr(ray_metrics, "Gauge", _Recorder)
    monkeypatch.setattr(ray_metrics, "Counter", _Recorder)
    monkeypatch.setattr(kpis, "_METRICS", {})
    return kpis._metrics()


def exported(metrics) -> dict[str, tuple[str, ...]]:
    """Prometheus name -> tag keys of every metric kpis.py defines."""
    return {RAY_PROMETHEUS_PREFIX + m.name: m.tag_keys for m in metrics.values()}


CONTROLLER_PREFIX = "rl_autoscaler_"
#: labels Prometheus adds to every scraped sample
TARGET_LABELS = {"instance", "job"}


def is_controller_panel(panel) -> bool:
    return CONTROLLER_PREFIX in json.dumps(panel.get("targets", []))


def panels(dashboard):
    for panel in dashboard["panels"]:
        yield from panels(panel) if panel.get("type") == "row" and "panels" in panel else [panel]


def test_dashboard_queries_only_exported_metrics(recorded_metrics):
    names = exported(recorded_metrics)
    assert set(names) == {f"ray_rl_autoscaling_episode_{k}" for k in kpis.KPI_NAMES} | {
        "ray_rl_autoscaling_episodes_total"}
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    queried = set()
    all_panels = [p for p in panels(dashboard) if not is_controller_panel(p)]
    assert all_panels
    for panel in all_panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            metrics = set(re.findall(r"\bray_rl_autoscaling_\w+", expr))
            assert metrics and metrics <= set(names), (panel["title"], expr)
            queried |= metrics
            # Per trial: grouped by trial, and every label used is one the metric carries.
            labels = set(re.findall(r"(\w+)\s*=~?", expr)) | set(
                re.findall(r"by \(([^)]*)\)", expr)[0].replace(" ", "").split(","))
            for metric in metrics:
                assert labels <= set(names[metric]) | RAY_LABELS, (expr, labels)
            assert "trial" in re.findall(r"by \(([^)]*)\)", expr)[0]
            assert "{{trial}}" in target["legendFormat"]
    # The KPIs asked for: final QoS, mean workers, reward and episodes/s.
    assert {"ray_rl_autoscaling_episode_final_qos", "ray_rl_autoscaling_episode_mean_workers",
            "ray_rl_autoscaling_episode_reward"} <= queried
    rates = [t["expr"] for p in all_panels for t in p["targets"]
             if "ray_rl_autoscaling_episodes_total" in t["expr"]]
    assert rates and all(e.count("rate(") == 1 for e in rates)
    # Template variables query exported metrics / labels too.
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query" and CONTROLLER_PREFIX not in json.dumps(var["query"]):
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            (metric,) = re.findall(r"\bray_rl_autoscaling_\w+", query)
            label = re.search(r",\s*(\w+)\)\s*$", query).group(1)
            assert metric in names and label in names[metric]


def test_kpi_metrics_are_tagged_with_algorithm_experiment_and_trial(recorded_metrics):
    for metric in recorded_metrics.values():
        assert metric.tag_keys == ("algo", "experiment", "trial")
    algorithm = SimpleNamespace(
        _trial_info=SimpleNamespace(experiment_name="dqn-sweep",
                                    trial_name="DQNFarm_ab12c_00003"))
    record = {"final_qos": 0.93, "mean_workers": 11.5, "total_reward": -4.0,
              "scale_up_count": 3, "scale_down_count": 1}
    kpis.AutoscalingCallbacks().on_train_result(
        algorithm=algorithm, result={"training_episodes": [record]})
    tags = {"algo": "simplenamespace", "experiment": "dqn-sweep", "trial": "DQNFarm_ab12c_00003"}
    assert recorded_metrics["final_qos"].samples == [(0.93, tags)]
    assert recorded_metrics["scaling_actions"].samples == [(4.0, tags)]
    assert recorded_metrics["episodes"].samples == [(1, tags)]
    # Outside Tune (no trial): placeholder tags, never a missing tag.
    kpis.publish([record], "sarsa")
    assert recorded_metrics["reward"].samples[-1] == (
        -4.0, {"algo": "sarsa", "experiment": "-", "trial": "-"})


def controller_exports() -> dict[str, set[str]]:
    """Sample name -> label names of what ``serve``'s /metrics exposes (every labelled child
    created once)."""
    from prometheus_client.parser import text_string_to_metric_families

    from rl_autoscaling.deploy.metrics import ControllerMetrics
    from rl_autoscaling.deploy.policy_source import ModelIdentity

    m = ControllerMetrics()
    m.decisions.labels("+1").inc()
    m.fallbacks.labels("stale").inc()
    m.serve_model(ModelIdentity("SARSA", "model.pkl", "0123456789ab", 1.0))
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def test_controller_panels_query_what_serve_exports():
    exports = controller_exports()
    dashboard = json.loads(DASHBOARD.read_text())
    controller = [p for p in panels(dashboard) if is_controller_panel(p)]
    queried = set()
    for panel in controller:
        for target in panel["targets"]:
            expr = target["expr"]
            metrics = set(re.findall(rf"\b{CONTROLLER_PREFIX}\w+", expr))
            assert metrics and metrics <= set(exports), (panel["title"], expr)
            labels = set(re.findall(r"(\w+)\s*=~?", expr)) | {
                label.strip() for group in re.findall(r"by \(([^)]*)\)", expr)
                for label in group.split(",")}
            for metric in metrics:
                assert labels <= exports[metric] | TARGET_LABELS, (expr, labels)
            assert "{{instance}}" in target["legendFormat"]
            queried |= metrics
    # workers, worker queue, windowed QoS, decisions by action, model identity, reloads,
    # fallbacks: what the issue asks the controller to show
    assert {"rl_autoscaler_workers", "rl_autoscaler_worker_queue", "rl_autoscaler_qos_window",
            "rl_autoscaler_decisions_total", "rl_autoscaler_model_info",
            "rl_autoscaler_model_reloads_total", "rl_autoscaler_fallbacks_total"} <= queried
    (var,) = [v for v in dashboard["templating"]["list"] if v["name"] == "instance"]
    assert re.findall(rf"\b{CONTROLLER_PREFIX}\w+", var["query"]["query"])[0] in exports
