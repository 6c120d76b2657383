"""The learner side: Polyak target updates counted in gradient updates, a seeded replay buffer, and
the learner metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

MEAN_LOSS_SUM = "loss_sum"     # learner metric: sum of the losses of this iteration's updates


MEAN_LOSS_COUNT = "loss_count"  # learner metric: number of those updates


class SeededEpisodeReplayBuffer(EpisodeReplayBuffer):
    """RLlib's uniform ``EpisodeReplayBuffer`` with a seeded sampling RNG (RLlib's own draws
    from an unseeded ``default_rng``, which makes training irreproducible)."""

    def __init__(self, *args, seed: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(seed)


class PolyakDQNLearner(DQNTorchLearner):
    """RLlib's torch DQN learner with the seed's target rule and a per-iteration mean loss.

    - The target period counts gradient updates (RLlib counts sampled env steps): after every
      ``target_network_update_freq`` updates, target <- (1 - tau) target + tau online.
    - Logs ``loss_sum`` and ``loss_count`` (reduce ``sum``) per module, so the driver gets
      the exact mean loss of an iteration's updates.
    """

    def build(self) -> None:
        super().build()
        self.num_gradient_updates = 0

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        loss = super().compute_loss_for_module(module_id=module_id, config=config,
                                               batch=batch, fwd_out=fwd_out)
        self.metrics.log_value((module_id, MEAN_LOSS_SUM), float(loss.detach()), reduce="sum")
        self.metrics.log_value((module_id, MEAN_LOSS_COUNT), 1, reduce="sum")
        return loss

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        # Count updates, and let RLlib's target logic see that count as its timestep.
        self.num_gradient_updates += 1
        super().after_gradient_based_update(
            timesteps={**timesteps, NUM_ENV_STEPS_SAMPLED_LIFETIME: self.num_gradient_updates})
