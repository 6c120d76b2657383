"""Typed farm configuration, loaded from YAML and validated with errors that name the key.

``load_config()`` returns the packaged default (the original toolkit's configuration);
``load_config("my.yml", {"reward.target_qos": 0.9})`` reads a user file and applies overrides
(dotted or nested keys, the way Ray's ``env_config`` passes them). Every problem raises
``ConfigError`` with the key path, e.g. ``phase_definitions[2].phase_duration must be > 0``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from .common.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration file or override is invalid; the message names the key path."""


def _check(**rules: Any) -> dict[str, Any]:
    """Field metadata for range checks: gt, ge, le, choices, pattern."""
    return {"check": rules}


PATTERNS = ("steady", "oscillation_slow", "oscillation_fast", "spike", "ramp")
DISTRIBUTIONS = ("fixed", "uniform", "normal")
_QUEUE_NAME = r"^[A-Za-z0-9_:.\-]+$"


@dataclass(frozen=True)
class RedisConfig:
    host: str = "127.0.0.1"
    port: int = field(default=6379, metadata=_check(ge=1, le=65535))
    db: int = field(default=0, metadata=_check(ge=0))


@dataclass(frozen=True)
class QueueConfig:
    input: str = field(default="input_queue", metadata=_check(pattern=_QUEUE_NAME))
    worker: str = field(default="worker_queue", metadata=_check(pattern=_QUEUE_NAME))
    result: str = field(default="result_queue", metadata=_check(pattern=_QUEUE_NAME))
    output: str = field(default="output_queue", metadata=_check(pattern=_QUEUE_NAME))
    enqueued_total: str = field(
        default="worker_queue:enqueued_total", metadata=_check(pattern=_QUEUE_NAME)
    )
    worker_start: str = field(default="worker_start_queue", metadata=_check(pattern=_QUEUE_NAME))
    worker_control_syn: str = field(
        default="worker_control_syn_queue", metadata=_check(pattern=_QUEUE_NAME)
    )
    worker_control_ack: str = field(
        default="worker_control_ack_queue", metadata=_check(pattern=_QUEUE_NAME)
    )
    emitter_control_syn: str = field(
        default="emitter_control_syn_queue", metadata=_check(pattern=_QUEUE_NAME)
    )
    collector_control_syn: str = field(
        default="collector_control_syn_queue", metadata=_check(pattern=_QUEUE_NAME)
    )


@dataclass(frozen=True)
class FunctionsConfig:
    namespace: str = "openfaas-fn"
    gateway_url: str = "http://127.0.0.1:8080"
    emitter: str = "emitter"
    worker: str = "worker"
    collector: str = "collector"
    emitter_image: str = "rl-autoscaling/emitter:latest"
    worker_image: str = "rl-autoscaling/worker:latest"
    collector_image: str = "rl-autoscaling/collector:latest"


@dataclass(frozen=True)
class PhaseConfig:
    """One workload phase. ``multiplier`` scales ``base_rate``; pattern-specific keys below."""

    name: str
    phase_duration: float = field(metadata=_check(gt=0))
    multiplier: float = field(default=1.0, metadata=_check(ge=0))
    pattern: str = field(default="steady", metadata=_check(choices=PATTERNS))
    oscillation_min: float = field(default=0.5, metadata=_check(ge=0))
    oscillation_max: float = field(default=1.5, metadata=_check(ge=0))
    oscillation_cycles: float = field(default=1.0, metadata=_check(gt=0))
    # spike: the rate is spike_multiplier x base_rate for spike_duration seconds from spike_start.
    spike_multiplier: float = field(default=3.0, metadata=_check(ge=0))
    spike_start: float = field(default=0.0, metadata=_check(ge=0))
    spike_duration: float = field(default=10.0, metadata=_check(gt=0))
    # ramp: the rate goes linearly from ramp_from to ramp_to (x base_rate) over the phase;
    # a ramp phase must give both (no silent default end point).
    ramp_from: float | None = field(default=None, metadata=_check(ge=0))
    ramp_to: float | None = field(default=None, metadata=_check(ge=0))

    def _validate(self, path: str) -> None:
        if self.oscillation_min > self.oscillation_max:
            raise ConfigError(f"{path}.oscillation_min must be <= oscillation_max")
        if self.pattern == "ramp":
            for key in ("ramp_from", "ramp_to"):
                if getattr(self, key) is None:
                    raise ConfigError(f"{path}.{key} is required for a ramp phase")
        if self.pattern == "spike" and self.spike_start + self.spike_duration > self.phase_duration:
            raise ConfigError(
                f"{path}.spike_start + spike_duration must be <= phase_duration"
            )


