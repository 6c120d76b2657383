"""The tabular SARSA(lambda) core: discretiser, greedy ties, the update against hand-computed
trajectories, epsilon decay, model files and the restricted unpickler."""

from __future__ import annotations

import os
import pickle

import gymnasium as gym
import numpy as np
import pytest

from rl_autoscaling.algorithms.sarsa.policy import SarsaPolicy
from rl_autoscaling.algorithms.sarsa.tabular import (
    DEFAULT_BINS,
    DEFAULT_EDGES,
    Discretiser,
    SarsaHyperparams,
    SarsaLambdaLearner,
)
from rl_autoscaling.common.modelio import ModelFileError, load_pickle, save_pickle
from rl_autoscaling.common.settings import recipe_instance
from rl_autoscaling.observation import Obs

A = (0,) * 9
B = (1,) + (0,) * 8
C = (2,) + (0,) * 8


def learner(lam: float, threshold: float = 1e-5, **kw) -> SarsaLambdaLearner:
    """A learner with the seed recipe's rules (ties to the highest action, no exploring
    starts) and round numbers."""
    hp = recipe_instance(SarsaHyperparams, "seed", alpha=0.5, gamma=0.9, trace_lambda=lam,
                         trace_threshold=threshold, **kw)
    return SarsaLambdaLearner(Discretiser(DEFAULT_EDGES), hp, seed=0)


# ---------------------------------------------------------------------------- discretiser

def obs(**values: float) -> list[float]:
    names = ("input_queue", "worker_queue", "result_queue", "output_queue", "workers",
             "avg_time", "max_time", "arrival_rate", "qos_rate")
    base = dict.fromkeys(names, 0.0)
    base.update(values)
    return [base[n] for n in names]


def test_default_bins_come_with_the_spec_edges():
    d = Discretiser.from_bins(DEFAULT_BINS)
    assert d.bins == DEFAULT_BINS
    assert d.edges[1] == (0.5, 2.5, 5.5, 9.5, 15.5, 30.5)
    assert d.edges[4] == (3.5, 7.5, 11.5, 12.5, 16.5, 20.5, 24.5)
    assert d.edges[8] == (0.5, 0.8, 0.9, 0.95, 0.999)
    assert d.edges[2] == d.edges[3] == d.edges[6] == ()


@pytest.mark.parametrize("dim,value,index", [
    ("input_queue", 0.0, 0), ("input_queue", 0.49, 0), ("input_queue", 0.5, 1),
    ("input_queue", 3.0, 3), ("input_queue", 99.0, 3), ("input_queue", -1.0, 0),
    ("worker_queue", 30.4, 5), ("worker_queue", 30.5, 6), ("worker_queue", 700.0, 6),
    ("workers", 11.0, 2), ("workers", 12.0, 3), ("workers", 12.5, 4), ("workers", 32.0, 7),
    ("avg_time", 1.5, 2), ("avg_time", 32.0, 7), ("arrival_rate", 0.15, 1),
    ("arrival_rate", 5.0, 4), ("qos_rate", 0.95, 4), ("qos_rate", 0.9989, 4),
    ("qos_rate", 0.999, 5), ("qos_rate", 1.0, 5),
    ("result_queue", 9.0, 0), ("output_queue", 1140.0, 0), ("max_time", 160.0, 0),
])
def test_bin_index_is_the_number_of_edges_at_or_below_the_value(dim, value, index):
    state = Discretiser.from_bins(DEFAULT_BINS)(obs(**{dim: value}))
    names = ("input_queue", "worker_queue", "result_queue", "output_queue", "workers",
             "avg_time", "max_time", "arrival_rate", "qos_rate")
    assert state[names.index(dim)] == index
    assert len(state) == 9 and all(isinstance(i, int) for i in state)


def test_other_bins_are_equal_width_between_the_bounds():
    low, high = [0.0] * 9, [10.0] * 9
    d = Discretiser.from_bins([2, 1, 1, 1, 5, 1, 1, 1, 4], low, high)
    assert d.edges[0] == (5.0,)
    assert d.edges[4] == (2.0, 4.0, 6.0, 8.0)
    assert d.edges[8] == (2.5, 5.0, 7.5)
    assert d([4.99, 0, 0, 0, 8.0, 0, 0, 0, -3])[::4] == (0, 4, 0)
    assert d([5.0, 0, 0, 0, 99, 0, 0, 0, 11])[::4] == (1, 4, 3)


