"""Greedy DQN inference from a ``.pt`` model file in plain PyTorch (no Ray needed).

A DQN model file (``dqn_final.pt``, ``dqn_epNNNN.pt``, ``dqn_interrupt.pt``) is a dict of
tensors and plain values only, so ``torch.load(path, weights_only=True)`` reads it and a file
holding any other object is refused:

- ``format``: ``"rl_autoscaling.dqn"``; ``version``: 1, or 2 when the network has derived
  inputs (a build that reads version 1 only refuses those files instead of misreading them)
- ``state_dict``: the Q-network MLP as an ``nn.Sequential`` (Linear, ReLU, ..., Linear) state
  dict, keys ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ...
- ``obs_low`` / ``obs_high``: the env's observation bounds (lists of 9 floats); observations are
  clipped to them and scaled to [0, 1] exactly as during training (``ObservationScaler``)
- ``derived_inputs`` (version 2): the names of the values derived from each observation that
  follow its 9 scaled values in the network's input (:data:`DERIVED_INPUTS`: ``"load"``),
  ``derived_high``: their upper bounds (each scaled from [0, high] to [0, 1]); absent in
  version 1: the network reads the 9 observation values only
- ``hidden_layers``, ``obs_size`` (the network's input size: 9 + the derived inputs),
  ``action_size``
- ``hyperparams`` (the training flags), ``env_config``, ``epsilon``, ``episode``
- ``rllib_checkpoint``: directory name of the RLlib checkpoint saved beside the file (or "")

Greedy ties go to the lowest action index (``argmax``), as RLlib's greedy action does.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # torch loads where a network or a file is built (a flag check needs none)
    import torch
    from torch import nn

from ...common.modelio import ModelFileError, atomic_write_bytes
from ...observation import load_of

PT_FORMAT = "rl_autoscaling.dqn"


PT_VERSION = 2

#: Values derived from a raw observation that the network may read after its 9 scaled values:
#: name -> (function of the raw observation, upper bound it is clipped to). ``load`` is
#: arrival rate / (workers x 0.68 tasks/s) (``observation.load_of``), the share of the
#: workers' capacity the arrivals need: a ratio a ReLU MLP represents poorly from the two
#: scaled values; past 2 the farm is far short of capacity whatever the exact figure.
DERIVED_INPUTS: dict[str, tuple[Any, float]] = {"load": (load_of, 2.0)}


_REQUIRED = ("state_dict", "obs_low", "obs_high", "hidden_layers", "obs_size", "action_size")


class DqnModelError(ModelFileError):
    """A ``.pt`` file that is not a loadable DQN model."""


def derived_inputs_of(hyperparams: Mapping[str, Any]) -> tuple[str, ...]:
    """The derived inputs a network trained with ``hyperparams`` (``DqnHyperparams.to_dict()``
    or a model file's ``hyperparams``) reads: ``("load",)`` with ``load_input``, else none."""
    return ("load",) if hyperparams.get("load_input") else ()


class ObservationScaler:
    """Clip observations to ``[low, high]`` and scale them to ``[0, 1]`` per dimension, then
    append the ``derived`` values (:data:`DERIVED_INPUTS`, computed from the raw observation,
    each clipped to ``[0, derived_high]`` and scaled to [0, 1]).

    Dimensions with ``high <= low`` map to 0. Used by the training env wrapper and by every
    inference path, so training and inference see identical inputs; the model file records
    the bounds and the derived inputs (``to_model`` / ``from_model``).
    """

    def __init__(self, low: Sequence[float], high: Sequence[float],
                 derived: Sequence[str] = (),
                 derived_high: Sequence[float] | None = None) -> None:
        self.low = np.asarray(low, dtype=np.float32)
        self.high = np.asarray(high, dtype=np.float32)
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise ValueError(f"bounds must be two 1-D arrays of one shape, got "
                             f"{self.low.shape} and {self.high.shape}")
        span = self.high - self.low
        self._scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0
                               ).astype(np.float32)
        self.derived = tuple(str(d) for d in derived)
        unknown = [d for d in self.derived if d not in DERIVED_INPUTS]
        if unknown:
            raise ValueError(f"unknown derived input {unknown[0]!r}; known: "
                             f"{', '.join(DERIVED_INPUTS)}")
        if derived_high is None:
            derived_high = [DERIVED_INPUTS[d][1] for d in self.derived]
        self.derived_high = np.asarray(derived_high, dtype=np.float32).reshape(-1)
        if self.derived_high.shape != (len(self.derived),) or not np.all(self.derived_high > 0):
            raise ValueError(f"derived_high needs one bound > 0 per derived input "
                             f"{list(self.derived)}, got {self.derived_high.tolist()}")
        self._derive = [DERIVED_INPUTS[d][0] for d in self.derived]

    @property
    def size(self) -> int:
        """Length of a scaled observation (the network's input size)."""
        return int(self.low.shape[0]) + len(self.derived)

    @classmethod
    def from_space(cls, space, derived: Sequence[str] = ()) -> ObservationScaler:
        """From a Gymnasium ``Box`` (the env's ``observation_space``)."""
        return cls(space.low, space.high, derived)

    @classmethod
    def from_model(cls, data: Mapping[str, Any]) -> ObservationScaler:
        """The scaler a model file (``load_dqn_model``'s dict) records."""
        return cls(data["obs_low"], data["obs_high"], data.get("derived_inputs") or (),
                   data.get("derived_high"))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        scaled = (np.clip(obs, self.low, self.high) - self.low) * self._scale
        if self._derive:
            rows = obs.reshape(-1, obs.shape[-1])
            extra = np.array([[f(row) for f in self._derive] for row in rows],
                             dtype=np.float32).reshape(*obs.shape[:-1], len(self._derive))
            extra = np.clip(extra, 0.0, self.derived_high) / self.derived_high
            scaled = np.concatenate([scaled, extra], axis=-1)
        return scaled.astype(np.float32)


