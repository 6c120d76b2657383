"""The DQN replay buffer: uniform replay of single transitions kept in NumPy ring arrays.

RLlib's ``EpisodeReplayBuffer`` stores episode objects and, for every sampled transition,
slices a ``SingleAgentEpisode`` out of them; the learner connector then turns those one-step
episodes back into a batch. For a 1-step, uniform, single-agent DQN on a 9-number observation
that was ~75 % of a training step (``python -m rl_autoscaling.bench dqn``: 35-85 trained env
steps/s). ``FlatEpisodeReplayBuffer`` keeps RLlib's buffer interface for what it is given
(``add(episodes)``, ``get_num_timesteps()``, ``get_state()`` / ``set_state()``) but stores the
episodes' transitions flat, and ``sample_columns(n)`` returns a train batch's columns directly
(``FarmDQN`` hands them to the learner as a ``MultiAgentBatch``, docs/algorithms.md#dqn).

Semantics are RLlib's ``EpisodeReplayBuffer`` with ``n_step=1``: every env step of every
episode chunk is one transition (obs, action, reward, next obs, terminated); sampling is
uniform over the stored transitions, with replacement; the oldest transitions are evicted
first once ``capacity`` env steps are stored. A chunk cut by the rollout fragment, or an episode
cut by the time limit, is not terminal (the next observation is bootstrapped).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.utils import force_list
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

_FIELDS = (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.NEXT_OBS, Columns.TERMINATEDS)


class FlatEpisodeReplayBuffer(EpisodeReplayBuffer):
    """Uniform 1-step replay over NumPy ring arrays, with a seeded sampling RNG.

    The name keeps ``EpisodeReplayBuffer`` in it because RLlib's new API stack requires one
    (it adds episodes, and RLlib's config check and factory test for the class name).
    """

    def __init__(self, capacity: int = 10_000, *, seed: int | None = None, **kwargs) -> None:
        super().__init__(capacity=capacity, **kwargs)
        self.rng = np.random.default_rng(seed)
        self._columns: dict[str, np.ndarray] | None = None
        self._next = 0   # ring position of the next write
        self._size = 0   # transitions stored (<= capacity)
        self._added = 0  # transitions ever added

    # -- adding ---------------------------------------------------------------------------

    def _allocate(self, obs: np.ndarray, action: np.ndarray) -> None:
        cap = int(self.capacity)
        self._columns = {
            Columns.OBS: np.zeros((cap, *obs.shape[1:]), dtype=np.float32),
            Columns.NEXT_OBS: np.zeros((cap, *obs.shape[1:]), dtype=np.float32),
            Columns.ACTIONS: np.zeros((cap, *action.shape[1:]), dtype=action.dtype),
            Columns.REWARDS: np.zeros(cap, dtype=np.float32),
            Columns.TERMINATEDS: np.zeros(cap, dtype=bool),
        }

    def add(self, episodes) -> None:
        """Store every env step of the given episode chunks as one transition each."""
        for episode in force_list(episodes):
            n = len(episode)
            if n == 0:
                continue
            obs = np.asarray(episode.get_observations(), dtype=np.float32)  # n + 1
            actions = np.asarray(episode.get_actions())
            terminated = np.zeros(n, dtype=bool)
            terminated[-1] = bool(episode.is_terminated)
            self._write({
                Columns.OBS: obs[:-1], Columns.NEXT_OBS: obs[1:], Columns.ACTIONS: actions,
                Columns.REWARDS: np.asarray(episode.get_rewards(), dtype=np.float32),
                Columns.TERMINATEDS: terminated,
            })

    def _write(self, rows: dict[str, np.ndarray]) -> None:
        n = len(rows[Columns.REWARDS])
        if self._columns is None:
            self._allocate(rows[Columns.OBS], rows[Columns.ACTIONS])
        cap = int(self.capacity)
        if n > cap:  # only the newest ``capacity`` rows survive anyway
            rows = {k: v[-cap:] for k, v in rows.items()}
            self._added += n - cap
            n = cap
        index = (self._next + np.arange(n)) % cap
        for key, values in rows.items():
            self._columns[key][index] = values
        self._next = int((self._next + n) % cap)
        self._size = min(cap, self._size + n)
        self._added += n

    # -- sampling -------------------------------------------------------------------------

    def sample_columns(self, num_items: int) -> dict[str, np.ndarray]:
        """``num_items`` transitions drawn uniformly with replacement, as train-batch
        columns (with RLlib's ``n_step`` = 1 and importance ``weights`` = 1 columns)."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = self.rng.integers(0, self._size, size=int(num_items))
        batch = {key: values[index] for key, values in self._columns.items()}
        batch["n_step"] = np.ones(len(index), dtype=np.float32)
        batch["weights"] = np.ones(len(index), dtype=np.float32)
        return batch

    def sample(self, *args, **kwargs):
        raise NotImplementedError("FlatEpisodeReplayBuffer samples columns, not episodes: "
                                  "use sample_columns() (FarmDQN does)")

    # -- size and state -------------------------------------------------------------------

    def get_num_timesteps(self) -> int:
        return self._size

    def get_added_timesteps(self) -> int:
        return self._added

    def __len__(self) -> int:
        return self._size

    def get_state(self) -> dict[str, Any]:
        """The stored transitions (oldest first), the counters and the RNG state."""
        if self._columns is None or self._size == 0:
            rows = None
        else:
            cap = int(self.capacity)
            order = (self._next - self._size + np.arange(self._size)) % cap
            rows = {key: values[order].copy() for key, values in self._columns.items()}
        return {"rows": rows, "added": self._added, "rng": self.rng.bit_generator.state,
                "capacity": int(self.capacity)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._columns, self._next, self._size = None, 0, 0
        rows = state.get("rows")
        if rows is not None:
            self._write({key: np.asarray(values) for key, values in rows.items()})
        self._added = int(state.get("added", self._size))
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