def test_env_bounds_give_the_readme_bins():
    env = gym.make("rl_autoscaling/OpenFaaSAutoscaling-v0").unwrapped
    bins = (4, 30, 4, 40, 16, 18, 18, 15, 20)
    d = Discretiser.from_bins(bins, env.observation_space.low, env.observation_space.high)
    assert d.bins == bins
    assert d.edges[1][0] == pytest.approx(env.observation_space.high[1] / 30)


@pytest.mark.parametrize("bins,match", [
    ([4, 7, 1, 1, 8, 8, 1, 5], "9 integers"), ([0, 7, 1, 1, 8, 8, 1, 5, 6], ">= 1"),
    ([4.5, 7, 1, 1, 8, 8, 1, 5, 6], "integers"),
])
def test_bad_bins_are_refused(bins, match):
    with pytest.raises(ValueError, match=match):
        Discretiser.from_bins(bins)


def test_the_phase_state_splits_the_last_two_phases_from_the_first():
    """TWIN_EDGES_PHASE: the twin state (worker queue x worker count) and one bit, whether at
    most one phase is left (input_queue <= 1) - the first two of the default workload's four
    phases share states, the last two share the others."""
    from rl_autoscaling.algorithms.sarsa.tabular import TWIN_EDGES, TWIN_EDGES_PHASE

    phase, twin = Discretiser(TWIN_EDGES_PHASE), Discretiser(TWIN_EDGES)
    obs = [3.0, 4.0, 0.0, 100.0, 17.0, 1.5, 3.0, 5.0, 1.0]
    keys = {left: phase([left, *obs[1:]]) for left in (3.0, 2.0, 1.0, 0.0)}
    assert keys[3.0] == keys[2.0] != keys[1.0] == keys[0.0]
    assert keys[3.0][1:] == keys[1.0][1:] == twin(obs)[1:]
    assert phase.bins == (2, *twin.bins[1:])


def test_edges_must_increase_strictly():
    with pytest.raises(ValueError, match="strictly increasing"):
        Discretiser([(1.0, 1.0)])


# ---------------------------------------------------------------------------- action choice

@pytest.mark.parametrize("row,action", [
    ([0.0, 0.0, 0.0], 2), ([1.0, 1.0, 0.0], 1), ([2.0, 1.0, 2.0], 2), ([3.0, 1.0, 2.0], 0),
    ([-1.0, -1.0, -2.0], 1),
])
def test_greedy_ties_go_to_the_highest_action(row, action):
    lrn = learner(0.0)
    lrn.q[A] = list(row)
    assert lrn.greedy(A) == action


@pytest.mark.parametrize("row,action", [
    ([0.0, 0.0, 0.0], 1), ([1.0, 1.0, 0.0], 1), ([2.0, 1.0, 2.0], 2), ([3.0, 1.0, 2.0], 0),
    ([-1.0, -1.0, -2.0], 1), ([1.0, 0.0, 1.0], 2),
])
def test_tie_action_keep(row, action):
    lrn = SarsaLambdaLearner(hyperparams=SarsaHyperparams(tie_action=1), seed=0)
    assert lrn.greedy(B) == 1  # unseen state: keep
    lrn.q[A] = list(row)
    assert lrn.greedy(A) == action


def test_unseen_states_are_not_added_by_lookups():
    lrn = learner(0.0)
    assert lrn.greedy(B) == 2 and B not in lrn.q
    assert list(lrn.q_values(B)) == [0.0, 0.0, 0.0] and B not in lrn.q


def test_epsilon_greedy_extremes():
    lrn = learner(0.0, epsilon=0.0)
    lrn.q[A] = [5.0, 0.0, 0.0]
    assert {lrn.act(A) for _ in range(200)} == {0}
    lrn.epsilon = 1.0
    counts = np.bincount([lrn.act(A) for _ in range(3000)], minlength=3)
    assert counts.min() > 850  # uniform over the three actions


def test_epsilon_decays_per_episode_to_the_floor():
    lrn = learner(0.0, epsilon=0.4, epsilon_min=0.1, epsilon_decay=0.5)
    assert lrn.decay_epsilon() == pytest.approx(0.2)
    assert lrn.decay_epsilon() == pytest.approx(0.1)
    assert lrn.decay_epsilon() == pytest.approx(0.1)


