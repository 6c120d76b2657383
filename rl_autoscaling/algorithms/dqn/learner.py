"""The algorithm and learner side: a training step that replays flat transitions, Polyak target
updates counted in gradient updates, checkpoints that carry the replay buffer, and the learner
metrics.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.dqn import DQN
from ray.rllib.algorithms.dqn.dqn_learner import DQNLearner
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    REPLAY_BUFFER_ADD_DATA_TIMER,
    REPLAY_BUFFER_SAMPLE_TIMER,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TD_ERROR_KEY,
    TIMERS,
)
from ray.rllib.utils.torch_utils import update_target_network

MEAN_LOSS_SUM = "loss_sum"     # learner metric: sum of the losses of this iteration's updates


MEAN_LOSS_COUNT = "loss_count"  # learner metric: number of those updates


def set_torch_threads(config) -> None:
    """Apply ``learner_config_dict["torch_threads"]`` (0 or absent: leave torch's default)."""
    import torch

    threads = int((getattr(config, "learner_config_dict", None) or {}).get("torch_threads", 0))
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


REPLAY_BUFFER_STATE = "replay_buffer"  # key of the buffer in a FarmDQN checkpoint's state


class FarmDQN(DQN):
    """RLlib's DQN with a faster training step, and checkpoints that carry the replay buffer.

    - ``training_step`` is RLlib's new-API-stack DQN step (sample the env runners, add to the
      buffer, once warm: one learner call, then sync the weights) except that the buffer is a
      ``FlatEpisodeReplayBuffer`` whose sampled columns go to the learner as a
      ``MultiAgentBatch``: no per-transition episode slicing and no learner connector (they
      were ~75 % of the time of a training step). Priorities are not updated: replay is
      uniform.
    - Checkpoints carry the buffer (and its sampling RNG) when ``store_buffer_in_checkpoints``
      is set: RLlib's new API stack only does that on the old stack, so a restored run would
      otherwise re-warm an empty buffer.
    """

    def _training_step_new_api_stack(self) -> None:
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, env_runner_results = synchronous_parallel_sample(
                worker_set=self.env_runner_group, concat=True,
                sample_timeout_s=self.config.sample_timeout_s, _uses_new_env_runners=True,
                _return_metrics=True)
        self.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
            self.local_replay_buffer.add(episodes)

        sampled = self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME),
                                    default=0)
        if sampled < self.config.num_steps_sampled_before_learning_starts:
            return
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_SAMPLE_TIMER)):
            columns = self.local_replay_buffer.sample_columns(
                self.config.total_train_batch_size)
            batch = MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(columns)},
                                    env_steps=len(columns["weights"]))
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = self.learner_group.update(batch=batch, timesteps={
                NUM_ENV_STEPS_SAMPLED_LIFETIME: sampled,
                NUM_AGENT_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                    (ENV_RUNNER_RESULTS, NUM_AGENT_STEPS_SAMPLED_LIFETIME), default={}),
            })
            for result in learner_results:  # per-sample TD errors serve prioritised replay
                for module_results in result.values():
                    module_results.pop(TD_ERROR_KEY, None)
            self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group,
                policies=set(learner_results[0].keys()) - {ALL_MODULES}, global_vars=None,
                inference_only=True)

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
