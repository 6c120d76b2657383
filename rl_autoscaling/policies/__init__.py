"""Policies: reactive baselines, KEDA-style scaling and loaded SARSA / DQN models."""

from .base import Policy
from .keda import KedaQueue
from .reactive import ReactiveAverage, ReactiveMaximum, action_for_delta
from .registry import AgentError, AgentOptions, build_policy, canonical_name, resolve_agents
from .static import Static

__all__ = [
    "AgentError", "AgentOptions", "KedaQueue", "Policy", "ReactiveAverage", "ReactiveMaximum",
    "Static", "action_for_delta", "build_policy", "canonical_name", "resolve_agents",
]
