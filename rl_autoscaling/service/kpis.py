"""Autoscaling KPIs in Tune results and in the Ray dashboard (Ray custom metrics).

``AutoscalingCallbacks`` (set on every Tune trial's AlgorithmConfig) makes both algorithms
report the same things:

* ``result["training_episodes"]``: the ``training_metrics.json`` records of the episodes that
  finished during the iteration (SARSA writes them itself; for DQN they are collected from the
  ``DqnTrainingEnv`` wrappers of the local env runner and of any remote env runners);
* ``result["evaluation"]``: the ``evaluation_metrics.json`` checkpoint record (``episode``,
  ``eval_episodes``, ``mean_X`` / ``std_X``) on evaluation iterations;
* ``result["autoscaling"]``: the iteration's mean final QoS, mean workers, scaling actions and
  reward, so Tune's CSV/JSON/TensorBoard logs and progress table show them;
* ``result["eval_score"]``, ``result["eval_final_qos"]``, ``result["eval_mean_workers"]``
  (top-level, from iteration 1, so ``progress.csv`` has the columns): the latest greedy
  evaluation's SLO-aware score (:func:`eval_score`: the SLO met, then the fewest workers) and
  its two inputs; NaN before the first evaluation. The default Tune metric is ``eval_score``;
* Ray custom metrics (``ray.util.metrics``) ``rl_autoscaling_episode_final_qos``,
  ``..._mean_workers``, ``..._scaling_actions``, ``..._reward`` (gauges, tagged with the
  algorithm, the Tune experiment's name (``--name``) and the trial's name, e.g.
  ``SarsaLambdaFarm_1a2b3_00000`` as in Tune's progress table) and the counter
  ``rl_autoscaling_episodes_total``: they appear in the dashboard's
  Metrics view and in the node's Prometheus export (prefixed ``ray_``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from ..common import ranking

KPI_NAMES = ("final_qos", "mean_workers", "scaling_actions", "reward")
TAG_KEYS = ("algo", "experiment", "trial")  # the Tune experiment's and the trial's names
METRIC_PREFIX = "rl_autoscaling_episode_"
_METRICS: dict[str, Any] = {}


def _metrics() -> dict[str, Any]:
    """Create the Ray metrics once per process (they must be made after Ray is up)."""
    if not _METRICS:
        from ray.util.metrics import Counter, Gauge

        help_text = {
            "final_qos": "Share of an episode's tasks that met their deadline",
            "mean_workers": "Mean worker count over an episode",
            "scaling_actions": "Scaling actions applied in an episode",
            "reward": "Total reward of an episode",
        }
        for name in KPI_NAMES:
            _METRICS[name] = Gauge(METRIC_PREFIX + name, description=help_text[name],
                                   tag_keys=TAG_KEYS)
        _METRICS["episodes"] = Counter("rl_autoscaling_episodes_total",
                                       description="Training episodes finished",
                                       tag_keys=TAG_KEYS)
    return _METRICS


def episode_kpis(record: Mapping[str, Any]) -> dict[str, float]:
    """The dashboard KPIs of one ``training_metrics.json`` record."""
    return {
        "final_qos": float(record.get("final_qos", 0.0)),
        "mean_workers": float(record.get("mean_workers", record.get("max_workers", 0.0))),
        "scaling_actions": float(record.get("scale_up_count", 0) + record.get("scale_down_count", 0)),
        "reward": float(record.get("total_reward", 0.0)),
    }


def publish(records: Sequence[Mapping[str, Any]], algo: str, experiment: str = "-",
            trial: str = "-") -> None:
    """Set the gauges to each finished episode's KPIs, in order, and count the episodes."""
    if not records:
        return
    metrics = _metrics()
    tags = {"algo": algo, "experiment": experiment or "-", "trial": trial or "-"}
    for record in records:
        for name, value in episode_kpis(record).items():
            metrics[name].set(value, tags=tags)
    metrics["episodes"].inc(len(records), tags=tags)