def build_q_network(obs_size: int, hidden_layers: Sequence[int], action_size: int) -> nn.Sequential:
    """The MLP ``obs -> hidden... (ReLU) -> Q-values`` (same layout as RLlib's DQN module)."""
    from torch import nn

    if not hidden_layers:
        raise ValueError("hidden_layers must hold at least one layer size")
    layers: list[nn.Module] = []
    size = int(obs_size)
    for width in hidden_layers:
        layers += [nn.Linear(size, int(width)), nn.ReLU()]
        size = int(width)
    layers.append(nn.Linear(size, int(action_size)))
    return nn.Sequential(*layers)


def save_dqn_model(
    path: str | Path,
    *,
    state_dict: Mapping[str, torch.Tensor],
    obs_low: Sequence[float],
    obs_high: Sequence[float],
    hidden_layers: Sequence[int],
    action_size: int,
    hyperparams: Mapping[str, Any] | None = None,
    env_config: Mapping[str, Any] | None = None,
    epsilon: float = 0.0,
    episode: int = 0,
    rllib_checkpoint: str = "",
    derived_inputs: Sequence[str] = (),
) -> Path:
    """Write a ``.pt`` model file atomically (``modelio.atomic_write_bytes``); returns its path.

    ``derived_inputs``: the values the network reads after the 9 observation values
    (:data:`DERIVED_INPUTS`); none writes a version-1 file, as before they existed.
    """
    path = Path(path)
    scaler = ObservationScaler(obs_low, obs_high, derived_inputs)
    payload = {
        "format": PT_FORMAT,
        "version": 2 if scaler.derived else 1,
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "obs_low": [float(x) for x in obs_low],
        "obs_high": [float(x) for x in obs_high],
        **({"derived_inputs": list(scaler.derived),
            "derived_high": scaler.derived_high.tolist()} if scaler.derived else {}),
        "hidden_layers": [int(h) for h in hidden_layers],
        "obs_size": scaler.size,
        "action_size": int(action_size),
        "hyperparams": _plain(dict(hyperparams or {})),
        "env_config": _plain(dict(env_config or {})),
        "epsilon": float(epsilon),
        "episode": int(episode),
        "rllib_checkpoint": str(rllib_checkpoint),
    }
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_dqn_model(path: str | Path) -> dict[str, Any]:
    """Read a ``.pt`` model file with ``torch.load(weights_only=True)`` and validate it
    (``ObservationScaler.from_model(data)`` is its observation scaling).

    Raises:
        DqnModelError: no such file, or the file holds objects other than tensors and plain values, or is not
            a DQN model of this package.
    """
    path = Path(path)
    if not path.is_file():
        raise DqnModelError(f"DQN model file not found: {path}")
    kind = _not_a_torch_file(path)
    if kind:
        raise DqnModelError(f"{path} is not a DQN model file: expected a .pt written by "
                            f"train_dqn (a torch zip archive), got {kind}")
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, BadZipFile, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DqnModelError(
            f"refusing to load {path}: not a plain-tensor DQN model file "
            f"(torch.load(weights_only=True) failed: {first})") from None
    if not isinstance(data, dict) or data.get("format") != PT_FORMAT:
        raise DqnModelError(f"{path} is not an rl_autoscaling DQN model file "
                            f"(missing format marker {PT_FORMAT!r})")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise DqnModelError(f"{path} lacks the keys {', '.join(missing)}")
    if int(data.get("version", 0)) > PT_VERSION:
        raise DqnModelError(f"{path} has format version {data['version']}; this build reads "
                            f"up to {PT_VERSION}")
    try:
        size = ObservationScaler.from_model(data).size
    except (ValueError, TypeError) as exc:
        raise DqnModelError(f"{path}: bad observation scaling: {exc}") from None
    if int(data["obs_size"]) != size:
        raise DqnModelError(f"{path}: obs_size {data['obs_size']} does not match its "
                            f"{len(data['obs_low'])} observation bounds and "
                            f"{len(data.get('derived_inputs') or ())} derived inputs")
    return data


def _not_a_torch_file(path: Path) -> str:
    """Why ``path`` cannot be a ``torch.save`` file ("" if it may be one)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        return f"an unreadable file ({exc.strerror or exc})"
    if not head:
        return "an empty file"
    if head[:1] == b"\x80":
        return "a pickle (a SARSA .pkl model?)"
    if head != b"PK\x03\x04":
        return "another kind of file"
    if not zipfile.is_zipfile(path):
        return "a truncated or damaged archive"
    return ""


def _plain(value: Any) -> Any:
    """Reduce a value to what ``torch.load(weights_only=True)`` accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):  # before float: np.float64
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)
