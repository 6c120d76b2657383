"""Agent names and construction for ``compare_policies`` and ``bench policies``.

Names are matched case-insensitively, ignoring spaces, ``-`` and ``_``: ``reactive-average``,
``Reactive Average`` and ``REACTIVE_AVERAGE`` all mean ``ReactiveAverage``. ``static`` holds
the initial worker count (or ``--static-workers``); ``static-16`` / ``Static16`` holds 16.

Trained agents are loaded lazily (``SarsaPolicy.load`` from a ``.pkl``, ``DqnPolicy.load`` from
a ``.pt``), so the baselines work in a build without them. Every problem (unknown name, missing
``--model``, missing file, unreadable model) raises :class:`AgentError` with a one-line message,
before anything is simulated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..policies.base import Policy

#: Canonical display names, by normalised key.
CANONICAL = {
    "sarsa": "SARSA",
    "dqn": "DQN",
    "reactiveaverage": "ReactiveAverage",
    "reactivemaximum": "ReactiveMaximum",
    "keda": "Keda",
    "static": "Static",
    "staticbest": "StaticBest",
    "kedacalibrated": "KedaCalibrated",
    "hpa": "Hpa",
    "hpacalibrated": "HpaCalibrated",
}
ALIASES = {
    "reactiveavg": "reactiveaverage",
    "reactivemax": "reactivemaximum",
    "kedaqueue": "keda",
    "kedabest": "kedacalibrated",
    "hpabest": "hpacalibrated",
}
TRAINED = ("SARSA", "DQN")
BASELINES = ("ReactiveAverage", "ReactiveMaximum", "Keda", "Static")
#: Baselines whose parameters are searched on the twin first (training.calibration).
CALIBRATED = ("StaticBest", "KedaCalibrated", "HpaCalibrated")
#: What the seed's ``--agents`` accepted, plus the new baselines.
KNOWN = ("sarsa", "dqn", "reactiveaverage", "reactivemaximum", "keda", "static", "static<N>",
         "staticbest", "kedacalibrated", "hpa", "hpacalibrated")

_STATIC_N = re.compile(r"^static(\d+)$")


class AgentError(ValueError):
    """An agent cannot be used: unknown name, missing model flag or file, unreadable model."""


def normalize_key(name: str) -> str:
    """Lower-case ``name`` and drop spaces, '-' and '_'."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def canonical_name(name: str) -> str:
    """The canonical agent name for ``name`` (e.g. ``reactive-average`` -> ``ReactiveAverage``,
    ``static_16`` -> ``Static16``); raises AgentError for an unknown name."""
    key = normalize_key(name)
    key = ALIASES.get(key, key)
    if key in CANONICAL:
        return CANONICAL[key]
    match = _STATIC_N.match(key)
    if match:
        return f"Static{int(match.group(1))}"
    raise AgentError(f"unknown agent {name!r}; choose from {', '.join(KNOWN)} "
                     "(case-insensitive; spaces, '-' and '_' are ignored)")


def resolve_agents(names: Iterable[str]) -> list[str]:
    """Canonical names of ``names`` in order, without duplicates (AgentError if unknown)."""
    out: list[str] = []
    for name in names:
        canon = canonical_name(name)
        if canon not in out:
            out.append(canon)
    return out


def is_baseline(name: str) -> bool:
    """True for the non-learning agents (ReactiveAverage, ReactiveMaximum, Keda, Hpa, Static*,
    the calibrated ones)."""
    return canonical_name(name) not in TRAINED


@dataclass
class AgentOptions:
    """Everything an agent may need to be built.

    Attributes:
        action_deltas: the env's worker delta per action index.
        min_workers, max_workers, initial_workers, step_duration: the env's settings.
        model: SARSA model path (.pkl); dqn_model: DQN model path (.pt).
        static_workers: N for ``static`` (default: ``initial_workers``).
        keda_target: KEDA queued tasks per worker; keda_window: scale-down window, seconds.
        horizon: reactive horizon H, seconds.
        calibrated: the policies of the calibrated baselines (StaticBest, KedaCalibrated,
            HpaCalibrated),
            searched beforehand (:func:`calibrate_agents`).
    """

    action_deltas: Sequence[int] = (-1, 0, 1)
    min_workers: int = 1
    max_workers: int = 32
    initial_workers: int = 12
    step_duration: float = 8.0
    model: str | Path | None = None
    dqn_model: str | Path | None = None
    static_workers: int | None = None
    keda_target: float = 5.0
    keda_window: float = 300.0
    horizon: float = 8.0
    calibrated: Mapping[str, Policy] = field(default_factory=dict)


