"""The policy a controller serves, and its hot reload.

A model file (``--model``: SARSA ``.pkl`` or DQN ``.pt``) is read only through the safe loaders
(``SarsaPolicy.load``: restricted unpickler; ``DqnPolicy.load``: ``torch.load(weights_only=True)``),
by way of ``training.agents`` so every failure is one line. Between steps :meth:`ModelSource.poll`
looks at the file's identity (inode, size, mtime): a file replaced by an atomic rename (a new
``<algo>_best.*`` from a Tune run) is loaded and checked (it must answer the current observation
with an action of the served action set) before it is swapped in; a file that fails is refused
once (one log line per bad version) and the old model keeps serving. A baseline (``--policy``)
is built by name with the same registry as ``compare_policies``; calibrated baselines are
searched on the twin first.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..common.errors import UserError
from ..policies.base import Policy
from ..training.agents import (
    CALIBRATED,
    AgentError,
    AgentOptions,
    build_policy,
    calibrate_agents,
    canonical_name,
)

#: model file suffix -> agent name
MODEL_KINDS = {".pkl": "SARSA", ".pt": "DQN"}


@dataclass(frozen=True)
class ModelIdentity:
    """What the metrics and logs say about the served policy."""

    policy: str  # agent name (SARSA, DQN, Static16, ...)
    source: str  # the model file, or "builtin"
    sha256: str  # first 12 hex digits of the file's SHA-256 ("" for a baseline)
    loaded_at: float  # wall-clock epoch


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def load_model_policy(path: str | Path, action_size: int) -> tuple[Policy, str]:
    """Load a SARSA/DQN model file safely; returns (policy, sha256 prefix).

    Raises:
        UserError: unknown suffix, missing or unreadable file, or a model whose action count
            is not ``action_size`` (one line, naming the file).
    """
    p = Path(path)
    agent = MODEL_KINDS.get(p.suffix.lower())
    if agent is None:
        raise UserError(f"--model {p}: expected a SARSA .pkl or a DQN .pt model file")
    sha = _sha(p) if p.is_file() else ""
    opts = AgentOptions(model=p, dqn_model=p)
    try:
        policy = build_policy(agent, opts)
    except AgentError as exc:
        raise UserError(str(exc)) from None
    size = getattr(policy, "action_size", None)
    if size is None and hasattr(policy, "q_network"):
        size = int(policy.metadata.get("action_size", action_size))
    if size is not None and int(size) != action_size:
        raise UserError(f"model {p} has {size} actions, the served action set has {action_size}")
    return policy, sha


def baseline_policy(name: str, opts: AgentOptions, twin_env: Callable[[], Any],
                    slo: float, seeds: Sequence[int]) -> Policy:
    """A baseline by any name ``training.agents`` knows; calibrated ones are searched on
    ``twin_env()`` first. UserError (one line) for an unknown or unusable name."""
    try:
        canon = canonical_name(name)
        if canon in ("SARSA", "DQN"):
            raise AgentError(f"--policy {name}: trained agents are served with --model FILE")
        if canon in CALIBRATED:
            env = twin_env()
            try:
                found = calibrate_agents([canon], env, slo, seeds)
            finally:
                env.close()
            opts.calibrated = {k: v[0] for k, v in found.items()}
        return build_policy(canon, opts)
    except AgentError as exc:
        raise UserError(str(exc)) from None


class ModelSource:
    """The served policy; with a model file, reloaded when the file is replaced.

    Args:
        policy: the policy to serve first.
        identity: its identity.
        path: the model file to watch (None: a baseline, never reloaded).
        action_size: the served action set's size (a reload must match it).
    """

    def __init__(self, policy: Policy, identity: ModelIdentity, path: Path | None = None,
                 action_size: int = 3) -> None:
        self.policy, self.identity = policy, identity
        self.path, self.action_size = path, int(action_size)
        self._signature = _file_signature(path) if path else None
        self._refused: tuple[int, int, int] | None = None
        self.reloads = 0
        self.refusals = 0

    @classmethod
    def from_file(cls, path: str | Path, action_size: int) -> ModelSource:
        p = Path(path)
        policy, sha = load_model_policy(p, action_size)
        ident = ModelIdentity(policy.name, str(p), sha, time.time())
        return cls(policy, ident, p, action_size)

    def poll(self, obs: np.ndarray, info: dict) -> tuple[str, str] | None:
        """Between steps: swap in a replaced model file. Returns None when nothing changed,
        ``("reloaded", sha)`` after a swap, ``("refused", reason)`` for a bad new version
        (reported once per version; the old model keeps serving)."""
        if self.path is None:
            return None
        sig = _file_signature(self.path)
        if sig is None or sig == self._signature or sig == self._refused:
            return None  # unchanged, or (mid-replacement) missing: keep serving
        try:
            policy, sha = load_model_policy(self.path, self.action_size)
            action = int(policy.act(obs, info))
            if not 0 <= action < self.action_size:
                raise UserError(f"model {self.path} answered action {action}, outside "
                                f"0..{self.action_size - 1}")
        except Exception as exc:  # noqa: BLE001 - any bad file is refused, never fatal
            self._refused = sig
            self.refusals += 1
            return "refused", (str(exc).splitlines() or [type(exc).__name__])[0]
        if _file_signature(self.path) != sig:
            return None  # replaced again while we read it: take the newer one next step
        self.policy = policy
        self.identity = ModelIdentity(policy.name, str(self.path), sha, time.time())
        self._signature, self._refused = sig, None
        self.reloads += 1
        return "reloaded", sha


__all__ = ["MODEL_KINDS", "ModelIdentity", "ModelSource", "baseline_policy",
           "load_model_policy"]
