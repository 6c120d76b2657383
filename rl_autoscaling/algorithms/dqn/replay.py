"""The DQN replay buffer: uniform replay of single transitions kept in NumPy ring arrays.

RLlib's ``EpisodeReplayBuffer`` stores episode objects and, for every sampled transition,
slices a ``SingleAgentEpisode`` out of them; the learner connector then turns those one-step
episodes back into a batch. For a 1-step, uniform, single-agent DQN on a 9-number observation
that was ~75 % of a training step (``python -m rl_autoscaling.bench dqn``: 35-85 trained env
steps/s). ``FlatEpisodeReplayBuffer`` keeps RLlib's buffer interface for what it is given
(``add(episodes)``, ``get_num_timesteps()``, ``get_state()`` / ``set_state()``) but stores the
episodes' transitions flat, and ``sample_columns(n)`` returns a train batch's columns directly
(``FarmDQN`` hands them to the learner as a ``MultiAgentBatch``, docs/algorithms.md#dqn).

Semantics are RLlib's ``EpisodeReplayBuffer``: every env step of every episode is one
transition (obs, action, reward, next obs, terminated); sampling is uniform over the stored
transitions, with replacement; the oldest transitions are evicted first once ``capacity`` env
steps are stored. A chunk cut by the rollout fragment, or an episode cut by the time limit, is
not terminal (the next observation is bootstrapped).

``n_step`` > 1 stores n-step transitions (RLlib's ``n_step``, docs/algorithms.md#dqn): the
transition of step t holds R = r_t + gamma r_(t+1) + ... + gamma^(k-1) r_(t+k-1), the
observation k steps later and ``n_step`` = k (the learner bootstraps with gamma^k), where
k = ``n_step`` or fewer when the episode ends first. An episode cut by the rollout fragment
continues in a later chunk (same episode id): its last n - 1 steps wait in ``_tails`` until
then, so a fragment boundary does not shorten the returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.utils import force_list
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

_FIELDS = (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.NEXT_OBS, Columns.TERMINATEDS)


class FlatEpisodeReplayBuffer(EpisodeReplayBuffer):
    """Uniform (n-step) replay over NumPy ring arrays, with a seeded sampling RNG.

    The name keeps ``EpisodeReplayBuffer`` in it because RLlib's new API stack requires one
    (it adds episodes, and RLlib's config check and factory test for the class name).
    """

    def __init__(self, capacity: int = 10_000, *, seed: int | None = None, n_step: int = 1,
                 gamma: float = 0.99, **kwargs) -> None:
        super().__init__(capacity=capacity, **kwargs)
        if int(n_step) < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        self.n_step, self.gamma = int(n_step), float(gamma)
        self._tails: dict[Any, dict[str, np.ndarray]] = {}  # episode id -> last n-1 steps
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
            "n_step": np.ones(cap, dtype=np.float32),
        }

    def add(self, episodes) -> None:
        """Store every env step of the given episode chunks as one (n-step) transition each."""
        for episode in force_list(episodes):
            if len(episode) == 0:
                continue
            steps = {"obs": np.asarray(episode.get_observations(), dtype=np.float32),  # n + 1
                     "actions": np.asarray(episode.get_actions()),
                     "rewards": np.asarray(episode.get_rewards(), dtype=np.float32)}
            tail = self._tails.pop(episode.id_, None)
            if tail is not None:  # the episode's earlier chunk: its last obs is this one's first
                steps = {"obs": np.concatenate([tail["obs"][:-1], steps["obs"]]),
                         "actions": np.concatenate([tail["actions"], steps["actions"]]),
                         "rewards": np.concatenate([tail["rewards"], steps["rewards"]])}
            rows = self._n_step_rows(steps, bool(episode.is_terminated), bool(episode.is_done),
                                     episode.id_)
            if len(rows[Columns.REWARDS]):
                self._write(rows)

    def _n_step_rows(self, steps: dict[str, np.ndarray], terminated: bool, done: bool,
                     episode_id: Any) -> dict[str, np.ndarray]:
        """The n-step transitions of consecutive steps of one episode; when the episode goes
        on, its last n - 1 steps are kept for the next chunk instead."""
        n, rewards = self.n_step, steps["rewards"]
        m = len(rewards)
        count = m if done or n == 1 else max(0, m - (n - 1))
        if count < m:
            self._tails[episode_id] = {"obs": steps["obs"][count:], "rewards": rewards[count:],
                                       "actions": steps["actions"][count:]}
            while len(self._tails) > 1000:  # episodes that never continued
                self._tails.pop(next(iter(self._tails)))
        start = np.arange(count)
        end = np.minimum(start + n, m)
        returns = np.zeros(count, dtype=np.float64)
        for i in range(n):
            live = start + i < end
            returns[live] += self.gamma ** i * rewards[start[live] + i]
        return {Columns.OBS: steps["obs"][start], Columns.NEXT_OBS: steps["obs"][end],
                Columns.ACTIONS: steps["actions"][start],
                Columns.REWARDS: returns.astype(np.float32),
                Columns.TERMINATEDS: terminated & (end == m),
                "n_step": (end - start).astype(np.float32)}

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
        columns (with RLlib's ``n_step`` column and importance ``weights`` = 1)."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = self.rng.integers(0, self._size, size=int(num_items))
        batch = {key: values[index] for key, values in self._columns.items()}
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
                "capacity": int(self.capacity), "n_step": self.n_step,
                "tails": {str(k): dict(v) for k, v in self._tails.items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        self._columns, self._next, self._size = None, 0, 0
        rows = state.get("rows")
        if rows is not None:
            rows = {key: np.asarray(values) for key, values in rows.items()}
            rows.setdefault("n_step", np.ones(len(rows[Columns.REWARDS]), dtype=np.float32))
            self._write(rows)
        self._tails = {k: {f: np.asarray(v) for f, v in tail.items()}
                       for k, tail in (state.get("tails") or {}).items()}
        self._added = int(state.get("added", self._size))
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
