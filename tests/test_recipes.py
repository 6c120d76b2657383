"""Named recipes and their one owner per default (rl_autoscaling.common.settings).

The ``seed`` recipe must reproduce the original toolkit's settings: the values below are the
ones its README documents (its ``train_sarsa`` / ``train_dqn`` sections and flag lists) and
the original code's defaults where the README gives none (docs/algorithms.md records them).
"""

from __future__ import annotations

import dataclasses

import pytest

from rl_autoscaling.algorithms.dqn.config import DqnHyperparams
from rl_autoscaling.algorithms.sarsa.tabular import DEFAULT_BINS, SarsaHyperparams
from rl_autoscaling.env import EnvSettings

# The original toolkit's values (README "Training SARSA" / "Training DQN" and the defaults of
# its train_sarsa.py / train_dqn.py / rl_environment.py).
ORIGINAL_ENV = {"max_steps": 30, "step_duration": 8.0, "observation_window": 8.0,
                "initial_workers": 12, "task_seed": 42, "phase_shuffle": False,
                "phase_shuffle_seed": None, "reward_profile": "seed", "qos_headroom": 0.0,
                "miss_penalty": None}
ORIGINAL_SARSA = {"episodes": 100, "alpha": 0.025, "gamma": 0.985, "epsilon": 0.40,
                  "epsilon_min": 0.10, "epsilon_decay": 0.995, "trace_lambda": 0.5,
                  "trace_threshold": 1e-5, "checkpoint_every": 10, "eval_episodes": 3,
                  "seed": 42, "bins": list(DEFAULT_BINS), "tie_action": -1,
                  "explore_starts": 0.0}
ORIGINAL_DQN = {"episodes": 120, "gamma": 0.97, "learning_rate": 3e-4, "epsilon_end": 0.05,
                "epsilon_decay": 0.98, "batch_size": 64, "replay_capacity": 75000,
                "target_update": 600, "target_tau": 0.01, "warmup_steps": 400,
                "max_grad_norm": 3.0, "hidden_layers": [128, 64], "checkpoint_every": 10,
                "eval_episodes": 5, "seed": 42, "n_step": 1, "reward_clip": 100.0,
                "reward_scale": 1.0, "load_input": False}


def _parsed(module, argv):
    parser = module.build_parser("seed" if "--recipe" in argv else "twin")
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in vars(parser.parse_args(argv)).items()}


@pytest.mark.parametrize("trainer,original", [("sarsa", ORIGINAL_SARSA), ("dqn", ORIGINAL_DQN)])
def test_seed_recipe_reproduces_the_original_toolkits_settings(trainer, original):
    import importlib

    module = importlib.import_module(f"rl_autoscaling.training.{trainer}")
    args = _parsed(module, ["--recipe", "seed"])
    for key, value in {**ORIGINAL_ENV, **original}.items():
        assert args[key] == value, key
    # and the twin recipe differs where the project knows better
    twin = _parsed(module, [])
    assert twin["reward_profile"] == "slo_cost"
    if trainer == "dqn":  # the twin's DQN episodes follow the workload's length
        from rl_autoscaling.algorithms.dqn.config import DqnRun

        assert twin["episodes"] is None
        assert DqnRun().episode_count(30) == 720 > DqnRun().episode_count(77) == 281
        twin["episodes"] = DqnRun().episode_count(30)
    assert twin["episodes"] > original["episodes"]


@pytest.mark.parametrize("algo,original", [("sarsa", ORIGINAL_SARSA), ("dqn", ORIGINAL_DQN)])
def test_tune_seed_recipe_trains_the_original_settings(algo, original):
    from rl_autoscaling.service.tune import load_experiment

    spec = load_experiment(algo, "seed")
    hp = {k: v for k, v in original.items() if k in spec.training}
    assert hp and all(spec.training[k] == v for k, v in hp.items()), spec.training
    env = {k: v for k, v in ORIGINAL_ENV.items() if k in spec.env_config}
    assert all(spec.env_config[k] == v for k, v in env.items())
    assert spec.env_config["reward.profile"] == "seed"
    per_iteration = spec.training.get("episodes_per_iteration", 1)
    assert spec.stop["training_iteration"] * per_iteration == original["episodes"]
    assert spec.evaluation["duration"] == original["eval_episodes"]
    assert spec.checkpoint["frequency"] * per_iteration == original["checkpoint_every"]


def _set_default(monkeypatch, cls, name, value):
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    monkeypatch.setattr(f, "default", value)


