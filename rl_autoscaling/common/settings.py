"""Settings models: each default has one owner, and the flags are derived from it.

A settings model is a dataclass whose fields are declared with :func:`setting`: the field's
default is the ``twin`` recipe's value (the project's best-known one, the default of every
entry point), its metadata carries a one-line help text, the ``seed`` recipe's value when it
differs (the original toolkit's), the command-line flag, the allowed values and the bounds
(``ge``/``gt``/``le``/``lt``; fields annotated ``int``, and ``whole=True`` ones, must be whole
numbers; for a sequence: every item, and at least one). From that one declaration:

- :func:`recipe_values` gives a recipe's values (``twin``: the defaults; ``seed``: the
  defaults with the seed's values over them);
- :func:`add_flags` adds one argparse flag per field, with the chosen recipe's default and a
  help text naming the other recipe's value; :func:`values_from_flags` reads them back;
- :func:`check_bounds` refuses a model's out-of-bound value (``ValueError``, one line in the
  form ``gamma must be in [0, 1], got 1.5``): each model's ``validate()`` runs it and adds
  only its cross-field checks; :func:`check_values` checks loose values against a model's
  bounds (e.g. the env's constructor arguments against :class:`rl_autoscaling.env.EnvSettings`);
- :func:`check_keys` refuses unknown keys of a mapping (e.g. a Tune spec's ``training``).

Typical use (``python -m rl_autoscaling.train_sarsa --recipe seed --help`` shows the seed's
defaults)::

    @dataclass
    class Hyperparams:
        alpha: float = setting(0.02, "learning rate", seed=0.025, gt=0, le=1)
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import functools
import math
import numbers
import typing
from typing import Any, Mapping, Sequence

from .errors import UserError

#: The named recipes: ``twin`` (the default of every entry point) and ``seed`` (the original
#: toolkit's settings, for reproduction).
RECIPES = ("twin", "seed")
DEFAULT_RECIPE = "twin"
_NO_SEED = object()


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A field's allowed range: ``ge <= x``, ``gt < x``, ``x <= le``, ``x < lt`` (None: no
    such bound) and, if ``whole``, a whole number."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    whole: bool = False

    def __bool__(self) -> bool:
        return any(b is not None for b in (self.ge, self.gt, self.le, self.lt)) or self.whole

    def describe(self) -> str:
        """``in [0, 1]``, ``in (0, 1]``, ``>= 1``, ``> 0``, ``<= 1`` (empty: no range)."""
        low = (f"[{_num(self.ge)}" if self.ge is not None
               else f"({_num(self.gt)}" if self.gt is not None else None)
        high = (f"{_num(self.le)}]" if self.le is not None
                else f"{_num(self.lt)})" if self.lt is not None else None)
        if low and high:
            return f"in {low}, {high}"
        if low:
            return (">= " if low[0] == "[" else "> ") + low[1:]
        if high:
            return ("<= " if high[-1] == "]" else "< ") + high[:-1]
        return ""

    def contains(self, x: float) -> bool:
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def setting(default: Any, help: str, *, seed: Any = _NO_SEED, flag: str | None = None,
            choices: Sequence[Any] | None = None, metavar: str | None = None,
            cli: bool = True, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, whole: bool = False) -> Any:
    """A settings field: ``default`` (the twin recipe's value), a one-line ``help``, the seed
    recipe's value if it differs, an explicit ``flag`` name (default ``--field-name``), the
    allowed ``choices``; ``cli=False`` keeps the field off the command line. Bounds: ``ge``
    (>=), ``gt`` (>), ``le`` (<=), ``lt`` (<); ``whole=True``: a whole number (implied by an
    ``int`` annotation); ``None`` always passes (an optional field that is not set)."""
    meta = {"help": help, "seed": seed, "flag": flag, "choices": choices, "metavar": metavar,
            "cli": cli, "bounds": Bounds(ge, gt, le, lt, whole)}
    if isinstance(default, (list, dict, set)):
        raise TypeError("settings defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata=meta)


def _fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls) if "help" in f.metadata)


def check_recipe(recipe: str) -> str:
    if recipe not in RECIPES:
        raise UserError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return recipe


def recipe_values(cls: type, recipe: str = DEFAULT_RECIPE) -> dict[str, Any]:
    """Every field of settings model ``cls`` with the value ``recipe`` gives it."""
    check_recipe(recipe)
    out = {}
    for f in _fields(cls):
        seed = f.metadata["seed"]
        out[f.name] = seed if recipe == "seed" and seed is not _NO_SEED else f.default
    return out


def recipe_instance(cls: type, recipe: str = DEFAULT_RECIPE, **overrides: Any) -> Any:
    """``cls`` built with ``recipe``'s values, then ``overrides``."""
    return cls(**{**recipe_values(cls, recipe), **overrides})


def seed_differences(cls: type) -> dict[str, tuple[Any, Any]]:
    """``{field: (twin value, seed value)}`` for the fields the two recipes set differently."""
    twin, seed = recipe_values(cls, "twin"), recipe_values(cls, "seed")
    return {k: (twin[k], seed[k]) for k in twin if twin[k] != seed[k]}


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the scalar type behind an annotation, whether it is a sequence)."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    if origin in (tuple, list, collections.abc.Sequence) or tp in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return (args[0] if args else str), True
    return tp, False


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return str(value)


