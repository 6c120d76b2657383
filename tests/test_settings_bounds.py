"""Every bound a settings field declares (``setting(..., ge=/gt=/le=/lt=)``, whole numbers for
``int`` fields) is enforced: the model's validation refuses a value just outside it with one
line naming the field, a value on / just inside it passes, and the trainer CLI refuses the
out-of-bound flag with exit 2 and one ``error:`` line before anything runs.

The cases come from the fields' metadata (``bounded_fields``), so a new bounded field of these
models is tested without editing this file. Quick: no Ray, no training."""

from __future__ import annotations

import collections.abc
import typing

import pytest

from rl_autoscaling.algorithms.dqn.config import DqnHyperparams, DqnRun
from rl_autoscaling.algorithms.sarsa.tabular import SarsaHyperparams, SarsaRun
from rl_autoscaling.common.settings import (
    Bounds,
    bounded_fields,
    check_values,
    flag_name,
    recipe_values,
)
from rl_autoscaling.env import EnvSettings, OpenFaaSAutoscalingEnv

#: every settings model, and the trainer whose flags carry its fields
MODELS: dict[type, str] = {SarsaHyperparams: "sarsa", SarsaRun: "sarsa",
                           DqnHyperparams: "dqn", DqnRun: "dqn", EnvSettings: "sarsa"}

#: the other fields a value on a bound needs to pass the models' cross-field checks
#: (epsilon_end <= epsilon_start, batch_size <= replay_capacity, explore_start_min <=
#: explore_start_max, a whole number of DQN updates per training step)
PARTNERS: dict[tuple[type, str], dict[str, typing.Any]] = {
    (DqnHyperparams, "epsilon_start"): {"epsilon_end": 0.0},
    (DqnHyperparams, "epsilon_end"): {"epsilon_start": 1.0},
    (DqnHyperparams, "replay_capacity"): {"batch_size": 1},
    (DqnHyperparams, "updates_per_step"): {"rollout_fragment_length": 1024},
    (SarsaHyperparams, "explore_start_max"): {"explore_start_min": 1.0},
}

#: how far outside / inside a bound the cases go for fields that need not be whole (exact in
#: binary, so products such as updates_per_step x 1024 stay whole)
TINY = 2.0 ** -10