def test_each_default_has_one_owner(monkeypatch, capsys):
    """Changing a default in its settings model changes the trainer's --help, the Tune trial
    config and the RLlib config built from it."""
    from rl_autoscaling.algorithms.sarsa.algorithm import SarsaLambdaConfig
    from rl_autoscaling.service.tune import algorithm_config, load_experiment
    from rl_autoscaling.training import dqn, sarsa

    _set_default(monkeypatch, SarsaHyperparams, "alpha", 0.0123)
    _set_default(monkeypatch, DqnHyperparams, "learning_rate", 0.000777)
    _set_default(monkeypatch, EnvSettings, "initial_workers", 17)

    sarsa_help = " ".join(sarsa.build_parser().format_help().split())
    dqn_help = " ".join(dqn.build_parser().format_help().split())
    assert "learning rate, in (0, 1] (default 0.0123; seed: 0.025)" in sarsa_help
    assert "Adam learning rate, > 0 (default 0.000777; seed: 0.0003)" in dqn_help
    assert sarsa_help.count("workers at reset, >= 1 (default 17)") == 1
    assert sarsa.build_parser().parse_args([]).alpha == 0.0123

    s = load_experiment("sarsa")
    d = load_experiment("dqn")
    assert s.training["alpha"] == 0.0123 and d.training["learning_rate"] == 0.000777
    assert s.env_config["initial_workers"] == 17 == d.env_config["initial_workers"]

    params = {"env_config": dict(s.env_config), "training": dict(s.training), "seed": 1,
              "evaluation": {}, "resources": {}}
    assert algorithm_config("sarsa", params).alpha == 0.0123
    assert SarsaLambdaConfig().alpha == 0.0123
    params = {"env_config": dict(d.env_config), "training": dict(d.training), "seed": 1,
              "evaluation": {}, "resources": {}}
    assert algorithm_config("dqn", params).lr == 0.000777
    # the seed recipe keeps its own value
    assert load_experiment("sarsa", "seed").training["alpha"] == 0.025


def test_load_input_has_one_owner(monkeypatch):
    """``DqnHyperparams.load_input`` alone decides whether the network reads the load: the
    trainer's flag, the Tune trial, the training env and the model file follow it; the seed
    recipe keeps the 9 observation values."""
    from rl_autoscaling.algorithms.dqn.model import derived_inputs_of
    from rl_autoscaling.service.tune import algorithm_config, load_experiment
    from rl_autoscaling.training import dqn

    for default in (True, False):
        _set_default(monkeypatch, DqnHyperparams, "load_input", default)
        assert dqn.build_parser().parse_args([]).load_input is default
        assert dqn.build_parser("seed").parse_args([]).load_input is False
        spec = load_experiment("dqn")
        assert spec.training["load_input"] is default
        assert load_experiment("dqn", "seed").training.get("load_input", False) is False
        params = {"env_config": dict(spec.env_config), "training": dict(spec.training),
                  "seed": 1, "evaluation": {}, "resources": {}}
        config = algorithm_config("dqn", params)
        assert config.env_config["derived_inputs"] == (["load"] if default else [])
        assert derived_inputs_of(spec.training) == (("load",) if default else ())


def test_state_option_picks_the_load_aware_edges():
    from rl_autoscaling.algorithms.sarsa.tabular import TWIN_EDGES_LOAD, TWIN_EDGES_PHASE, SarsaRun
    from rl_autoscaling.training import sarsa

    args = sarsa.build_parser().parse_args(["--state", "load"])
    hp, edges, bins, _ = sarsa._resolve_start(args)
    assert edges == [list(e) for e in TWIN_EDGES_LOAD] and len(bins) == len(TWIN_EDGES_LOAD)
    assert SarsaRun().state_edges()[0] == [list(e) for e in TWIN_EDGES_PHASE]
    # --bins overrides the named state (the seed recipe's explicit bins)
    args = sarsa.build_parser("seed").parse_args(["--recipe", "seed", "--state", "load"])
    assert sarsa._resolve_start(args)[1] is None


