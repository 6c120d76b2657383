"""Baseline policies: the reactive rules, HPA target tracking, KEDA-style queue scaling and
static counts.

Trained policies live with their algorithms (:mod:`rl_autoscaling.algorithms`); the registry
that builds any agent by name is :mod:`rl_autoscaling.training.agents`.
"""

from .base import Policy
from .hpa import Hpa
from .keda import KedaQueue
from .reactive import ReactiveAverage, ReactiveMaximum, action_for_delta
from .static import Static

__all__ = ["Hpa", "KedaQueue", "Policy", "ReactiveAverage", "ReactiveMaximum", "Static",
           "action_for_delta"]