def _is_sequence(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union:
        hint = args[0]
    return typing.get_origin(hint) in (tuple, list, collections.abc.Sequence)


def _outside(bounds: Bounds) -> list[float]:
    """Values just outside each bound."""
    step = 1 if bounds.whole else TINY
    out = []
    if bounds.ge is not None:
        out.append(bounds.ge - step)
    if bounds.gt is not None:
        out.append(bounds.gt)
    if bounds.le is not None:
        out.append(bounds.le + step)
    if bounds.lt is not None:
        out.append(bounds.lt)
    return out


def _inside(bounds: Bounds) -> list[float]:
    """Values on each inclusive bound and just inside each bound."""
    step = 1 if bounds.whole else TINY
    out = []
    if bounds.ge is not None:
        out += [bounds.ge, bounds.ge + step]
    if bounds.gt is not None:
        out.append(bounds.gt + step)
    if bounds.le is not None:
        out += [bounds.le, bounds.le - step]
    if bounds.lt is not None:
        out.append(bounds.lt - step)
    return out


def _typed(cls: type, name: str, value: float):
    """``value`` as the field holds it (a one-item tuple for a sequence field)."""
    if bounded_fields(cls)[name].whole and float(value).is_integer():
        value = int(value)
    return (value,) if _is_sequence(cls, name) else value


def _build(cls: type, name: str, value: float):
    values = {**recipe_values(cls), **PARTNERS.get((cls, name), {})}
    return cls(**{**values, name: _typed(cls, name, value)}).validate()


CASES = [(cls, name, bounds) for cls in MODELS for name, bounds in bounded_fields(cls).items()]
IDS = [f"{cls.__name__}.{name}" for cls, name, _ in CASES]


def test_the_cases_come_from_every_models_metadata():
    names = {f"{cls.__name__}.{name}" for cls, name, _ in CASES}
    assert {cls for cls, _, _ in CASES} == set(MODELS)  # every model declares bounds
    assert {"SarsaHyperparams.alpha", "SarsaRun.episodes", "DqnHyperparams.hidden_layers",
            "DqnRun.checkpoint_every", "EnvSettings.max_steps",
            "EnvSettings.step_duration"} <= names
    for cls in MODELS:  # each model's recipes are inside its bounds
        for recipe in ("twin", "seed"):
            cls(**recipe_values(cls, recipe)).validate()


@pytest.mark.parametrize("cls, name, bounds", CASES, ids=IDS)
def test_a_value_just_outside_a_bound_is_refused_naming_the_field(cls, name, bounds):
    values = _outside(bounds)
    assert values, f"{cls.__name__}.{name} declares no range"
    for value in values:
        with pytest.raises(ValueError) as exc:
            _build(cls, name, value)
        message = str(exc.value)
        assert message.startswith(f"{name} must be {bounds.describe()}"), message
        assert "\n" not in message
    if bounds.whole:  # a fraction inside the range is refused too
        with pytest.raises(ValueError, match=f"^{name} must be a whole number"):
            _build(cls, name, _inside(bounds)[0] + 0.5)


@pytest.mark.parametrize("cls, name, bounds", CASES, ids=IDS)
def test_a_value_on_or_just_inside_a_bound_passes(cls, name, bounds):
    for value in _inside(bounds):
        assert getattr(_build(cls, name, value), name) == _typed(cls, name, value)


@pytest.mark.parametrize("cls, name, bounds", CASES, ids=IDS)
def test_non_numbers_are_refused(cls, name, bounds):
    for value in (float("nan"), "1", True):
        with pytest.raises(ValueError, match=f"^{name} must be a number"):
            cls(**{**recipe_values(cls), name: (value,) if _is_sequence(cls, name)
                   else value}).validate()


def _main(algo: str):
    if algo == "sarsa":
        from rl_autoscaling.training.sarsa import main
    else:
        from rl_autoscaling.training.dqn import main
    return main


def _flag_argv(cls: type, name: str, value: float) -> list[str]:
    flag = flag_name(next(f for f in cls.__dataclass_fields__.values() if f.name == name))
    typed = _typed(cls, name, value)
    if isinstance(typed, tuple):
        return [flag, *map(str, typed)]
    return [f"{flag}={typed!r}"]


CLI_CASES = [(cls, name, bounds) for cls, name, bounds in CASES
             if cls.__dataclass_fields__[name].metadata["cli"]]


@pytest.mark.parametrize("cls, name, bounds", CLI_CASES,
                         ids=[f"{c.__name__}.{n}" for c, n, _ in CLI_CASES])
def test_an_out_of_bound_flag_is_one_error_line_and_exit_2(cls, name, bounds, tmp_path,
                                                           capsys):
    out = tmp_path / "runs"
    for value in _outside(bounds):
        argv = [*_flag_argv(cls, name, value), "--output-dir", str(out)]
        assert _main(MODELS[cls])(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {name} must be"), (argv, lines)
        assert not out.exists()  # refused before the run directory (and any training)


@pytest.mark.parametrize("algo, argv, name", [
    ("dqn", ["--epsilon-start=1.5"], "epsilon_start"),
    ("dqn", ["--epsilon-end=1.5", "--epsilon-start=0.5"], "epsilon_end"),
    ("sarsa", ["--explore-start-range", "0", "5"], "explore_start_min"),
    ("sarsa", ["--explore-start-range", "5", "0"], "explore_start_max"),
])
def test_hand_made_flags_of_bounded_fields_are_checked_too(algo, argv, name, tmp_path, capsys):
    """Fields without a derived flag (``cli=False``) that a trainer sets from its own flag."""
    out = tmp_path / "runs"
    assert _main(algo)([*argv, "--output-dir", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {name} must be"), lines
    assert not out.exists()


@pytest.mark.parametrize("name, value", [("max_steps", 0), ("step_duration", 0.0),
                                         ("observation_window", -1.0), ("max_steps", 2.5),
                                         ("task_seed", -1), ("phase_shuffle_seed", -3)])
def test_the_env_checks_its_arguments_against_env_settings_bounds(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        OpenFaaSAutoscalingEnv(**{name: value})


def test_check_values_ignores_unbounded_names_and_unset_optionals():
    check_values(EnvSettings, backend="simulated", max_steps=None, phase_shuffle_seed=None)
    with pytest.raises(ValueError, match=r"^max_steps must be >= 1, got 0$"):
        check_values(EnvSettings, max_steps=0)
