"""The learner side: Polyak target updates counted in gradient updates, a seeded replay buffer, and
the learner metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.algorithms.dqn import DQN
from ray.rllib.algorithms.dqn.dqn_learner import DQNLearner
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer
from ray.rllib.utils.torch_utils import update_target_network

MEAN_LOSS_SUM = "loss_sum"     # learner metric: sum of the losses of this iteration's updates


MEAN_LOSS_COUNT = "loss_count"  # learner metric: number of those updates


class SeededEpisodeReplayBuffer(EpisodeReplayBuffer):
    """RLlib's uniform ``EpisodeReplayBuffer`` with a seeded sampling RNG (RLlib's own draws
    from an unseeded ``default_rng``, which makes training irreproducible)."""

    def __init__(self, *args, seed: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(seed)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "rng": self.rng.bit_generator.state}

    def set_state(self, state) -> None:
        super().set_state(state)
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]


def set_torch_threads(config) -> None:
    """Apply ``learner_config_dict["torch_threads"]`` (0 or absent: leave torch's default)."""
    import torch

    threads = int((getattr(config, "learner_config_dict", None) or {}).get("torch_threads", 0))
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


REPLAY_BUFFER_STATE = "replay_buffer"  # key of the buffer in a FarmDQN checkpoint's state


class FarmDQN(DQN):
    """RLlib's DQN whose checkpoints carry the replay buffer (and its sampling RNG) when
    ``store_buffer_in_checkpoints`` is set: RLlib's new API stack only does that on the old
    stack, so a restored run would otherwise re-warm an empty buffer."""

    def get_state(self, *args, **kwargs):
        state = super().get_state(*args, **kwargs)
        buffer = getattr(self, "local_replay_buffer", None)
        if buffer is not None and self.config.store_buffer_in_checkpoints:
            state[REPLAY_BUFFER_STATE] = buffer.get_state()
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        restore_replay_buffer(self, state)


def restore_replay_buffer(algo, state) -> bool:
    """Set ``algo``'s replay buffer from a checkpoint ``state`` that holds one."""
    buffer = getattr(algo, "local_replay_buffer", None)
    if buffer is None or REPLAY_BUFFER_STATE not in state:
        return False
    buffer.set_state(state[REPLAY_BUFFER_STATE])
    algo._restored_replay_buffer_size = replay_buffer_size(algo)
    return True


def restore_replay_buffer_from_path(algo, path) -> bool:
    """Set ``algo``'s replay buffer from the RLlib checkpoint directory ``path`` (what
    ``save_to_path`` wrote): its base state file, ``<Algorithm.STATE_FILE_NAME>.pkl`` or
    ``.msgpack``, holds the buffer when the checkpoint carries one. Nothing else of ``algo``
    changes. The file is a pickle: trusted checkpoints only."""
    import pickle
    from pathlib import Path

    base = Path(path) / algo.STATE_FILE_NAME
    if base.with_suffix(".msgpack").is_file():
        from ray.rllib.utils.checkpoints import try_import_msgpack

        msgpack = try_import_msgpack(error=True)
        with base.with_suffix(".msgpack").open("rb") as f:
            state = msgpack.load(f, strict_map_key=False)
    elif base.with_suffix(".pkl").is_file():
        with base.with_suffix(".pkl").open("rb") as f:
            state = pickle.load(f)
    else:
        return False
    return restore_replay_buffer(algo, state)


def replay_buffer_size(algo) -> int:
    """Env steps held in ``algo``'s replay buffer."""
    buffer = getattr(algo, "local_replay_buffer", None)
    return 0 if buffer is None else int(buffer.get_num_timesteps())


class PolyakDQNLearner(DQNTorchLearner):
    """RLlib's torch DQN learner with the seed's target rule and a per-iteration mean loss.

    - The target period counts gradient updates (RLlib counts sampled env steps): after every
      ``target_network_update_freq`` updates, target <- (1 - tau) target + tau online. A
      learner call runs ``len(batch) / minibatch_size`` updates (``config.minibatch_size``,
      which RLlib's DQN does not pass itself); each one counts.
    - Logs ``loss_sum`` and ``loss_count`` (reduce ``sum``) per module, so the driver gets
      the exact mean loss of an iteration's updates.
    """

    def build(self) -> None:
        set_torch_threads(self.config)
        super().build()
        self.num_gradient_updates = 0

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        loss = super().compute_loss_for_module(module_id=module_id, config=config,
                                               batch=batch, fwd_out=fwd_out)
        self.metrics.log_value((module_id, MEAN_LOSS_SUM), float(loss.detach()), reduce="sum")
        self.metrics.log_value((module_id, MEAN_LOSS_COUNT), 1, reduce="sum")
        return loss

    def update(self, *args, minibatch_size=None, **kwargs):
        return super().update(*args, minibatch_size=minibatch_size or self.config.minibatch_size,
                              **kwargs)

    def _update(self, batch):
        out = super()._update(batch)
        self.num_gradient_updates += 1
        if self.num_gradient_updates % int(self.config.target_network_update_freq) == 0:
            for module_id, module in self.module._rl_modules.items():
                if isinstance(module.unwrapped(), TargetNetworkAPI):
                    tau = self.config.get_config_for_module(module_id).tau
                    for main_net, target_net in module.unwrapped().get_target_network_pairs():
                        update_target_network(main_net=main_net, target_net=target_net, tau=tau)
        return out

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        # The target updates happen per update in ``_update``; skip RLlib's env-step rule.
        super(DQNLearner, self).after_gradient_based_update(timesteps=timesteps)