def add_flags(group: Any, cls: type, recipe: str = DEFAULT_RECIPE, *,
              skip: Sequence[str] = (), only: Sequence[str] | None = None,
              types: Mapping[str, Any] | None = None) -> None:
    """Add one flag per field of ``cls`` to an argparse parser or group, with ``recipe``'s
    values as defaults (``skip``: fields to leave out; ``only``: just these fields;
    ``types``: argparse types by field)."""
    hints = typing.get_type_hints(cls)
    values = recipe_values(cls, recipe)
    other = "seed" if recipe == "twin" else "twin"
    other_values = recipe_values(cls, other)
    for f in _fields(cls):
        if f.name in skip or (only is not None and f.name not in only) or not f.metadata["cli"]:
            continue
        base, many = _base_type(hints[f.name])
        default = values[f.name]
        help_text = f.metadata["help"]
        note = "" if other_values[f.name] == default else f"; {other}: {_show(other_values[f.name])}"
        bounds = f.metadata.get("bounds")
        if bounds and bounds.describe():
            help_text = f"{help_text}, {bounds.describe()}"
        kwargs: dict[str, Any] = {"dest": f.name, "default": default}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["help"] = f"{help_text} (default {default}{note})"
        else:
            kwargs["type"] = (types or {}).get(f.name, base)
            if many:
                kwargs["nargs"] = "+"
            if f.metadata["choices"]:
                kwargs["choices"] = f.metadata["choices"]
            if f.metadata["metavar"]:
                kwargs["metavar"] = f.metadata["metavar"]
            kwargs["help"] = f"{help_text} (default {_show(default)}{note})".replace("%", "%%")
        group.add_argument(flag_name(f), **kwargs)


def values_from_flags(cls: type, args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """The fields of ``cls`` read back from parsed flags (fields without a flag: their
    default), then ``overrides``."""
    out = {}
    for f in _fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            out[f.name] = tuple(value) if isinstance(value, list) else value
        else:
            out[f.name] = f.default
    out.update(overrides)
    return out


def check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    """Refuse a key of ``data`` not in ``allowed`` (one line naming it and the choices)."""
    for key in data:
        if key not in allowed:
            raise UserError(f"unknown key {where}.{key} (allowed: {', '.join(sorted(allowed))})")


@functools.cache
def bounded_fields(cls: type) -> dict[str, Bounds]:
    """``{field: Bounds}`` of the fields of settings model ``cls`` that declare a bound (an
    ``int`` annotation makes the bound a whole number's)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in _fields(cls):
        bounds = f.metadata.get("bounds") or Bounds()
        if bounds:
            if _base_type(hints[f.name])[0] is int:
                bounds = dataclasses.replace(bounds, whole=True)
            out[f.name] = bounds
    return out


def _bound_error(name: str, bounds: Bounds, value: Any) -> str | None:
    """Why ``value`` is outside ``bounds`` (one line), or None if it is inside."""
    if value is None:
        return None
    many = isinstance(value, (tuple, list))
    items = list(value) if many else [value]
    shown = items if many else value
    if many and not items:
        return f"{name} must not be empty"
    for x in items:
        if (isinstance(x, bool) or not isinstance(x, numbers.Real)
                or math.isnan(float(x))):
            return f"{name} must be a number, got {shown!r}"
    if bounds.whole and not all(float(x).is_integer() for x in items):
        return f"{name} must be a whole number, got {shown}"
    if not all(bounds.contains(x) for x in items):
        return f"{name} must be {bounds.describe()}{' each' if many else ''}, got {shown}"
    return None


def check_values(cls: type, **values: Any) -> None:
    """Raise ``ValueError`` (one line naming the field) for the first of ``values`` outside
    its bounds in settings model ``cls``; names without bounds pass."""
    bounds = bounded_fields(cls)
    for name, value in values.items():
        if name in bounds:
            message = _bound_error(name, bounds[name], value)
            if message:
                raise ValueError(message)


_T = typing.TypeVar("_T")


def check_bounds(obj: _T) -> _T:
    """Raise ``ValueError`` (one line naming the field) for the first field of the settings
    model instance ``obj`` outside its declared bounds; returns ``obj``."""
    check_values(type(obj), **{name: getattr(obj, name) for name in bounded_fields(type(obj))})
    return obj


def parse_recipe(argv: Sequence[str] | None, prog: str) -> str:
    """The ``--recipe`` given on a command line (before the full parser is built from it)."""
    pre = argparse.ArgumentParser(prog=prog, add_help=False)
    pre.add_argument("--recipe", choices=RECIPES, default=DEFAULT_RECIPE)
    known, _ = pre.parse_known_args(argv)
    return known.recipe


def add_recipe_flag(parser: argparse.ArgumentParser, recipe: str) -> None:
    parser.add_argument("--recipe", choices=RECIPES, default=recipe,
                        help="named settings: twin = the best the project knows (default), "
                             "seed = the original toolkit's values and reward; every other "
                             "flag's default comes from it")


__all__ = ["Bounds", "DEFAULT_RECIPE", "RECIPES", "add_flags", "add_recipe_flag",
           "bounded_fields", "check_bounds", "check_keys", "check_recipe", "check_values",
           "flag_name", "parse_recipe", "recipe_instance", "recipe_values", "seed_differences",
           "setting", "values_from_flags"]