def _model_path(agent: str, path: str | Path | None, flag: str, suffix: str) -> Path:
    if path is None or str(path) == "":
        raise AgentError(f"agent {agent} needs a trained model: pass {flag} <path{suffix}>")
    p = Path(path)
    if not p.is_file():
        raise AgentError(f"{agent} model file not found: {p}")
    return p


def _load_trained(agent: str, policy_cls: type, path: Path):
    try:
        return policy_cls.load(path)
    except Exception as exc:  # any failure to read the file is the user's one-line error
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if str(path) not in detail:
            detail = f"cannot load {agent} model {path}: {detail}"
        raise AgentError(detail) from None


def check_models(names: Iterable[str], opts: AgentOptions) -> None:
    """Fail fast (AgentError) if a trained agent lacks its model flag or file."""
    for name in names:
        canon = canonical_name(name)
        if canon == "SARSA":
            _model_path(canon, opts.model, "--model", ".pkl")
        elif canon == "DQN":
            _model_path(canon, opts.dqn_model, "--dqn-model", ".pt")


def build_policy(name: str, opts: AgentOptions | None = None) -> Policy:
    """Construct the agent called ``name`` (any accepted spelling) with ``opts``."""
    from ..policies.hpa import Hpa
    from ..policies.keda import KedaQueue
    from ..policies.reactive import ReactiveAverage, ReactiveMaximum
    from ..policies.static import Static

    opts = opts or AgentOptions()
    canon = canonical_name(name)
    deltas = tuple(opts.action_deltas)
    if canon == "SARSA":
        path = _model_path(canon, opts.model, "--model", ".pkl")
        from ..algorithms.sarsa.policy import SarsaPolicy

        policy = _load_trained(canon, SarsaPolicy, path)
    elif canon == "DQN":
        path = _model_path(canon, opts.dqn_model, "--dqn-model", ".pt")
        from ..algorithms.dqn.policy import DqnPolicy

        policy = _load_trained(canon, DqnPolicy, path)
    elif canon in CALIBRATED:
        if canon not in opts.calibrated:
            raise AgentError(f"{canon} must be calibrated first (calibrate_agents)")
        policy = opts.calibrated[canon]
    elif canon == "ReactiveAverage":
        policy = ReactiveAverage(horizon=opts.horizon, action_deltas=deltas)
    elif canon == "ReactiveMaximum":
        policy = ReactiveMaximum(horizon=opts.horizon, action_deltas=deltas)
    elif canon == "Hpa":
        policy = Hpa(min_workers=opts.min_workers, max_workers=opts.max_workers,
                     step_duration=opts.step_duration, action_deltas=deltas)
    elif canon == "Keda":
        try:
            policy = KedaQueue(target_per_replica=opts.keda_target,
                               stabilization_window=opts.keda_window,
                               min_workers=opts.min_workers, max_workers=opts.max_workers,
                               step_duration=opts.step_duration, action_deltas=deltas)
        except ValueError as exc:  # name the flags, not the constructor's arguments
            raise AgentError(f"Keda (--keda-target {opts.keda_target:g}, --keda-window "
                             f"{opts.keda_window:g}): {exc}") from None
    else:  # Static / Static<N>
        n = canon[len("Static"):]
        workers = int(n) if n else (opts.static_workers if opts.static_workers is not None
                                    else opts.initial_workers)
        if not opts.min_workers <= workers <= opts.max_workers:
            raise AgentError(f"{canon}: {workers} workers is outside "
                             f"[{opts.min_workers}, {opts.max_workers}]")
        policy = Static(workers, action_deltas=deltas)
    return policy


def build_policies(names: Iterable[str], opts: AgentOptions) -> dict[str, Policy]:
    """Canonical name -> policy for every agent, checking all models before loading any."""
    canon = resolve_agents(names)
    check_models(canon, opts)
    return {name: build_policy(name, opts) for name in canon}


__all__ = ["AgentError", "AgentOptions", "BASELINES", "CALIBRATED", "TRAINED", "build_policies",
           "build_policy", "calibrate_agents", "canonical_name", "check_models", "is_baseline",
           "normalize_key", "resolve_agents"]


def calibrate_agents(names: Iterable[str], env, slo: float, seeds: Sequence[int]) -> dict:
    """``{name: (policy, calibration)}`` for the calibrated baselines among ``names``,
    searched on ``env`` over ``seeds`` (:mod:`rl_autoscaling.training.calibration`)."""
    from .calibration import calibrated_policy

    return {canon: calibrated_policy(canon, env, slo, seeds)
            for canon in (canonical_name(n) for n in names) if canon in CALIBRATED}
