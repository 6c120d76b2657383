"""Experiment specs for ``python -m rl_autoscaling.tune``: YAML -> validated, with search spaces.

A spec file (see ``tune_configs/``) has these sections; unknown keys are errors naming them::

    algo: dqn                      # sarsa | dqn
    name: dqn                      # experiment directory under --storage-path
    num_samples: 1
    seeds: 3                       # training seeds of each sample, trained side by side
    metric: eval_score             # what picks the best trial (and drives scheduler/search)
    mode: max
    scheduler: {type: asha, grace_period: 2, reduction_factor: 2}   # or fifo (default)
    search: {type: optuna, max_concurrent: 2}                       # or basic (default)
    stop: {training_iteration: 120}
    checkpoint: {frequency: 10, num_to_keep: 3, at_end: true}
    evaluation: {interval: 10, duration: 5}
    resources: {num_env_runners: 0}
    failure: {max_failures: 2}
    env_config: {max_steps: 30, step_duration: 8, ...}   # any env arg or farm-config key
    training: {lr: 3.0e-4, ...}                          # algorithm hyperparameters
    smoke: {stop.training_iteration: 2, ...}             # overrides applied by --smoke

Any value in ``training`` or ``env_config`` may be a search space:
``{grid: [a, b]}``, ``{choice: [a, b]}``, ``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}``,
``{randint: [lo, hi]}``, ``{quniform: [lo, hi, q]}``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..config import ConfigError, apply_overrides

TOP_KEYS = {"algo", "name", "num_samples", "seeds", "metric", "mode", "stop", "checkpoint",
            "evaluation", "resources", "failure", "env_config", "training", "smoke",
            "scheduler", "search"}
SECTION_KEYS = {
    "checkpoint": {"frequency", "num_to_keep", "at_end"},
    "evaluation": {"interval", "duration"},
    "resources": {"num_env_runners", "num_cpus_per_env_runner", "num_envs_per_env_runner"},
    "failure": {"max_failures"},
    "scheduler": {"type", "grace_period", "max_t", "reduction_factor"},
    "search": {"type", "max_concurrent"},
    "stop": {"training_iteration", "time_total_s", "timesteps_total",
             "env_runners/episode_return_mean", "env_runners/num_env_steps_sampled_lifetime"},
}
SCHEDULERS = ("fifo", "asha")
SEARCHERS = ("basic", "optuna")  # basic: Tune's grid/random variant generator
SPACES = ("grid", "choice", "uniform", "loguniform", "randint", "quniform")
TUNE_CONFIG_DIR = Path(__file__).resolve().parent / "tune_configs"


@dataclass
class ExperimentSpec:
    algo: str
    name: str
    num_samples: int = 1
    seeds: int = 3          # training seeds trained side by side (each sample runs all of them)
    metric: str = "eval_score"  # service.kpis.eval_score of the latest greedy evaluation
    mode: str = "max"
    stop: dict[str, Any] = field(default_factory=lambda: {"training_iteration": 100})
    checkpoint: dict[str, Any] = field(default_factory=lambda: {
        "frequency": 10, "num_to_keep": 3, "at_end": True})
    evaluation: dict[str, Any] = field(default_factory=lambda: {"interval": 10, "duration": 3})
    resources: dict[str, Any] = field(default_factory=lambda: {"num_env_runners": 0})
    failure: dict[str, Any] = field(default_factory=lambda: {"max_failures": 2})
    scheduler: dict[str, Any] = field(default_factory=lambda: {"type": "fifo"})
    search: dict[str, Any] = field(default_factory=lambda: {"type": "basic"})
    env_config: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


def is_space(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in SPACES


def to_tune_space(value: Any, path: str) -> Any:
    """Turn ``{grid: [...]}`` etc. into Ray Tune search-space objects (recursively)."""
    from ray import tune

    if is_space(value):
        (kind, args), = value.items()
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{path}.{kind} needs a non-empty list")
        try:
            if kind == "grid":
                return tune.grid_search(args)
            if kind == "choice":
                return tune.choice(args)
            lo, hi = args[0], args[1]
            if kind == "uniform":
                return tune.uniform(lo, hi)
            if kind == "loguniform":
                return tune.loguniform(lo, hi)
            if kind == "randint":
                return tune.randint(lo, hi)
            return tune.quniform(lo, hi, args[2])
        except (IndexError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}.{kind}: bad bounds {args!r} ({exc})") from None
    if isinstance(value, Mapping):
        return {k: to_tune_space(v, f"{path}.{k}") for k, v in value.items()}
    return value


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise ConfigError(f"unknown key {prefix}{key} (allowed: {', '.join(sorted(allowed))})")


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set a.b=1`` pairs -> overrides; values are parsed as YAML (numbers, lists, ...)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML") from None
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        out[key.strip()] = value
    return out


def load_spec(path: str | Path, algo: str, smoke: bool = False,
              overrides: Mapping[str, Any] | None = None,
              training_keys: set[str] | None = None,
              base: Mapping[str, Any] | None = None) -> ExperimentSpec:
    """Read and validate a spec file over ``base`` (the recipe's sections: the file's values
    win, section by section); apply ``smoke`` overrides, then ``overrides``."""
    path = Path(path)
    data = _merge(base or {}, _read_yaml(path))
    _check_keys(data, TOP_KEYS, "")
    if data.get("algo", algo) != algo:
        raise ConfigError(f"tune config {path} is for algo {data['algo']!r}, not {algo!r}")
    smoke_overrides = data.pop("smoke", {}) or {}
    data = copy.deepcopy(data)
    if smoke:
        data = apply_overrides(data, smoke_overrides)
    if overrides:
        data = apply_overrides(data, overrides)
    _check_sections(data, training_keys)
    return _build_spec(data, algo)


def _merge(base: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` over ``base``: mappings merged key by key (one level), other values replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in data.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "smoke":
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read tune config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"tune config {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"tune config {path} must hold a mapping")
    return data


def _check_sections(data: Mapping[str, Any], training_keys: set[str] | None) -> None:
    _check_keys(data, TOP_KEYS - {"smoke"}, "")
    for section in (*SECTION_KEYS, "env_config", "training"):
        if not isinstance(data.get(section, {}), Mapping):
            raise ConfigError(f"{section} must be a mapping")
    for section, allowed in SECTION_KEYS.items():
        _check_keys(data.get(section, {}), allowed, section)
    if training_keys is not None:
        _check_keys(data.get("training", {}), training_keys, "training")


def _build_spec(data: Mapping[str, Any], algo: str) -> ExperimentSpec:
    spec = ExperimentSpec(algo=algo, name=data.get("name", algo))
    for key in ("num_samples", "seeds", "metric", "mode"):
        if key in data:
            setattr(spec, key, data[key])
    for section in ("stop", "checkpoint", "evaluation", "resources", "failure", "scheduler",
                    "search"):
        getattr(spec, section).update(data.get(section, {}))
    spec.env_config = dict(data.get("env_config", {}))
    spec.training = dict(data.get("training", {}))
    for key in ("num_samples", "seeds"):
        value = getattr(spec, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
    if spec.mode not in ("max", "min"):
        raise ConfigError(f"mode must be max or min, got {spec.mode!r}")
    if spec.scheduler.get("type") not in SCHEDULERS:
        raise ConfigError(f"scheduler.type must be one of {', '.join(SCHEDULERS)}, "
                          f"got {spec.scheduler.get('type')!r}")
    if spec.search.get("type") not in SEARCHERS:
        raise ConfigError(f"search.type must be one of {', '.join(SEARCHERS)}, "
                          f"got {spec.search.get('type')!r}")
    return spec