@pytest.mark.parametrize("config,steps,state", [
    (None, 8.0, "phase"),     # the default workload jumps from x0.3 to x1.5 of the base rate
    ("flash", 8.0, "schedule"),  # 20-s bursts of x2.6: nothing kept for 3 steps
    ("spike", 8.0, "schedule"),  # a 15-s spike of x3.0
    ("mixed", 8.0, "phase"),  # the generator draws bursts, and jumps it keeps
    ("day", 8.0, "load"),     # x0.3 -> x2.0 over 4 minutes: 0.6 workers per step
    ("ramp", 8.0, "phase"),   # x0.3 -> x1.7 over 90 s: 1.3 workers per step
    ("ramp", 4.0, "load"),    # ... which 4-s steps can follow (0.65 per step)
])
def test_auto_state_follows_the_load_only_where_the_farm_can(config, steps, state, capsys):
    from rl_autoscaling.algorithms.sarsa.tabular import STATES, SarsaRun, auto_state
    from rl_autoscaling.training import sarsa

    assert auto_state(config, steps)[0] == state
    argv = ["--step-duration", str(steps)] + (["--config", config] if config else [])
    _, edges, _, _ = sarsa._resolve_start(sarsa.build_parser().parse_args(argv))
    assert edges == [list(e) for e in STATES[state]]
    assert capsys.readouterr().out.startswith(f"state: {state} (auto: ")
    # an explicit --state wins over the workload's
    other = "twin" if state == "load" else "load"
    args = sarsa.build_parser().parse_args(argv + ["--state", other])
    assert sarsa._resolve_start(args)[1] == [list(e) for e in STATES[other]]
    assert SarsaRun(state=other).state_edges(config, steps)[0] == [list(e) for e in STATES[other]]



def test_tune_trials_resolve_the_auto_state_for_their_own_workload():
    """The Tune recipe carries the named state, and each trial's algorithm resolves it for the
    workload of its env_config (a spec that trains on the day gets the load-aware table)."""
    from rl_autoscaling.algorithms.sarsa.tabular import STATES
    from rl_autoscaling.service.tune import algorithm_config, load_experiment

    spec = load_experiment("sarsa", overrides={"env_config.config": "day"})
    assert spec.training["state"] == "auto" and "edges" not in spec.training
    built = []
    for workload, state in (("day", "load"), (None, "phase")):
        env = {**spec.env_config, "config": workload, "max_steps": 4}
        params = {"env_config": env, "training": dict(spec.training), "seed": 1,
                  "evaluation": {}, "resources": {}}
        algo = algorithm_config("sarsa", params).build_algo()
        built.append(algo)
        assert algo.learner.discretiser.edges == STATES[state]
    for algo in built:
        algo.stop()
    # explicit edges in a spec win over the recipe's state
    spec = load_experiment("sarsa", overrides={"training.edges": [[0.5], [], [], [], [],
                                                                  [], [], [], []]})
    params = {"env_config": {**spec.env_config, "max_steps": 4},
              "training": dict(spec.training), "seed": 1, "evaluation": {}, "resources": {}}
    config = algorithm_config("sarsa", params)
    assert config.state is None and config.edges[0] == [0.5]
    # the seed recipe keeps the seed's bins
    assert load_experiment("sarsa", "seed").training["bins"] == list(DEFAULT_BINS)


def test_the_twin_recipe_trains_and_chooses_dqn_with_qos_headroom(tmp_path):
    """DQN's twin-recipe slo_cost target is the farm config's SLO plus its QOS_HEADROOM, in
    train_dqn's and Tune's env_config, so the reward and the ranking (harness.slo_of) use it;
    SARSA's is the SLO itself (no headroom), as are the seed recipe's, --qos-headroom 0's and
    the comparison tools'."""
    from rl_autoscaling.algorithms.dqn.config import QOS_HEADROOM, DqnRun
    from rl_autoscaling.algorithms.sarsa.tabular import SarsaRun
    from rl_autoscaling.service.tune import load_experiment
    from rl_autoscaling.training import dqn, sarsa
    from rl_autoscaling.training.cli import env_config_from_args
    from rl_autoscaling.training.compare import build_parser as compare_parser
    from rl_autoscaling.training.harness import slo_of

    key = "reward.slo_cost.qos_target"
    assert 0 < QOS_HEADROOM < 0.01
    assert DqnRun().qos_headroom == QOS_HEADROOM and SarsaRun().qos_headroom == 0
    cfg = env_config_from_args(dqn.build_parser("twin").parse_args([]))
    assert cfg[key] == pytest.approx(0.99 + QOS_HEADROOM)
    assert slo_of(cfg) == pytest.approx(0.99 + QOS_HEADROOM)
    cfg = env_config_from_args(sarsa.build_parser("twin").parse_args([]))
    assert key not in cfg and slo_of(cfg) == pytest.approx(0.99)
    cfg = env_config_from_args(sarsa.build_parser("twin").parse_args(
        ["--qos-headroom", "0.004"]))
    assert slo_of(cfg) == pytest.approx(0.994)
    for module in (sarsa, dqn):
        assert key not in env_config_from_args(module.build_parser("seed").parse_args(
            ["--recipe", "seed"]))
        off = env_config_from_args(module.build_parser("twin").parse_args(
            ["--qos-headroom", "0"]))
        assert key not in off and slo_of(off) == pytest.approx(0.99)
    # over the workload's own SLO
    farm = tmp_path / "farm.yml"
    farm.write_text("reward:\n  slo_cost:\n    qos_target: 0.95\n")
    cfg = env_config_from_args(dqn.build_parser("twin").parse_args(["--config", str(farm)]))
    assert slo_of(cfg) == pytest.approx(0.95 + QOS_HEADROOM)
    # Tune's trials follow each algorithm's recipe
    assert load_experiment("dqn").env_config[key] == pytest.approx(0.99 + QOS_HEADROOM)
    assert key not in load_experiment("sarsa").env_config
    assert key not in load_experiment("dqn", "seed").env_config
    assert EnvSettings(reward_profile="seed").qos_target(QOS_HEADROOM) is None
    # a tool that judges policies has no such flag: it judges at the SLO
    with pytest.raises(SystemExit):
        compare_parser().parse_args(["--qos-headroom", "0.01"])


