"""The DQN replay buffer (``FlatEpisodeReplayBuffer``): what RLlib's episodes become, ring
eviction, seeded uniform sampling and the checkpoint state (no Ray cluster needed)."""

import numpy as np
import pytest
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from rl_autoscaling.algorithms.dqn.replay import FlatEpisodeReplayBuffer


def _chunk(start: int, n: int, terminated: bool, id_: str | None = None) -> SingleAgentEpisode:
    """An episode chunk of n steps: observation t is [t, -t], action t % 3, reward 10 t."""
    ep = SingleAgentEpisode(id_=id_, observations=[np.array([start, -start], np.float32)])
    for t in range(start, start + n):
        ep.add_env_step(np.array([t + 1, -(t + 1)], np.float32), t % 3, 10.0 * t,
                        terminated=terminated and t == start + n - 1)
    return ep


def test_each_env_step_becomes_one_transition_and_only_a_real_end_is_terminal():
    buf = FlatEpisodeReplayBuffer(capacity=100, seed=0)
    buf.add([_chunk(0, 3, terminated=False), _chunk(3, 2, terminated=True)])
    rows = buf.get_state()["rows"]
    assert buf.get_num_timesteps() == 5
    np.testing.assert_array_equal(rows[Columns.OBS][:, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(rows[Columns.NEXT_OBS][:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(rows[Columns.ACTIONS], [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(rows[Columns.REWARDS], [0, 10, 20, 30, 40])
    # the fragment cut after step 2 bootstraps; only the episode's terminal step does not
    np.testing.assert_array_equal(rows[Columns.TERMINATEDS], [0, 0, 0, 0, 1])


def test_n_step_returns_span_fragment_cuts_and_stop_at_the_episode_end():
    gamma = 0.5
    buf = FlatEpisodeReplayBuffer(capacity=100, seed=0, n_step=3, gamma=gamma)
    buf.add(_chunk(0, 4, terminated=False, id_="a"))
    # steps 2 and 3 wait for the episode's next chunk (their 3-step windows reach past it)
    np.testing.assert_array_equal(buf.get_state()["rows"][Columns.OBS][:, 0], [0, 1])
    restored = FlatEpisodeReplayBuffer(capacity=100, seed=0, n_step=3, gamma=gamma)
    restored.set_state(buf.get_state())  # a checkpoint keeps the waiting steps too
    for b in (buf, restored):
        b.add([_chunk(0, 2, terminated=False, id_="b"), _chunk(4, 2, terminated=True, id_="a")])
    np.testing.assert_array_equal(restored.get_state()["rows"][Columns.REWARDS],
                                  buf.get_state()["rows"][Columns.REWARDS])
    rows = buf.get_state()["rows"]
    order = np.argsort(rows[Columns.OBS][:, 0], kind="stable")
    rows = {k: v[order] for k, v in rows.items()}
    # episode "a" (steps 0-5, terminated) and nothing of "b" yet (2 steps, still running)
    np.testing.assert_array_equal(rows[Columns.OBS][:, 0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(rows["n_step"], [3, 3, 3, 3, 2, 1])
    np.testing.assert_array_equal(rows[Columns.NEXT_OBS][:, 0], [3, 4, 5, 6, 6, 6])
    expected = [sum(gamma ** i * 10.0 * (t + i) for i in range(k))
                for t, k in zip(range(6), [3, 3, 3, 3, 2, 1])]
    np.testing.assert_allclose(rows[Columns.REWARDS], expected)
    np.testing.assert_array_equal(rows[Columns.TERMINATEDS], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(rows[Columns.ACTIONS], [0, 1, 2, 0, 1, 2])
    assert set(buf.sample_columns(64)["n_step"]) <= {1.0, 2.0, 3.0}
    # a time-limit end (truncated) shortens the last windows but bootstraps them
    trunc = FlatEpisodeReplayBuffer(capacity=100, seed=0, n_step=3, gamma=gamma)
    ep = _chunk(0, 3, terminated=False, id_="c")
    ep.is_truncated = True
    trunc.add(ep)
    rows = trunc.get_state()["rows"]
    np.testing.assert_array_equal(rows["n_step"], [3, 2, 1])
    np.testing.assert_array_equal(rows[Columns.TERMINATEDS], [0, 0, 0])
    with pytest.raises(ValueError, match="n_step"):
        FlatEpisodeReplayBuffer(capacity=10, n_step=0)


def test_the_oldest_transitions_are_evicted_first():
    buf = FlatEpisodeReplayBuffer(capacity=4, seed=0)
    buf.add(_chunk(0, 3, False))
    buf.add(_chunk(3, 3, False))
    assert buf.get_num_timesteps() == 4 and buf.get_added_timesteps() == 6
    np.testing.assert_array_equal(buf.get_state()["rows"][Columns.OBS][:, 0], [2, 3, 4, 5])
    buf.add(_chunk(6, 9, False))  # more than the capacity in one chunk
    np.testing.assert_array_equal(buf.get_state()["rows"][Columns.OBS][:, 0], [11, 12, 13, 14])


def test_sampling_is_uniform_seeded_and_has_the_learner_columns():
    buf = FlatEpisodeReplayBuffer(capacity=100, seed=3)
    buf.add(_chunk(0, 10, True))
    batch = buf.sample_columns(20_000)
    assert set(batch) == {Columns.OBS, Columns.NEXT_OBS, Columns.ACTIONS, Columns.REWARDS,
                          Columns.TERMINATEDS, "n_step", "weights"}
    counts = np.bincount(batch[Columns.OBS][:, 0].astype(int), minlength=10)
    assert counts.min() > 1_700 and counts.max() < 2_300  # 2,000 expected per transition
    # each sampled row is a stored transition, not a mix of two
    np.testing.assert_array_equal(batch[Columns.NEXT_OBS][:, 0], batch[Columns.OBS][:, 0] + 1)
    np.testing.assert_array_equal(batch[Columns.REWARDS], 10 * batch[Columns.OBS][:, 0])
    assert np.all(batch["n_step"] == 1) and np.all(batch["weights"] == 1)
    again = FlatEpisodeReplayBuffer(capacity=100, seed=3)
    again.add(_chunk(0, 10, True))
    np.testing.assert_array_equal(again.sample_columns(50)[Columns.OBS],
                                  batch[Columns.OBS][:50])


def test_state_round_trip_restores_rows_order_and_the_sampling_rng():
    buf = FlatEpisodeReplayBuffer(capacity=5, seed=1)
    buf.add(_chunk(0, 7, False))  # wrapped around the ring
    buf.sample_columns(3)
    state = buf.get_state()
    restored = FlatEpisodeReplayBuffer(capacity=5, seed=99)
    restored.set_state(state)
    assert restored.get_num_timesteps() == 5 and restored.get_added_timesteps() == 7
    np.testing.assert_array_equal(restored.sample_columns(40)[Columns.OBS],
                                  buf.sample_columns(40)[Columns.OBS])
    buf.add(_chunk(7, 2, False))
    restored.add(_chunk(7, 2, False))  # writes continue at the same place
    np.testing.assert_array_equal(restored.get_state()["rows"][Columns.OBS],
                                  buf.get_state()["rows"][Columns.OBS])


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(ValueError, match="empty"):
        FlatEpisodeReplayBuffer(capacity=3).sample_columns(1)
