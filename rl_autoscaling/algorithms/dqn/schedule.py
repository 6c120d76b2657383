"""Epsilon: the per-episode decay as RLlib's schedule over sampled env steps.

Epsilon mapping: the seed holds epsilon fixed within an episode and after episode k (k = 0, 1,
...) sets eps_k = max(end, start * decay^k). RLlib's schedule is piecewise-linear in sampled env
steps, so episode k is mapped to the steps [k T, (k + 1) T) with T = ``max_steps``: two points
(k T, eps_k) and ((k + 1) T - 1, eps_k) per episode make the schedule a step function, until eps
reaches the floor (RLlib then holds the last value). This is exact when every episode runs T
steps; episodes that end early (the workload drained) make later episodes start at earlier
points of the schedule, i.e. explore with a higher epsilon. On the twin with the CLI defaults
episodes average about 27.6 of 30 steps, so episode 120 explores with eps_109 = 0.088 instead
of eps_119 = 0.072. The ``epsilon`` in training records is the value RLlib actually used.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def epsilon_for_episode(k: int, start: float, end: float, decay: float) -> float:
    """The seed's epsilon during episode ``k`` (0-based): max(end, start * decay^k)."""
    return max(end, start * decay ** k)


def epsilon_schedule(start: float, end: float, decay: float, steps_per_episode: int,
                     max_points: int = 20_000) -> list[tuple[int, float]]:
    """RLlib epsilon schedule (``[(timestep, value), ...]``) equal to the per-episode decay.

    A step function: eps_k on the env steps [k T, (k + 1) T - 1] (see the module docstring).
    """
    T = max(1, int(steps_per_episode))
    if decay >= 1.0 or start <= end:
        return [(0, float(max(start, end)))]
    points: list[tuple[int, float]] = []
    for k in range(max(1, max_points // 2)):
        eps = epsilon_for_episode(k, start, end, decay)
        points.append((k * T, eps))
        if eps <= end:
            break
        if T > 1:
            points.append(((k + 1) * T - 1, eps))
    return points


def epsilon_at(schedule: Sequence[tuple[int, float]] | float, t: int) -> float:
    """Value of RLlib's epsilon setting at env step ``t``: a constant, or a piecewise-linear
    schedule (RLlib's interpolation)."""
    if isinstance(schedule, (int, float)):
        return float(schedule)
    ts = [p[0] for p in schedule]
    vs = [p[1] for p in schedule]
    return float(np.interp(t, ts, vs))
