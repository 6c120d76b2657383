"""DQN on RLlib (new API stack), tuned to the seed's two-layer, Polyak-updated network (SPEC §6).

``dqn_config(hp, env_config)`` maps our flags (``DqnHyperparams``) to an RLlib ``DQNConfig``:

=============================  ==============================================================
seed rule                      RLlib knob (or our code, where RLlib lacks one)
=============================  ==============================================================
MLP 9 -> 128 -> 64 -> 3 ReLU   ``model_config``: ``fcnet_hiddens=hidden_layers`` (encoder,
                               ReLU after every layer) and ``head_fcnet_hiddens=[]`` (one
                               linear layer to the Q-values); ``dueling=False``
Double DQN, Huber, Adam lr     ``double_q=True``, ``td_error_loss_fn="huber"``, ``lr``
                               (Adam is RLlib's torch default; eps 1e-8 like torch's)
gradient-norm clip             ``grad_clip=max_grad_norm``, ``grad_clip_by="global_norm"``
uniform replay                 ``EpisodeReplayBuffer`` (not prioritised), ``capacity`` in env
                               steps; ``n_step=1``; ``SeededEpisodeReplayBuffer`` only seeds
                               its sampling RNG (RLlib leaves it unseeded)
batch, warm-up                 ``train_batch_size_per_learner``,
                               ``num_steps_sampled_before_learning_starts`` (env steps)
one update per env step        ``rollout_fragment_length=1`` and ``training_intensity =
                               batch_size`` (replayed / sampled steps), so each
                               ``training_step`` samples one env step and makes one update
Polyak every N updates         ``tau``, ``target_network_update_freq``; RLlib counts that
                               period in sampled env steps, ``PolyakDQNLearner`` counts
                               gradient updates instead (the seed's rule); tau = 1 is a hard
                               copy (RLlib's ``update_target_network``)
rewards clipped to +-100       ``DqnTrainingEnv`` (env wrapper, training only; RLlib's
                               ``clip_rewards`` is old-API-stack only)
observations scaled to [0, 1]  ``DqnTrainingEnv`` with ``ObservationScaler`` (clip to the env
                               bounds, then scale); the same scaler is stored in every ``.pt``
                               and used by ``DqnPolicy`` and the RLlib-checkpoint tester
per-episode epsilon decay      ``epsilon`` schedule, see ``epsilon_schedule``
=============================  ==============================================================

The training env is registered with Ray as ``OpenFaaSAutoscaling-v0-dqn`` (``register_dqn_env``:
the farm env wrapped by ``DqnTrainingEnv``), and ``DqnEpisodeMetrics`` logs each episode's final
QoS, unclipped return, scaling actions and unfinished tasks as env-runner metrics (so Tune and
the dashboard see them). The config works unchanged under Tune, with remote env runners too.

Epsilon mapping: the seed holds epsilon fixed within an episode and after episode k (k = 0, 1,
...) sets eps_k = max(end, start * decay^k). RLlib's schedule is piecewise-linear in sampled env
steps, so episode k is mapped to the steps [k T, (k + 1) T) with T = ``max_steps``: two points
(k T, eps_k) and ((k + 1) T - 1, eps_k) per episode make the schedule a step function, until eps
reaches the floor (RLlib then holds the last value). This is exact when every episode runs T
steps; episodes that end early (the workload drained) make later episodes start at earlier
points of the schedule, i.e. explore with a higher epsilon. On the twin with the CLI defaults
episodes average about 27.6 of 30 steps, so episode 120 explores with eps_109 = 0.088 instead
of eps_119 = 0.072. The ``epsilon`` in training records is the value RLlib actually used.

Time-limit truncation: RLlib masks the bootstrap term with ``terminateds`` only, so transitions
cut by ``max_steps`` bootstrap from the next state's value (the seed treated them as terminal;
bootstrapping is the correct choice for a time limit that is not part of the state).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

from ...env import env_creator
from ...common.metrics import EpisodeTrace
from .model import ObservationScaler

DQN_ENV_NAME = "OpenFaaSAutoscaling-v0-dqn"
MEAN_LOSS_SUM = "loss_sum"     # learner metric: sum of the losses of this iteration's updates
MEAN_LOSS_COUNT = "loss_count"  # learner metric: number of those updates


@dataclass
class DqnHyperparams:
    """The DQN flags of SPEC §6 (defaults are the SPEC defaults)."""

    gamma: float = 0.97                 # discount factor
    learning_rate: float = 3e-4         # Adam learning rate
    epsilon_start: float = 0.8          # exploration rate of the first episode
    epsilon_end: float = 0.05           # exploration floor
    epsilon_decay: float = 0.98         # per-episode multiplicative decay
    batch_size: int = 64                # transitions per gradient update
    replay_capacity: int = 75_000       # replay buffer size, env steps
    target_update: int = 600            # gradient updates between target updates
    target_tau: float = 0.01            # Polyak coefficient (1 -> hard copy)
    warmup_steps: int = 400             # env steps sampled before learning starts
    max_grad_norm: float = 3.0          # global gradient-norm clip
    hidden_layers: Sequence[int] = field(default_factory=lambda: (128, 64))  # MLP widths
    reward_clip: float = 100.0          # stored rewards clipped to [-reward_clip, reward_clip]

    def validate(self) -> "DqnHyperparams":
        """Raise ``ValueError`` naming the first out-of-range value."""
        checks = [
            (0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (0.0 <= self.epsilon_end <= self.epsilon_start <= 1.0,
             "need 0 <= epsilon_end <= epsilon_start <= 1, got "
             f"{self.epsilon_end} and {self.epsilon_start}"),
            (0.0 < self.epsilon_decay <= 1.0,
             f"epsilon_decay must be in (0, 1], got {self.epsilon_decay}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.replay_capacity >= self.batch_size,
             f"replay_capacity must be >= batch_size, got {self.replay_capacity}"),
            (self.target_update >= 1, f"target_update must be >= 1, got {self.target_update}"),
            (0.0 < self.target_tau <= 1.0,
             f"target_tau must be in (0, 1], got {self.target_tau}"),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}"),
            (len(self.hidden_layers) >= 1 and all(int(h) >= 1 for h in self.hidden_layers),
             f"hidden_layers must be positive sizes, got {list(self.hidden_layers)}"),
            (self.reward_clip > 0, f"reward_clip must be > 0, got {self.reward_clip}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden_layers"] = [int(h) for h in self.hidden_layers]
        return d


# ---------------------------------------------------------------------- epsilon schedule

def epsilon_for_episode(k: int, start: float, end: float, decay: float) -> float:
    """The seed's epsilon during episode ``k`` (0-based): max(end, start * decay^k)."""
    return max(end, start * decay ** k)