# ---------------------------------------------------------------------------- the update
# Trajectory A -a0-> B (r 1) -a1-> A (r 2) -a0-> end (r 3); alpha 0.5, gamma 0.9.

def play(lrn: SarsaLambdaLearner) -> list[float]:
    return [lrn.update(A, 0, 1.0, B, 1), lrn.update(B, 1, 2.0, A, 0),
            lrn.update(A, 0, 3.0, None, None)]


def test_one_step_sarsa_by_hand():
    lrn = learner(0.0)
    deltas = play(lrn)
    # d1 = 1 + .9*0 - 0 = 1          -> Q(A,0) = .5
    # d2 = 2 + .9*Q(A,0) - 0 = 2.45  -> Q(B,1) = 1.225
    # d3 = 3 - Q(A,0) = 2.5 (end)    -> Q(A,0) = .5 + 1.25 = 1.75
    assert deltas == pytest.approx([1.0, 2.45, 2.5])
    assert lrn.q[A] == pytest.approx([1.75, 0.0, 0.0])
    assert lrn.q[B] == pytest.approx([0.0, 1.225, 0.0])
    assert lrn.traces == {}


def test_sarsa_lambda_by_hand_with_a_pruned_trace():
    lrn = learner(0.5, threshold=0.3)  # traces decay by gamma*lambda = .45 per step
    deltas = play(lrn)
    # 1: d1 = 1; e(A)=[1,0,0]; Q(A,0) += .5*1*1 = .5; e(A) -> .45 (kept, >= .3)
    # 2: d2 = 2 + .9*.5 - 0 = 2.45; e(B)=[0,1,0]
    #    Q(A,0) += .5*2.45*.45 = .55125 -> 1.05125; e(A) -> .2025 < .3: pruned
    #    Q(B,1) += .5*2.45*1 = 1.225; e(B) -> .45
    # 3: d3 = 3 - 1.05125 = 1.94875 (end); e(A) restarts at 1 (it was pruned)
    #    Q(B,1) += .5*1.94875*.45 = .43846875 -> 1.66346875; e(B) -> .2025: pruned
    #    Q(A,0) += .5*1.94875*1 = .974375 -> 2.025625; e(A) -> .45
    assert deltas == pytest.approx([1.0, 2.45, 1.94875])
    assert lrn.q[A] == pytest.approx([2.025625, 0.0, 0.0])
    assert lrn.q[B] == pytest.approx([0.0, 1.66346875, 0.0])
    assert list(lrn.traces) == [A] and lrn.traces[A] == pytest.approx([0.45, 0.0, 0.0])


def test_sarsa_lambda_by_hand_without_pruning():
    lrn = learner(0.5, threshold=1e-5)
    play(lrn)
    # As above, but e(A) = .2025 survives step 2, so at step 3 e(A) = 1.2025:
    # Q(A,0) = 1.05125 + .5*1.94875*1.2025 = 2.2229359375
    assert lrn.q[A] == pytest.approx([2.2229359375, 0.0, 0.0])
    assert lrn.q[B] == pytest.approx([0.0, 1.66346875, 0.0])
    assert set(lrn.traces) == {A, B}


class ScriptedEnv(gym.Env):
    """Observations A, B, A, C with rewards 1, 2, 3; terminates after the third step."""

    observation_space = gym.spaces.Box(-1, 10, (9,))
    action_space = gym.spaces.Discrete(3)

    def __init__(self):
        self.seeds, self.actions = [], []

    def reset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        self.t = 0
        return np.array(A, dtype=np.float32), {}

    def step(self, action):
        self.actions.append(int(action))
        self.t += 1
        nxt = {1: B, 2: A, 3: C}[self.t]
        info = {"applied_delta": int(action) - 1, "processed_tasks": self.t}
        if self.t == 3:
            info["episode_final_qos"] = 1.0
        return np.array(nxt, dtype=np.float32), float(self.t), self.t == 3, False, info