GENERATOR_SHAPES = ("steady", "ramp", "day", "burst")


@dataclass(frozen=True)
class GeneratorConfig:
    """A training workload generator (domain randomisation, farm/workload.py): every episode
    draws its own phases from its seed, replacing ``phase_definitions``. The episode lasts
    U(episode_min, episode_max) seconds, filled with shapes of U(shape_min, shape_max) seconds
    drawn from ``shapes`` in a random order, at rates (x base_rate) in [rate_min, rate_max]:
    ``steady`` (one level), ``ramp`` (from the current level to a new one), ``day`` (a low
    level ramping to a peak, holding, ramping back) and ``burst`` (a quiet level with a burst
    of U(burst_min, burst_max) seconds at a high level). The first shape's rates are at most
    ``start_max`` (x base_rate): an episode opens at a load the workers at reset can serve."""

    episode_min: float = field(default=240.0, metadata=_check(gt=0))
    episode_max: float = field(default=960.0, metadata=_check(gt=0))
    shape_min: float = field(default=40.0, metadata=_check(gt=0))
    shape_max: float = field(default=240.0, metadata=_check(gt=0))
    rate_min: float = field(default=0.2, metadata=_check(ge=0))
    rate_max: float = field(default=2.5, metadata=_check(gt=0))
    burst_min: float = field(default=10.0, metadata=_check(gt=0))
    burst_max: float = field(default=30.0, metadata=_check(gt=0))
    # x1.0 = 5 tasks/s: the recipe's 12 workers at reset serve it at a load of 0.6; openings at
    # up to x2.5 cost every policy (Static 24-32 alike: 0.970 mean final QoS) tasks no count
    # could have served, since the farm adds one worker per step (docs/farm.md)
    start_max: float = field(default=1.0, metadata=_check(gt=0))
    shapes: list[str] = field(default_factory=lambda: list(GENERATOR_SHAPES))

    def _validate(self, path: str) -> None:
        for low, high in (("episode_min", "episode_max"), ("shape_min", "shape_max"),
                          ("rate_min", "rate_max"), ("burst_min", "burst_max"),
                          ("rate_min", "start_max")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(f"{path}.{low} must be <= {high}")
        if not self.shapes:
            raise ConfigError(f"{path}.shapes must list at least one shape")
        for i, shape in enumerate(self.shapes):
            if shape not in GENERATOR_SHAPES:
                raise ConfigError(f"{path}.shapes[{i}] must be one of "
                                  f"{', '.join(GENERATOR_SHAPES)}, got {shape!r}")


@dataclass(frozen=True)
class ProcessingConfig:
    model_a: float = field(default=1.7099013205346125e-07, metadata=_check(gt=0))
    model_b: float = field(default=0.0016654777540409116, metadata=_check(ge=0))
    gamma_shape: float = field(default=4.0, metadata=_check(gt=0))
    gamma_scale: float = field(default=0.375, metadata=_check(gt=0))
    max_tries: int = field(default=5, metadata=_check(ge=1))
    fallback: float = field(default=1.5, metadata=_check(gt=0))
    min_image_size: int = field(default=512, metadata=_check(ge=1))
    max_image_size: int = field(default=4096, metadata=_check(ge=1))

    def _validate(self, path: str) -> None:
        if self.min_image_size > self.max_image_size:
            raise ConfigError(f"{path}.min_image_size must be <= max_image_size")

    @property
    def min_time(self) -> float:
        return self.model_a * self.min_image_size**2 + self.model_b

    @property
    def max_time(self) -> float:
        return self.model_a * self.max_image_size**2 + self.model_b


@dataclass(frozen=True)
class DeadlineConfig:
    coefficient: float = field(default=2.0, metadata=_check(gt=0))
    min: float = field(default=0.1, metadata=_check(ge=0))
    max: float = field(default=30.0, metadata=_check(gt=0))

    def _validate(self, path: str) -> None:
        if self.min > self.max:
            raise ConfigError(f"{path}.min must be <= max")


@dataclass(frozen=True)
class Distribution:
    """A latency distribution: fixed (``value``), uniform(low, high) or normal(mean, std)
    clipped to [low, high]."""

    distribution: str = field(default="uniform", metadata=_check(choices=DISTRIBUTIONS))
    low: float = field(default=0.0, metadata=_check(ge=0))
    high: float = field(default=0.0, metadata=_check(ge=0))
    value: float = field(default=0.0, metadata=_check(ge=0))
    mean: float = field(default=0.0, metadata=_check(ge=0))
    std: float = field(default=0.0, metadata=_check(ge=0))

    def sample(self, rng) -> float:
        """One draw with ``rng`` (a ``numpy.random.Generator``)."""
        if self.distribution == "fixed":
            return self.value
        if self.distribution == "uniform":
            return float(rng.uniform(self.low, self.high))
        value = float(rng.normal(self.mean, self.std))
        hi = self.high if self.high > self.low else float("inf")
        return min(max(value, self.low), hi)

    def _validate(self, path: str) -> None:
        if self.low > self.high:
            raise ConfigError(f"{path}.low must be <= high")

    @property
    def expected(self) -> float:
        if self.distribution == "fixed":
            return self.value
        if self.distribution == "uniform":
            return (self.low + self.high) / 2
        return self.mean


@dataclass(frozen=True)
class TimingConfig:
    wait_time: float = field(default=0.1, metadata=_check(gt=0))
    collector_wait_time: float = field(default=0.1, metadata=_check(gt=0))
    processing_delay: float = field(default=0.0, metadata=_check(ge=0))
    scale_up_latency: Distribution = field(
        default_factory=lambda: Distribution("uniform", low=5.2, high=9.0)
    )
    scale_down_removal_delay: Distribution = field(
        default_factory=lambda: Distribution("uniform", low=3.0, high=5.0)
    )
    ack_poll_interval: float = field(default=1.0, metadata=_check(gt=0))
    ack_max_polls: int = field(default=32, metadata=_check(ge=1))
    step_overhead: Distribution = field(
        default_factory=lambda: Distribution("uniform", low=0.0, high=0.4)
    )
    straggler_timeout: float = field(default=8.0, metadata=_check(ge=0))


@dataclass(frozen=True)
class ScaleWeights:
    up: float = 5.5
    down: float = 0.1


@dataclass(frozen=True)
class RewardWeights:
    qos: float = 36.0
    backlog: float = 2.5
    efficiency: float = 0.05
    scaling: float = 0.08
    scale: ScaleWeights = field(default_factory=ScaleWeights)


@dataclass(frozen=True)
class SloCostConfig:
    """The ``slo_cost`` reward profile (see :mod:`rl_autoscaling.reward`): meet the final-QoS
    SLO ``qos_target``, then use the fewest worker-seconds. Strict ranking of episodes (SLO
    met first) needs ``miss_penalty >= worker_cost * max_workers * max_steps * step_duration``
    (50 >= 0.005 * 32 * 30 * 8 = 38.4 for the CLI defaults)."""

    qos_target: float = field(default=0.99, metadata=_check(ge=0, le=1))
    worker_cost: float = field(default=0.005, metadata=_check(ge=0))      # per worker-second
    violation_cost: float = field(default=0.5, metadata=_check(ge=0))     # per task over budget
    miss_penalty: float = field(default=50.0, metadata=_check(ge=0))      # once, if SLO missed


REWARD_PROFILES = ("seed", "slo_cost")


@dataclass(frozen=True)
class RewardConfig:
    profile: str = field(default="seed", metadata=_check(choices=REWARD_PROFILES))
    target_qos: float = field(default=0.95, metadata=_check(ge=0, le=1))
    queue_target: float = field(default=30.0, metadata=_check(ge=0))
    balanced_workers: float = field(default=14.0, metadata=_check(ge=0))
    idle_queue_threshold: float = field(default=8.0, metadata=_check(ge=0))
    completion_bonus: float = 8.0
    unfinished_penalty_scale: float = 2.0
    weights: RewardWeights = field(default_factory=RewardWeights)
    slo_cost: SloCostConfig = field(default_factory=SloCostConfig)


@dataclass(frozen=True)
class FarmConfig:
    """The whole farm: Redis, queues, functions, workload, timings, reward."""

    redis: RedisConfig = field(default_factory=RedisConfig)
    queues: QueueConfig = field(default_factory=QueueConfig)
    functions: FunctionsConfig = field(default_factory=FunctionsConfig)
    base_rate: float = field(default=300.0, metadata=_check(gt=0))
    window_duration: float = field(default=1.0, metadata=_check(gt=0))
    phase_definitions: list[PhaseConfig] = field(default_factory=list)
    trace: str | None = None
    #: draws each episode's phases from its seed (replaces phase_definitions); see above
    generator: GeneratorConfig | None = None
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    deadline: DeadlineConfig = field(default_factory=DeadlineConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def _validate(self, path: str) -> None:
        if not self.phase_definitions and not self.trace:
            raise ConfigError("phase_definitions must list at least one phase (or set trace)")
        if self.trace and self.generator is not None:
            raise ConfigError("trace and generator exclude each other: set one")
        names = [getattr(self.queues, f.name) for f in dataclasses.fields(self.queues)]
        if len(set(names)) != len(names):
            raise ConfigError("queues: every queue name must be distinct")

    def replace(self, overrides: Mapping[str, Any]) -> FarmConfig:
        """A copy with ``overrides`` (dotted or nested keys) applied and validated."""
        return from_dict(apply_overrides(to_dict(self), overrides))


# --------------------------------------------------------------------------- building


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path} must be a list, got {type(value).__name__}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return int(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _check_value(rules: Mapping[str, Any], value: Any, path: str) -> None:
    if value is None:
        return
    if "gt" in rules and not value > rules["gt"]:
        raise ConfigError(f"{path} must be > {rules['gt']}, got {value!r}")
    if "ge" in rules and not value >= rules["ge"]:
        raise ConfigError(f"{path} must be >= {rules['ge']}, got {value!r}")
    if "le" in rules and not value <= rules["le"]:
        raise ConfigError(f"{path} must be <= {rules['le']}, got {value!r}")
    if "choices" in rules and value not in rules["choices"]:
        raise ConfigError(f"{path} must be one of {', '.join(rules['choices'])}, got {value!r}")
    if "pattern" in rules and not re.match(rules["pattern"], value):
        raise ConfigError(f"{path} is not a valid queue name: {value!r}")


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown key {prefix}{key}")
    kwargs = {}
    for name, f in fields.items():
        key_path = f"{prefix}{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key_path} is required")
            continue
        value = _coerce(hints[name], data[name], key_path)
        _check_value(f.metadata.get("check", {}), value, key_path)
        kwargs[name] = value
    obj = cls(**kwargs)
    validate = getattr(obj, "_validate", None)
    if validate:
        validate(path or "config")
    return obj


def from_dict(data: Mapping[str, Any]) -> FarmConfig:
    """Build and validate a ``FarmConfig`` from a plain mapping."""
    return _build(FarmConfig, data, "")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``data``; ``"a.b": v`` means ``{"a": {"b": v}}``."""
    out = copy.deepcopy(data)
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                if part in node:
                    raise ConfigError(f"{'.'.join(parts[: i + 1])} is not a section")
                nxt = node[part] = {}
            node = nxt
        last = parts[-1]
        if isinstance(value, Mapping) and isinstance(node.get(last), dict):
            node[last] = apply_overrides(node[last], value)
        else:
            node[last] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def default_config_path() -> Path:
    return Path(str(resources.files("rl_autoscaling") / "configs" / "default.yml"))


def packaged_profiles() -> list[str]:
    """Names of the packaged configuration profiles (``rl_autoscaling/configs/NAME.yml``)."""
    return sorted(p.stem for p in default_config_path().parent.glob("*.yml"))


def config_path(path: str | Path) -> Path:
    """``path`` itself, or for a bare name (no path separator, no ``.yml``/``.yaml``) the
    packaged profile of that name; an unknown name lists the available ones."""
    text = str(path)
    if "/" in text or "\\" in text or text.endswith((".yml", ".yaml")):
        return Path(path)
    candidate = default_config_path().parent / f"{text}.yml"
    if not candidate.is_file():
        raise ConfigError(f"unknown config profile {text!r}; packaged profiles: "
                          f"{', '.join(packaged_profiles())} (or give a path to a YAML file)")
    return candidate


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> FarmConfig:
    """Load the packaged default, or ``path`` on top of it, then apply ``overrides``.

    A user file need only hold the keys it changes; lists (e.g. ``phase_definitions``) replace
    the default list as a whole. A bare name (``spike``) loads a packaged profile. A relative
    ``trace:`` path in the file is relative to the file's directory (an override's is relative
    to the working directory).
    """
    data = _read_yaml(default_config_path())
    if path is not None:
        path = config_path(path)
        user = _read_yaml(path)
        trace = user.get("trace") if isinstance(user, Mapping) else None
        if isinstance(trace, str) and trace and not Path(trace).expanduser().is_absolute():
            user = {**user, "trace": str(path.resolve().parent / trace)}  # beside the file
        data = apply_overrides(data, user)
    if overrides:
        data = apply_overrides(data, overrides)
    return from_dict(data)


def resolve_config(config: FarmConfig | str | Path | Mapping[str, Any] | None) -> FarmConfig:
    """Accept a FarmConfig, a YAML path, an overrides mapping, or None (the default)."""
    if isinstance(config, FarmConfig):
        return config
    if config is None:
        return load_config()
    if isinstance(config, (str, Path)):
        return load_config(config)
    if isinstance(config, Mapping):
        return load_config(None, config)
    raise ConfigError(f"config must be a path, a mapping or a FarmConfig, got {type(config).__name__}")