def epsilon_schedule(start: float, end: float, decay: float, steps_per_episode: int,
                     max_points: int = 20_000) -> list[tuple[int, float]]:
    """RLlib epsilon schedule (``[(timestep, value), ...]``) equal to the per-episode decay.

    A step function: eps_k on the env steps [k T, (k + 1) T - 1] (see the module docstring).
    """
    T = max(1, int(steps_per_episode))
    if decay >= 1.0 or start <= end:
        return [(0, float(max(start, end)))]
    points: list[tuple[int, float]] = []
    for k in range(max(1, max_points // 2)):
        eps = epsilon_for_episode(k, start, end, decay)
        points.append((k * T, eps))
        if eps <= end:
            break
        if T > 1:
            points.append(((k + 1) * T - 1, eps))
    return points


def epsilon_at(schedule: Sequence[tuple[int, float]], t: int) -> float:
    """Value of a piecewise-linear schedule at env step ``t`` (RLlib's interpolation)."""
    ts = [p[0] for p in schedule]
    vs = [p[1] for p in schedule]
    return float(np.interp(t, ts, vs))


# ---------------------------------------------------------------------- training env

class DqnTrainingEnv(gym.Wrapper):
    """The env as the DQN learner sees it: scaled observations and clipped rewards.

    It also records each episode's ``EpisodeTrace`` from the *raw* observations, rewards and
    ``info`` (so training metrics are the env's own numbers); finished traces accumulate in
    ``finished`` for the driver to collect.
    """

    def __init__(self, env: gym.Env, reward_clip: float | None = 100.0) -> None:
        super().__init__(env)
        self.scaler = ObservationScaler.from_space(env.observation_space)
        self.observation_space = gym.spaces.Box(0.0, 1.0, env.observation_space.shape,
                                                dtype=np.float32)
        self.reward_clip = reward_clip
        self.trace: EpisodeTrace | None = None
        self.finished: list[EpisodeTrace] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.trace = EpisodeTrace()
        return self.scaler(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.trace is not None:
            self.trace.record(obs, reward, info)
            if terminated or truncated:
                self.finished.append(self.trace)
                self.trace = None
        if self.reward_clip is not None:
            reward = float(np.clip(reward, -self.reward_clip, self.reward_clip))
        return self.scaler(obs), reward, terminated, truncated, info

    def pop_finished(self) -> list[EpisodeTrace]:
        out, self.finished = self.finished, []
        return out


def dqn_env_creator(env_config: Mapping[str, Any] | None = None) -> DqnTrainingEnv:
    """Ray env creator: the farm env (``env_config`` as for ``env_creator``) wrapped for DQN.

    The extra key ``reward_clip`` (default 100; ``None`` = no clipping) is consumed here.
    """
    cfg = dict(env_config or {})
    for key in ("num_envs",):  # added by RLlib's vector-env registration, not ours
        cfg.pop(key, None)
    clip = cfg.pop("reward_clip", 100.0)
    return DqnTrainingEnv(env_creator(cfg), reward_clip=clip)


def register_dqn_env(name: str = DQN_ENV_NAME) -> str:
    """Register the DQN training env with Ray's registry (idempotent); returns the name."""
    from ray.tune.registry import register_env

    register_env(name, dqn_env_creator)
    return name


def dqn_envs(runner) -> list[DqnTrainingEnv]:
    """The ``DqnTrainingEnv`` instances inside an env runner's (vector) env."""
    found: list[DqnTrainingEnv] = []
    stack = [getattr(runner, "env", None)]
    seen: set[int] = set()
    while stack:
        env = stack.pop()
        if env is None or id(env) in seen:
            continue
        seen.add(id(env))
        if isinstance(env, DqnTrainingEnv):
            found.append(env)
            continue
        stack.extend(getattr(env, "envs", None) or [])
        stack.append(getattr(env, "env", None))
    return found


def pop_finished_traces(runner) -> list[EpisodeTrace]:
    """Pop the finished episode traces of a runner's ``DqnTrainingEnv``s (runs inside the
    runner's process when called through ``foreach_env_runner``)."""
    return [t for env in dqn_envs(runner) for t in env.pop_finished()]


def training_envs(algo) -> list[DqnTrainingEnv]:
    """The ``DqnTrainingEnv`` instances of the algorithm's local env runner."""
    return dqn_envs(getattr(algo, "env_runner", None))


# ---------------------------------------------------------------------- env-runner metrics

EPISODE_METRICS = {  # env-runner metric -> key of the env's last ``info`` of an episode
    "final_qos": "episode_final_qos",
    "env_total_reward": "total_reward",    # the unclipped return
    "scaling_actions": "scaling_actions",
    "unfinished_tasks": "unfinished_tasks",
}


class DqnEpisodeMetrics(RLlibCallback):
    """Logs the farm's episode figures (``EPISODE_METRICS``) through RLlib's metrics logger,
    so Tune and the Ray dashboard see them under ``env_runners/<name>`` (mean of the last
    100 episodes)."""

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        if metrics_logger is None:
            return
        info = episode.get_infos(-1) or {}
        for name, key in EPISODE_METRICS.items():
            value = info.get(key)
            if value is not None:
                metrics_logger.log_value(name, float(value), reduce="mean", window=100)


# ---------------------------------------------------------------------- replay buffer

class SeededEpisodeReplayBuffer(EpisodeReplayBuffer):
    """RLlib's uniform ``EpisodeReplayBuffer`` with a seeded sampling RNG (RLlib's own draws
    from an unseeded ``default_rng``, which makes training irreproducible)."""

    def __init__(self, *args, seed: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(seed)


# ---------------------------------------------------------------------- learner

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


# ---------------------------------------------------------------------- config

def dqn_config(hp: DqnHyperparams, env_config: Mapping[str, Any], *,
               seed: int | None = None, env_name: str = DQN_ENV_NAME,
               iteration_steps: int | None = None) -> DQNConfig:
    """Map our flags to an RLlib ``DQNConfig`` on the new API stack (table above).

    Args:
        hp: the DQN hyperparameters.
        env_config: the farm env's config (constructor args, ``config`` path, overrides);
            ``max_steps`` (default 30) sets the epsilon schedule's episode length.
        seed: RLlib's seed (network init, exploration, replay sampling).
        env_name: the registered Ray env (``register_dqn_env()`` registers the default).
        iteration_steps: env steps per ``algo.train()`` call; default ``max_steps``.
    """
    hp.validate()
    steps_per_episode = int(env_config.get("max_steps", 30))
    schedule = epsilon_schedule(hp.epsilon_start, hp.epsilon_end, hp.epsilon_decay,
                                steps_per_episode)
    return (
        DQNConfig()
        .environment(env_name, env_config={**dict(env_config), "reward_clip": hp.reward_clip})
        .framework("torch")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1, rollout_fragment_length=1,
                     batch_mode="truncate_episodes")
        .learners(num_learners=0, learner_class=PolyakDQNLearner)
        .callbacks(DqnEpisodeMetrics)
        .rl_module(model_config=DefaultModelConfig(
            fcnet_hiddens=[int(h) for h in hp.hidden_layers], fcnet_activation="relu",
            head_fcnet_hiddens=[]))
        .training(
            gamma=hp.gamma,
            lr=hp.learning_rate,
            train_batch_size_per_learner=hp.batch_size,
            replay_buffer_config={"type": f"{__name__}.SeededEpisodeReplayBuffer",
                                  "capacity": int(hp.replay_capacity), "seed": seed},
            num_steps_sampled_before_learning_starts=int(hp.warmup_steps),
            training_intensity=float(hp.batch_size),
            target_network_update_freq=int(hp.target_update),
            tau=hp.target_tau,
            double_q=True,
            dueling=False,
            n_step=1,
            num_atoms=1,
            noisy=False,
            td_error_loss_fn="huber",
            grad_clip=hp.max_grad_norm,
            grad_clip_by="global_norm",
            epsilon=schedule,
        )
        .reporting(min_sample_timesteps_per_iteration=int(iteration_steps or steps_per_episode),
                   min_time_s_per_iteration=None, min_train_timesteps_per_iteration=0)
        .debugging(seed=seed)
    )


# ---------------------------------------------------------------------- weights

def q_linear_layers(module: torch.nn.Module) -> list[torch.nn.Linear]:
    """The Linear layers of an RLlib DQN module's Q-network (encoder, then Q head), in order."""
    layers: list[torch.nn.Linear] = []
    for part in (module.encoder, module.af):
        layers += [m for m in part.modules() if isinstance(m, torch.nn.Linear)]
    return layers


def q_network_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The online Q-network as an ``nn.Sequential`` state dict (``build_q_network`` layout)."""
    out: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(q_linear_layers(module)):
        out[f"{2 * i}.weight"] = layer.weight.detach().cpu().clone()
        out[f"{2 * i}.bias"] = layer.bias.detach().cpu().clone()
    return out


def load_q_network_state(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor],
                         include_target: bool = True) -> None:
    """Copy a ``build_q_network`` state dict into an RLlib DQN module (and its target net)."""
    parts = [(module.encoder, module.af)]
    if include_target and hasattr(module, "_target_encoder"):
        parts.append((module._target_encoder, module._target_af))
    for encoder, head in parts:
        layers = [m for p in (encoder, head) for m in p.modules()
                  if isinstance(m, torch.nn.Linear)]
        if 2 * len(layers) != len(state_dict):
            raise ValueError(f"model has {len(layers)} linear layers, the weights "
                             f"{len(state_dict) // 2}")
        with torch.no_grad():
            for i, layer in enumerate(layers):
                layer.weight.copy_(state_dict[f"{2 * i}.weight"])
                layer.bias.copy_(state_dict[f"{2 * i}.bias"])


def learner_module(algo):
    """The (local) learner's RLModule: online and target networks."""
    return algo.learner_group._learner.module["default_policy"]




# ---------------------------------------------------------------------- RLlib inference

RL_MODULE_SUBDIR = ("learner_group", "learner", "rl_module", "default_policy")


class RllibDqnPolicy:
    """Greedy policy straight from an RLlib DQN module (an algorithm checkpoint or a live one).

    ``act`` scales the raw observation with the same ``ObservationScaler`` as training and
    returns ``forward_inference``'s greedy action.
    """

    name = "DQN"

    def __init__(self, module, scaler: ObservationScaler) -> None:
        self.module = module
        self.scaler = scaler

    @classmethod
    def from_checkpoint(cls, path, scaler: ObservationScaler) -> "RllibDqnPolicy":
        """Load the module of an algorithm checkpoint dir (or of an RLModule checkpoint)."""
        from pathlib import Path

        from ray.rllib.core.rl_module.rl_module import RLModule

        path = Path(path)
        module_dir = path.joinpath(*RL_MODULE_SUBDIR)
        if not module_dir.is_dir():
            module_dir = path
        return cls(RLModule.from_checkpoint(str(module_dir.resolve())), scaler)

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> int:
        from ray.rllib.core.columns import Columns

        x = torch.as_tensor(self.scaler(obs)).unsqueeze(0)
        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: x})
        return int(out[Columns.ACTIONS][0])

    def __call__(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> int:
        return self.act(obs, info)


__all__ = [
    "DQN_ENV_NAME", "DqnEpisodeMetrics", "DqnHyperparams", "DqnTrainingEnv",
    "SeededEpisodeReplayBuffer", "PolyakDQNLearner", "RllibDqnPolicy",
    "RL_MODULE_SUBDIR",
    "dqn_config", "dqn_env_creator", "epsilon_at", "epsilon_for_episode", "epsilon_schedule",
    "learner_module", "load_q_network_state", "q_linear_layers", "q_network_state_dict",
    "register_dqn_env", "training_envs", "dqn_envs", "pop_finished_traces",
]