def test_the_twin_recipe_trains_without_the_miss_penalty():
    """The twin recipe trains SARSA and DQN with slo_cost's miss penalty at 0 (the trainers'
    and Tune's env_config, and the env then charges nothing extra for a missed SLO); the seed
    recipe keeps the farm config's (no key); --miss-penalty sets it."""
    from rl_autoscaling.algorithms.dqn.config import DqnRun
    from rl_autoscaling.algorithms.sarsa.tabular import SarsaRun
    from rl_autoscaling.env import OpenFaaSAutoscalingEnv
    from rl_autoscaling.service.tune import load_experiment
    from rl_autoscaling.training import dqn, sarsa
    from rl_autoscaling.training.cli import env_config_from_args

    key = "reward.slo_cost.miss_penalty"
    assert SarsaRun().miss_penalty == 0 and DqnRun().miss_penalty == 0
    for module in (sarsa, dqn):
        assert env_config_from_args(module.build_parser("twin").parse_args([]))[key] == 0
    assert env_config_from_args(dqn.build_parser("twin").parse_args(
        ["--miss-penalty", "7.5"]))[key] == 7.5
    for module in (sarsa, dqn):
        assert key not in env_config_from_args(module.build_parser("seed").parse_args(
            ["--recipe", "seed"]))
    assert load_experiment("sarsa").env_config[key] == 0
    assert load_experiment("dqn").env_config[key] == 0
    assert key not in load_experiment("sarsa", "seed").env_config
    # the seed reward has no such term: the key stays out
    assert key not in EnvSettings(reward_profile="seed").env_config(miss_penalty=0.0)

    # the env honours it: holding 12 workers misses the SLO; the two returns differ by the
    # config's 50 exactly
    returns = []
    for extra in ({}, {key: 0.0}):
        env = OpenFaaSAutoscalingEnv.from_env_config(
            {"max_steps": 30, "step_duration": 8, "observation_window": 8,
             "initial_workers": 12, "reward.profile": "slo_cost", **extra})
        env.reset(seed=10_001)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, info = env.step(1)
            total += r
            done = term or trunc
        assert info["episode_final_qos"] < 0.99
        returns.append(total)
        env.close()
    assert returns[1] - returns[0] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="miss_penalty"):
        SarsaRun(miss_penalty=-1.0)


def test_the_dqn_docs_quote_the_flags_defaults():
    """docs/algorithms.md's DQN table gives each flag with its default: parsing the quoted
    ``--flag value`` gives what ``train_dqn`` parses with no flags (a stale value, e.g. the
    seed's learning rate shown as the default, fails here)."""
    import re
    from pathlib import Path

    from rl_autoscaling.training import dqn as train_dqn

    doc = (Path(__file__).resolve().parents[1] / "docs" / "algorithms.md").read_text()
    table = doc.split("| aspect | what the code does | `train_dqn` flag", 1)[1]
    rows = table.split("\n\n", 1)[0].splitlines()[2:]
    defaults = _parsed(train_dqn, [])
    takes_value = {flag: action.nargs != 0 for flag, action in
                   train_dqn.build_parser("twin")._option_string_actions.items()}
    quoted = 0
    for row in rows:
        cell = re.sub(r"\(seed[^)]*\)", "", row.rstrip(" |").rsplit("|", 1)[1])
        for flag, *values in (span.split() for span in re.findall(r"`(--[^`]+)`", cell)):
            if takes_value[flag] and not values:  # named, not quoted with a value
                continue
            parsed = _parsed(train_dqn, [flag, *values])
            changed = {k: v for k, v in parsed.items() if v != defaults[k]}
            assert not changed, f"{flag} {' '.join(values)}: docs say {changed}, code " \
                                f"{ {k: defaults[k] for k in changed} }"
            quoted += 1
    assert quoted >= 12  # the table's flags were all found