def test_train_episode_updates_online_and_treats_the_end_as_terminal():
    lrn = learner(0.0, epsilon=0.0, epsilon_min=0.0, epsilon_decay=0.5)
    env = ScriptedEnv()
    result = lrn.train_episode(env, seed=7)
    # Greedy on zeros -> action 2 everywhere; the same numbers as the one-step hand example.
    assert env.actions == [2, 2, 2] and env.seeds == [7]
    assert lrn.q[A] == pytest.approx([0.0, 0.0, 1.75])
    assert lrn.q[B] == pytest.approx([0.0, 0.0, 1.225])
    assert C not in lrn.q  # the terminal observation is never bootstrapped from
    assert result.updates == 3 and result.trace.steps == 3 and result.epsilon == 0.0
    assert result.trace.summary()["scale_up_count"] == 3


def test_train_episode_clears_traces_and_decays_epsilon():
    lrn = learner(0.9, epsilon=0.4, epsilon_min=0.1, epsilon_decay=0.5)
    lrn.traces[C] = [5.0, 5.0, 5.0]  # a stale trace from elsewhere must not leak in
    result = lrn.train_episode(ScriptedEnv())
    assert C not in lrn.q and lrn.traces == {}
    assert result.epsilon == 0.4 and lrn.epsilon == pytest.approx(0.2)
    assert lrn.last_episode_stats["peak_trace"] >= 1.0


# ---------------------------------------------------------------------------- model files

def trained() -> SarsaLambdaLearner:
    lrn = learner(0.5)
    play(lrn)
    lrn.epsilon = 0.321
    return lrn


def test_model_file_round_trip(tmp_path):
    lrn = trained()
    path = lrn.save(tmp_path / "sarsa_final.pkl", episode=3)
    raw = load_pickle(path)
    assert {"action_size", "hyperparams", "discretisation", "epsilon", "q_table"} <= set(raw)
    assert raw["discretisation"]["edges"][4] == list(DEFAULT_EDGES[4])
    assert raw["episode"] == 3
    back = SarsaLambdaLearner.load(path)
    assert back.q == lrn.q and back.epsilon == 0.321
    assert back.discretiser == lrn.discretiser and back.hp == lrn.hp
    policy = SarsaPolicy.load(path)
    assert policy.act(np.array(A, dtype=np.float32), {}) == 0
    assert policy.act(np.array(B, dtype=np.float32), {}) == 1
    assert policy.metadata["episode"] == 3


def test_state_round_trip_keeps_the_rng():
    lrn = trained()
    state = lrn.get_state()
    other = learner(0.0)
    other.set_state(state)
    assert other.q == lrn.q and other.hp == lrn.hp
    assert [other.act(A) for _ in range(20)] == [lrn.act(A) for _ in range(20)]


def test_original_toolkit_model_with_numpy_arrays_loads(tmp_path):
    model = {
        "action_size": 3,
        "hyperparams": {"alpha": 0.03, "gamma": 0.985, "trace_lambda": 0.6, "extra": "x"},
        "discretisation": {"bins": np.array(DEFAULT_BINS),
                           "edges": [np.array(e, dtype=float) for e in DEFAULT_EDGES]},
        "epsilon": np.float64(0.2),
        "q_table": {A: np.array([1.0, 2.0, 0.5]), B: np.zeros(3)},
        "source_run": "sarsa_run_20250101_000000",
    }
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps(model, protocol=2))
    policy = SarsaPolicy.load(path)
    assert policy.learner.hp.alpha == 0.03 and policy.learner.epsilon == 0.2
    assert policy.act(np.array(A, dtype=np.float32), {}) == 1


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "sarsa_final.pkl"
    path.write_bytes(pickle.dumps({"q_table": {}, "discretisation": _Evil(marker)}))
    with pytest.raises(ModelFileError, match=r"refused global '(posix|os)\.system'"):
        SarsaPolicy.load(path)
    with pytest.raises(ModelFileError, match="not a valid model file"):
        SarsaLambdaLearner.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload,match", [
    (pickle.dumps([1, 2, 3]), "expected a dict"),
    (pickle.dumps({"q_table": {}}), "missing 'discretisation'"),
    (pickle.dumps({"q_table": {A: [1.0, 2.0]}, "discretisation": {"bins": DEFAULT_BINS}}),
     "not 3 finite floats"),
    (pickle.dumps({"q_table": {(1, 2): [0.0] * 3}, "discretisation": {"bins": DEFAULT_BINS}}),
     "not a tuple of 9 ints"),
    (pickle.dumps({"format": "rl_autoscaling.dqn", "q_table": {}, "discretisation": {}}),
     "format is"),
    (pickle.dumps({"q_table": {}, "discretisation": {"bins": DEFAULT_BINS}})[:-5],
     "not a valid model file"),
    (b"", "is empty"),
    (b"not a pickle at all", "not a valid model file"),
])
def test_wrong_or_damaged_files_get_a_clear_error(tmp_path, payload, match):
    path = tmp_path / "m.pkl"
    path.write_bytes(payload)
    with pytest.raises(ModelFileError, match=match) as info:
        SarsaPolicy.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        SarsaPolicy.load(tmp_path / "nope.pkl")


