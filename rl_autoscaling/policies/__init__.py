"""Policies: reactive baselines, KEDA-style scaling and loaded SARSA / DQN models."""

from .base import Policy

__all__ = ["Policy"]
