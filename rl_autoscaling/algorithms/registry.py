"""One description per algorithm: what the trainers, the Tune service and the export need to
know about SARSA(lambda) and DQN, in one place (instead of ``algo ==`` branches).

Each :class:`AlgorithmDescription` names the algorithm's settings models (its hyperparameters
and trainer settings, whose defaults are the recipes: :mod:`rl_autoscaling.common.settings`),
its Tune trial-directory prefix and model-file suffix, and builds (lazily: RLlib and torch
load only when used) its RLlib ``AlgorithmConfig`` from a trial's parameters, the RLlib
``Algorithm`` class Tune runs, the seed-format model file a checkpoint carries, and the greedy
policy that evaluates such a file.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..common.errors import UserError
from ..common.settings import recipe_instance
from .dqn.config import DqnHyperparams, DqnRun
from .sarsa.tabular import SarsaHyperparams, SarsaRun

if TYPE_CHECKING:
    from ..env import EnvSettings


@dataclass(frozen=True)
class AlgorithmDescription:
    """What the rest of the package knows about one algorithm."""

    name: str                       # "sarsa" | "dqn": --algo, run directories, model names
    trial_prefix: str               # Tune trial directories start with "<prefix>_"
    model_suffix: str               # ".pkl" | ".pt"
    hyperparams: type               # settings model of the RLlib hyperparameters
    run_settings: type              # settings model of episodes / checkpoints / evaluation
    rllib_config: Callable[[Mapping[str, Any]], Any]   # trial params -> AlgorithmConfig
    algorithm_class: Callable[[], type]                # the RLlib Algorithm Tune runs
    write_model: Callable[[Any, Path, Mapping[str, Any], int], Path]  # seed-format model file
                                    # (algorithm, path without suffix, trial params, episodes)
    policy_class: Callable[[], type]                   # greedy policy of a model file
    training_keys: Callable[[], set[str]]              # keys a Tune spec's training may use
    training_extras: Callable[[Any], dict[str, Any]] = lambda run: {}  # from trainer settings

    def recipe_training(self, recipe: str) -> dict[str, Any]:
        """The ``training`` section of a Tune trial under ``recipe``: the hyperparameters and
        the algorithm's keys from its trainer settings (``training_extras``)."""
        values = asdict(recipe_instance(self.hyperparams, recipe))
        values.update(self.training_extras(recipe_instance(self.run_settings, recipe)))
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @staticmethod
    def episodes_per_iteration(training: Mapping[str, Any]) -> int:
        """Training episodes one Tune iteration runs (one unless ``training`` says)."""
        return int(training.get("episodes_per_iteration", 1))

    def validate_training(self, training: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` for a bad hyperparameter of a Tune trial."""
        names = {f.name for f in fields(self.hyperparams)}
        self.hyperparams(**{k: v for k, v in training.items() if k in names}).validate()

    def recipe_spec(self, recipe: str, env_settings: EnvSettings) -> dict[str, Any]:
        """The Tune spec sections ``recipe`` sets (a spec file then overrides them): the
        trial's training and env (``env_settings``' ``env_config`` with the algorithm's QoS
        headroom and miss penalty), and the iterations, checkpoints and evaluations of the
        recipe's episodes."""
        run = recipe_instance(self.run_settings, recipe)
        env = env_settings.env_config(qos_headroom=run.qos_headroom,
                                      miss_penalty=run.miss_penalty)
        training = self.recipe_training(recipe)
        per = self.episodes_per_iteration(training)
        episodes = run.checkpoint_interval(int(env["max_steps"]))
        every = max(1, episodes // per) if episodes else 0
        total = run.episode_count(int(env["max_steps"]))
        return {"stop": {"training_iteration": max(1, total // per)},
                "checkpoint": {"frequency": every},
                "evaluation": {"interval": every, "duration": run.eval_episodes},
                "env_config": dict(env), "training": training}

    def load_policy(self, path: str | Path):
        return self.policy_class().load(path)


# ---------------------------------------------------------------------------- SARSA(lambda)

def _sarsa_config(params: Mapping[str, Any]):
    from ..env import RAY_ENV_NAME, register_ray_env
    from .sarsa.algorithm import SarsaLambdaConfig

    register_ray_env()
    config = (SarsaLambdaConfig().environment(RAY_ENV_NAME,
                                              env_config=dict(params.get("env_config", {})))
              .training(**dict(params.get("training", {}))))
    if params.get("seed") is not None:
        config.debugging(seed=params["seed"])
    return config


def _sarsa_class() -> type:
    from .sarsa.algorithm import SarsaLambda

    return SarsaLambda


def _sarsa_write(algorithm, path: Path, params: Mapping[str, Any], episode: int) -> Path:
    return algorithm.learner.save(path.with_suffix(".pkl"), episode=episode)


def _sarsa_policy() -> type:
    from .sarsa.policy import SarsaPolicy

    return SarsaPolicy


def _sarsa_extras(run: SarsaRun) -> dict[str, Any]:
    """The state and episodes per ``train()`` call of the trainer settings: a named state
    (resolved for each trial's workload when its algorithm is built), or the bins."""
    state = {"state": run.state} if run.bins is None else {"bins": list(run.bins), "edges": None}
    return {**state, "episodes_per_iteration": run.episodes_per_iteration()}


def _sarsa_keys() -> set[str]:
    from .sarsa.algorithm import SarsaLambdaConfig

    params = inspect.signature(SarsaLambdaConfig.training).parameters
    return {name for name, p in params.items()
            if name != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY}


# ---------------------------------------------------------------------------- DQN

def _dqn_config(params: Mapping[str, Any]):
    from .dqn.config import dqn_config
    from .dqn.training_env import register_dqn_env

    register_dqn_env()
    training = dict(params.get("training", {}))
    resources = dict(params.get("resources", {}))
    # the scale-out knobs are DQN hyperparameters: the replay ratio depends on them
    for key in ("num_env_runners", "num_envs_per_env_runner"):
        if key in resources:
            training[key] = resources[key]
    config = dqn_config(DqnHyperparams(**training), dict(params.get("env_config", {})),
                        seed=params.get("seed"))
    config.evaluation(evaluation_config={"explore": False})
    return config


def _dqn_class() -> type:
    from .dqn.learner import FarmDQN

    return FarmDQN


def _dqn_write(algorithm, path: Path, params: Mapping[str, Any], episode: int) -> Path:
    from ..env import env_creator
    from .dqn.schedule import epsilon_at
    from .dqn.weights import export_pt

    hp = DqnHyperparams(**dict(params.get("training", {})))
    env_config = dict(params.get("env_config", {}))
    probe = env_creator(env_config)  # the raw env's bounds: the .pt scaler's range
    space, n_actions = probe.observation_space, int(probe.action_space.n)
    probe.close()
    sampled = int(algorithm.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime"),
                                         default=0))
    return export_pt(algorithm, path.with_suffix(".pt"), hyperparams=hp.to_dict(),
                     env_config=env_config, obs_low=space.low.tolist(),
                     obs_high=space.high.tolist(), action_size=n_actions,
                     epsilon=epsilon_at(algorithm.config.epsilon, sampled),
                     episode=episode, rllib_checkpoint=str(path.parent))


def _dqn_policy() -> type:
    from .dqn.policy import DqnPolicy

    return DqnPolicy


def _dqn_keys() -> set[str]:
    return {f.name for f in fields(DqnHyperparams)}


ALGORITHMS: dict[str, AlgorithmDescription] = {
    "sarsa": AlgorithmDescription("sarsa", "SarsaLambdaFarm", ".pkl", SarsaHyperparams, SarsaRun,
                                  _sarsa_config, _sarsa_class, _sarsa_write, _sarsa_policy,
                                  _sarsa_keys, _sarsa_extras),
    "dqn": AlgorithmDescription("dqn", "DQNFarm", ".pt", DqnHyperparams, DqnRun, _dqn_config,
                                _dqn_class, _dqn_write, _dqn_policy, _dqn_keys),
}


def algorithm(name: str) -> AlgorithmDescription:
    """The description of algorithm ``name`` (one line naming the choices otherwise)."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise UserError(f"unknown algorithm {name!r}; choose one of "
                        f"{', '.join(ALGORITHMS)}") from None


def algorithm_of_trial(trial_name: str) -> AlgorithmDescription | None:
    """The algorithm whose Tune trials are named ``<prefix>_...``, or None."""
    for desc in ALGORITHMS.values():
        if trial_name.startswith(desc.trial_prefix + "_"):
            return desc
    return None


__all__ = ["ALGORITHMS", "AlgorithmDescription", "algorithm", "algorithm_of_trial"]