def test_save_refuses_objects_the_loader_would_reject(tmp_path):
    with pytest.raises(TypeError, match="refusing to save"):
        save_pickle(tmp_path / "x.pkl", {"path": tmp_path})
    assert not (tmp_path / "x.pkl").exists()


def test_hyperparameters_are_validated():
    with pytest.raises(ValueError, match="alpha"):
        SarsaHyperparams(alpha=0.0).validate()
    with pytest.raises(ValueError, match="epsilon_decay"):
        SarsaHyperparams(epsilon_decay=1.5).validate()
    with pytest.raises(ValueError, match="gamma must be a number"):
        SarsaHyperparams(gamma=float("nan")).validate()


@pytest.mark.slow
def test_twin_defaults_learn_to_hold_a_worker_count_under_slo_cost():
    """train_sarsa's twin defaults (edges, alpha, lambda, exploration) on the twin with the
    slo_cost reward: the greedy policy meets the SLO on held-out seeds with fewer mean workers
    than Static 21 (the previous defaults drifted up to 21-25 workers), and holds a count
    in the second half of the episode instead of climbing."""
    from rl_autoscaling.algorithms.sarsa.tabular import TWIN_EDGES, SarsaRun
    from rl_autoscaling.common.rollout import run_episode, training_seed
    from rl_autoscaling.env import OpenFaaSAutoscalingEnv
    from rl_autoscaling.policies.static import Static

    env_args = {"max_steps": 30, "step_duration": 8, "observation_window": 8,
                "initial_workers": 12}
    env = OpenFaaSAutoscalingEnv.from_env_config({**env_args, "reward.profile": "slo_cost"})
    hp = SarsaHyperparams()  # the twin recipe
    learner = SarsaLambdaLearner(Discretiser(TWIN_EDGES), hp, seed=42)
    for e in range(SarsaRun().episodes):
        learner.train_episode(env, seed=training_seed(10_000, e))
    held_out = [500_000 + i for i in range(10)]

    def figures(act):
        runs = [run_episode(env, act, seed=s) for s in held_out]
        return (np.mean([t.summary()["final_qos"] for t in runs]),
                np.mean([t.summary()["mean_workers"] for t in runs]), runs)

    qos, workers, runs = figures(lambda obs, info: learner.greedy_action(obs))
    _, static21, _ = figures(Static(21).act)
    assert qos >= 0.99
    assert workers < static21
    for trace in runs:
        late = list(trace.worker_counts)[len(trace.worker_counts) // 2:]
        assert max(late) - min(late) <= 3


# ---------------------------------------------------------------------------- exploring starts

def _twin(max_steps: int = 2):
    from rl_autoscaling.env import OpenFaaSAutoscalingEnv

    return OpenFaaSAutoscalingEnv(max_steps=max_steps, step_duration=8, observation_window=8,
                                  initial_workers=12)


class _StartRecorder:
    """The twin env, recording the worker count each reset starts with."""

    def __init__(self, env):
        self.env, self.starts = env, []
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.starts.append(int(obs[Obs.WORKERS]))
        return obs, info

    def step(self, action):
        return self.env.step(action)


def test_exploring_starts_start_that_fraction_of_episodes_in_the_range():
    hp = SarsaHyperparams(explore_starts=0.5, explore_start_min=20, explore_start_max=24)
    lrn = SarsaLambdaLearner(Discretiser(DEFAULT_EDGES), hp, seed=3)
    env = _StartRecorder(_twin())
    for ep in range(200):
        lrn.train_episode(env, seed=ep)
    moved = [s for s in env.starts if s != 12]
    assert 70 <= len(moved) <= 130  # Binomial(200, 0.5)
    assert set(moved) == {20, 21, 22, 23, 24}
    # the env's own start comes back on the next plain reset
    assert int(env.env.reset(seed=1)[0][Obs.WORKERS]) == 12


def test_no_exploring_starts_keeps_the_envs_start():
    plain = SarsaLambdaLearner(Discretiser(DEFAULT_EDGES), SarsaHyperparams(explore_starts=0.0),
                               seed=5)
    env = _StartRecorder(_twin())
    for ep in range(20):
        plain.train_episode(env, seed=ep)
    assert set(env.starts) == {12}


@pytest.mark.parametrize("kw, match", [
    ({"explore_starts": 1.5}, "explore_starts"),
    ({"explore_start_min": 10, "explore_start_max": 8}, "explore_start_min"),
    ({"explore_start_min": 2.5}, "explore_start_min"),
])
def test_bad_exploring_starts_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        SarsaHyperparams(**kw).validate()


@pytest.mark.parametrize("value", [0, 33, 2.5, "12", True])
def test_reset_option_initial_workers_is_checked(value):
    with pytest.raises(ValueError, match="initial_workers"):
        _twin().reset(seed=1, options={"initial_workers": value})


def test_load_aware_edges_bin_the_load_relative_to_capacity():
    """The 10th dimension bins arrival rate / (workers x 0.68 tasks/s): 6.8 tasks/s need 10
    workers, so 10 workers run at load 1.0, 20 at 0.5, 40 at 0.25; the queue bins as before."""
    from rl_autoscaling.algorithms.sarsa.tabular import LOAD_EDGES, TWIN_EDGES_LOAD

    d = Discretiser(TWIN_EDGES_LOAD)
    assert d.bins == (4, 4, 1, 1, 1, 1, 1, 1, 1, len(LOAD_EDGES) + 1) and d.observed == 9
    obs = np.array([2, 7, 3, 500, 10, 1.4, 2.5, 6.8, 0.97], dtype=np.float32)
    state = d(obs)
    assert len(state) == 10 and state[:2] == (2, 2)  # 2 phases left, 6-15 queued
    assert state[9] == LOAD_EDGES.index(1.0) + 1  # load 1.0: the bin from the 1.0 edge
    obs[4] = 20
    assert d(obs)[9] == LOAD_EDGES.index(0.5) + 1  # 0.5
    obs[4], obs[7] = 40, 6.8
    assert d(obs)[9] == 0  # 0.25 < 0.3: the lowest bin
    obs[4], obs[7] = 0, 3.0  # no worker counted yet: the load of one worker, 4.4
    assert d(obs)[9] == len(LOAD_EDGES)
    assert Discretiser.from_dict(d.to_dict()) == d  # model files keep the load edges
    with pytest.raises(ValueError, match="at most 11"):
        Discretiser([()] * 12)


def test_trend_edges_compare_the_recent_arrival_rate_with_the_one_before():
    """The 11th dimension: mean rate of the last 3 observations minus that of the 3 before, in
    units of the workers' capacity; the reset observation (rate 0) is skipped and ``reset``
    starts a new episode."""
    from rl_autoscaling.algorithms.sarsa.tabular import TREND_STEPS

    d = Discretiser([()] * 9 + [(), (-0.05, 0.05)])  # falling / flat / rising
    obs = np.zeros(9, dtype=np.float32)
    obs[Obs.WORKERS] = 10  # capacity 6.8 tasks/s

    def trend_bin(rate):
        obs[Obs.ARRIVAL_RATE] = rate
        return d(obs)[10]

    d.reset()
    assert trend_bin(0.0) == 1  # the reset observation: flat
    rising = [trend_bin(r) for r in (2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0)]
    assert rising[:6] == [1] * 6 and rising[-1] == 2  # (3 - 2) / 6.8 = 0.15 > 0.05
    assert TREND_STEPS == 3
    assert [trend_bin(r) for r in (1.0, 1.0, 1.0)][-1] == 0  # (1 - 3) / 6.8 < -0.05
    d.reset()
    assert [trend_bin(r) for r in (0.0, 5.0)] == [1, 1]  # one rate after reset: flat