def summarise(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Means of the KPIs over an iteration's episodes."""
    if not records:
        return {}
    kpis = [episode_kpis(r) for r in records]
    return {f"{name}_mean": float(np.mean([k[name] for k in kpis])) for name in KPI_NAMES}


EVAL_COLUMNS = ("eval_score", "eval_final_qos", "eval_mean_workers")
SLO_MET_BONUS = 1000.0


def eval_score(evaluation: Mapping[str, Any], target_qos: float) -> float:
    """The score of a greedy evaluation record (``evaluation_metrics.json``): the project's
    one ranking rule as a number (:func:`rl_autoscaling.common.ranking.score`): ``1000 -
    mean_workers`` when the SLO is met by the QoS lower bound, else that bound minus 1, so
    every evaluation meeting the SLO beats every one that does not, among those fewer workers
    win, and among the others the higher QoS. NaN when the record has no final QoS."""
    return ranking.score(ranking.Evaluation.of(evaluation), target_qos, bonus=SLO_MET_BONUS)


def _mean_workers(evaluation: Mapping[str, Any]) -> float | None:
    """Mean workers of an evaluation record: ``mean_mean_workers`` in a checkpoint evaluation
    (mean over episodes of each episode's mean), ``mean_workers`` in RLlib's metrics."""
    value = evaluation.get("mean_mean_workers", evaluation.get("mean_workers"))
    return None if value is None else float(value)


def _target_qos(algorithm) -> float:
    cached = getattr(algorithm, "_farm_target_qos", None)
    if cached is None:
        from ..algorithms.dqn.training_env import WRAPPER_KEYS
        from ..env import OpenFaaSAutoscalingEnv

        # the farm's keys only (DQN's training env adds ``WRAPPER_KEYS``)
        env_config = {k: v for k, v in dict(algorithm.config.env_config or {}).items()
                      if k not in WRAPPER_KEYS}
        cached = OpenFaaSAutoscalingEnv.farm_config_of(env_config).reward.slo_cost.qos_target
        algorithm._farm_target_qos = cached
    return float(cached)


def evaluation_columns(algorithm, result: dict) -> dict[str, float]:
    """``EVAL_COLUMNS`` for this iteration: from this iteration's evaluation if it ran, else
    the latest one's (kept on the algorithm), else NaN."""
    evaluation = result.get("evaluation") or {}
    if "mean_final_qos" in evaluation:
        algorithm._farm_eval_columns = {
            "eval_score": eval_score(evaluation, _target_qos(algorithm)),
            "eval_final_qos": float(evaluation["mean_final_qos"]),
            "eval_mean_workers": float(_mean_workers(evaluation) or float("nan")),
        }
    return dict(getattr(algorithm, "_farm_eval_columns", None)
                or {k: float("nan") for k in EVAL_COLUMNS})


def _algo_name(algorithm) -> str:
    """The ``--algo`` name of a trial's algorithm (its class is named by the trial prefix)."""
    from ..algorithms.registry import algorithm_of_trial

    desc = algorithm_of_trial(type(algorithm).__name__ + "_")
    return desc.name if desc else type(algorithm).__name__.lower()


class AutoscalingCallbacks(RLlibCallback):
    """Per-iteration episode records, evaluation records and dashboard KPIs."""

    def on_train_result(self, *, algorithm, metrics_logger=None, result: dict, **kwargs) -> None:
        if "training_episodes" not in result:
            result["training_episodes"] = _dqn_training_records(algorithm, result)
        records = result["training_episodes"]
        info = getattr(algorithm, "_trial_info", None)  # Tune's trial (None outside Tune)
        publish(records, _algo_name(algorithm), getattr(info, "experiment_name", "-"),
                getattr(info, "trial_name", "-"))
        result["autoscaling"] = summarise(records)
        result.update(evaluation_columns(algorithm, result))
        buffer = getattr(algorithm, "local_replay_buffer", None)
        if buffer is not None:
            from ..algorithms.dqn.learner import replay_buffer_size

            result["replay_buffer_size"] = replay_buffer_size(algorithm)
            restored = getattr(algorithm, "_restored_replay_buffer_size", None)
            if restored is not None:  # reported once, on the first iteration after a restore
                result["replay_buffer_restored_size"] = restored
                algorithm._restored_replay_buffer_size = None

    def on_evaluate_end(self, *, algorithm, metrics_logger=None, evaluation_metrics: dict,
                        **kwargs) -> None:
        if "mean_final_qos" in evaluation_metrics:
            return  # SARSA reports the checkpoint record itself
        from ..algorithms.dqn.training_env import pop_finished_traces
        from ..common.metrics import checkpoint_evaluation

        traces = pop_finished_traces(getattr(algorithm, "eval_env_runner", None))
        if traces:
            evaluation_metrics.update(checkpoint_evaluation(episodes_done(algorithm), traces))


def _pop_training_traces(algorithm) -> list:
    """Finished training-episode traces of the local env runner and, with remote env runners
    (``num_env_runners > 0``), of every healthy remote one (in runner order)."""
    from ..algorithms.dqn.training_env import pop_finished_traces

    group = getattr(algorithm, "env_runner_group", None)
    if group is not None and group.num_remote_env_runners() > 0:
        per_runner = group.foreach_env_runner(pop_finished_traces, local_env_runner=True)
        return [t for traces in per_runner for t in (traces or [])]
    return pop_finished_traces(getattr(algorithm, "env_runner", None))


def _dqn_training_records(algorithm, result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Training records of the episodes DQN finished this iteration (all env runners)."""
    from ..algorithms.dqn.training_env import training_records

    traces = _pop_training_traces(algorithm)
    if not traces:
        return []
    learner = result.get("learners", {}).get("default_policy", {})
    loss_sum, loss_count = learner.get("loss_sum"), learner.get("loss_count")
    mean_loss = (float(loss_sum) / float(loss_count) if loss_sum is not None and loss_count
                 else None)
    sampled = int(result.get("env_runners", {}).get("num_env_steps_sampled_lifetime", 0))
    start = sampled - sum(t.steps for t in traces)
    first = episodes_done(algorithm) - len(traces) + 1
    return training_records(traces, first, start, algorithm.config.epsilon, mean_loss)


def episodes_done(algorithm) -> int:
    """Training episodes finished so far (SARSA counts them itself; RLlib's lifetime counter
    survives restores)."""
    if hasattr(algorithm, "episodes_done"):
        return int(algorithm.episodes_done)
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_EPISODES_LIFETIME

    return int(algorithm.metrics.peek((ENV_RUNNER_RESULTS, NUM_EPISODES_LIFETIME), default=0))
