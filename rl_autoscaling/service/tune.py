"""The training service: ``python -m rl_autoscaling.tune --algo {sarsa,dqn}``.

Runs a Ray Tune experiment of the SARSA(lambda) Algorithm or RLlib DQN on the farm env (the
simulated twin unless ``env_config.backend`` says ``live``), with Tune's checkpointing,
evaluation intervals, trial directories, progress reporting and CSV/JSON/TensorBoard logs, then
exports every trial into the seed's run layout (``<output>/<algo>_run_<ts>/``) and prints the
best trial's run directory.

Re-running the same command after a crash, Ctrl+C or a killed head resumes the experiment
from ``<storage-path>/<name>`` (Tune's restore) instead of starting over (``--resume auto``,
the default): every trial continues from its latest checkpoint (for DQN with its replay
buffer). The experiment directory must be trusted: Tune's restore unpickles it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..algorithms.registry import ALGORITHMS, algorithm
from ..common.envvars import environ
from ..common.errors import EXIT_INTERRUPTED, error_message, run_guarded, signals_interrupt
from ..common.settings import DEFAULT_RECIPE, add_recipe_flag, recipe_instance
from ..config import ConfigError
from .specs import (
    TUNE_CONFIG_DIR,
    ExperimentSpec,
    is_space,
    load_spec,
    parse_set,
    to_tune_space,
)

ALGOS = tuple(ALGORITHMS)


# --------------------------------------------------------------------------- algorithms


def training_keys(algo: str) -> set[str]:
    """Hyperparameter names a spec's ``training`` section may use."""
    return algorithm(algo).training_keys()


def algorithm_config(algo: str, params: Mapping[str, Any]):
    """One trial's RLlib AlgorithmConfig from its resolved parameters (no search spaces left).

    ``params`` holds ``env_config``, ``training``, ``evaluation`` ({interval, duration}),
    ``resources`` (env-runner settings) and ``seed``.
    """
    from ray.rllib.callbacks.callbacks import RLlibCallback

    from .kpis import AutoscalingCallbacks

    evaluation = dict(params.get("evaluation", {}))
    resources = dict(params.get("resources", {}))
    config = algorithm(algo).rllib_config(params)
    interval = int(evaluation.get("interval") or 0)
    if interval > 0:
        config.evaluation(evaluation_interval=interval,
                          evaluation_duration=int(evaluation.get("duration", 3)),
                          evaluation_duration_unit="episodes")
    if resources:
        config.env_runners(**resources)
    # Add ours to the algorithm's own callbacks (DQN's episode metrics) instead of replacing them.
    existing = config.callbacks_class
    existing = list(existing) if isinstance(existing, (list, tuple)) else [existing]
    config.callbacks([c for c in existing if c is not RLlibCallback] + [AutoscalingCallbacks])
    return config


def _representatives(value: Any) -> list[Any]:
    """The values of a spec entry to validate: every grid/choice option, a range's ends,
    a plain value itself (nested mappings: their first representative)."""
    if is_space(value):
        (kind, args), = value.items()
        if not isinstance(args, list) or not args:
            return []  # to_tune_space reports it
        if kind in ("grid", "choice"):
            return [_representatives(a)[0] if _representatives(a) else a for a in args]
        ends = list(args[:2])
        if kind == "randint" and len(ends) == 2 and isinstance(ends[1], int):
            ends[1] -= 1  # exclusive upper bound
        return ends
    if isinstance(value, Mapping):
        return [{k: (_representatives(v) or [v])[0] for k, v in value.items()}]
    return [value]


def _candidates(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Concrete versions of a spec section that cover each entry's representatives."""
    reps = {k: _representatives(v) or [v] for k, v in section.items()}
    base = {k: r[0] for k, r in reps.items()}
    out = [base]
    for key, values in reps.items():
        out += [{**base, key: v} for v in values[1:]]
    return out


def validate_spec(spec: ExperimentSpec) -> None:
    """Check the trials' env and hyperparameters with the validators the CLIs use, before Ray
    starts: the env is built once from each ``env_config`` candidate (``ConfigError`` /
    ``ValueError`` naming the key), and ``training`` goes through the algorithm's settings
    model (``SarsaHyperparams`` / ``DqnHyperparams``). Search spaces are checked at their
    options and bounds."""
    from ..env import OpenFaaSAutoscalingEnv

    for env_config in _candidates(spec.env_config):
        if env_config.get("backend") == "live":  # check the settings, not the Redis server
            env_config = {k: v for k, v in env_config.items()
                          if k not in ("backend", "backend_options")}
        try:
            OpenFaaSAutoscalingEnv.from_env_config(env_config).close()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"env_config: {error_message(exc)}") from None
    for training in _candidates(spec.training):
        try:
            algorithm(spec.algo).validate_training(training)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"training: {error_message(exc)}") from None


def _is_flat(config: Any) -> bool:
    return isinstance(config, Mapping) and "training" in config and "class" not in config


def trainable_class(algo: str) -> type:
    """The RLlib Algorithm class Tune runs, taking our flat per-trial parameters."""
    from ray.tune.result import TRIAL_INFO

    base = algorithm(algo).algorithm_class()

    class AutoscalingTrainable(base):  # type: ignore[misc, valid-type]
        """``base`` whose Tune config is our flat parameter dict (search spaces resolved)."""

        def __init__(self, config=None, **kwargs):
            self._farm_params = dict(config) if _is_flat(config) else {}
            trial_info = self._farm_params.get(TRIAL_INFO)
            if _is_flat(config):
                config = algorithm_config(algo, config)
            super().__init__(config=config, **kwargs)
            # Tune's trial info (experiment and trial names: the KPI gauges' tags) is lost
            # when RLlib turns the dict into an AlgorithmConfig before Trainable reads it.
            self._trial_info = self._trial_info or trial_info

        def save_checkpoint(self, checkpoint_dir):
            out = super().save_checkpoint(checkpoint_dir)
            write_model_file(self, algo, Path(checkpoint_dir))
            return out

        @classmethod
        def default_resource_request(cls, config):
            if _is_flat(config):
                config = algorithm_config(algo, config)
            return super().default_resource_request(config)

    name = algorithm(algo).trial_prefix  # trial directory prefix
    AutoscalingTrainable.__name__ = AutoscalingTrainable.__qualname__ = name
    return AutoscalingTrainable


def write_model_file(algorithm_obj, algo: str, checkpoint_dir: Path) -> Path:
    """Write the seed-format model (.pkl / .pt) and ``farm_model.json`` into a checkpoint.

    The exporter copies these into ``models/`` without loading any pickle or Ray checkpoint.
    """
    from ..common.modelio import atomic_write_json
    from .export import MODEL_INFO
    from .kpis import episodes_done

    episode = episodes_done(algorithm_obj)
    path = algorithm(algo).write_model(algorithm_obj, checkpoint_dir / "model",
                                       getattr(algorithm_obj, "_farm_params", {}), episode)
    info = {"file": Path(path).name, "episode": episode,
            "training_iteration": int(getattr(algorithm_obj, "training_iteration", 0))}
    if getattr(algorithm_obj, "local_replay_buffer", None) is not None:
        from ..algorithms.dqn.learner import replay_buffer_size

        info["replay_buffer_size"] = replay_buffer_size(algorithm_obj)
    atomic_write_json(checkpoint_dir / MODEL_INFO, info)
    return Path(path)


# --------------------------------------------------------------------------- experiment

#: Tune's experiment state (``experiment_state-*.json``) names each trial's latest checkpoint,
#: and a restore resumes every trial from the checkpoint it names. Tune writes it every 10 s at
#: most by default ("auto"), so a driver killed (kill -9, a lost head) a few checkpoints after
#: the last write resumes its trials from an older checkpoint, or from scratch. "0" writes it
#: after every step of Tune's loop, so it names a checkpoint as soon as Tune has registered it
#: (about 5 % of one core in the driver on a 1-trial smoke run). Set ``TUNE_GLOBAL_CHECKPOINT_S``
#: (e.g. ``auto``) to trade that for fewer writes, e.g. on remote storage.
SNAPSHOT_PERIOD_ENV = "TUNE_GLOBAL_CHECKPOINT_S"


def snapshot_env() -> dict[str, str]:
    """The Tune settings of a fit: the experiment-state period (the user's, else "0")."""
    return {SNAPSHOT_PERIOD_ENV: os.environ.get(SNAPSHOT_PERIOD_ENV, "0")}



def trial_cpus(spec: ExperimentSpec) -> float:
    """CPUs one trial asks for (trial driver + env runners), from the spec's resources."""
    params = {"env_config": {}, "training": {}, "evaluation": dict(spec.evaluation),
              "resources": dict(spec.resources), "seed": None}
    # keep the scale-out knobs; search spaces do not change CPUs
    params["training"] = {k: v for k, v in spec.training.items()
                          if k in ("rollout_fragment_length",) and not isinstance(v, Mapping)}
    request = trainable_class(spec.algo).default_resource_request(params)
    return float(request.required_resources.get("CPU", 0.0))


def check_resources(spec: ExperimentSpec, cluster_cpus: float) -> None:
    """Fail at once (one line) when a trial needs more CPUs than the whole cluster has:
    Tune would otherwise leave it PENDING forever."""
    need = trial_cpus(spec)
    if need > cluster_cpus:
        res = spec.resources
        raise ConfigError(
            f"a trial needs {need:g} CPUs (1 for the trial + {res.get('num_env_runners', 0)} "
            f"env runner(s) x {res.get('num_cpus_per_env_runner', 1)}), the Ray cluster has "
            f"{cluster_cpus:g}; lower resources.num_env_runners or add CPUs/nodes")


def tune_config(spec: ExperimentSpec):
    """Tune's ``TuneConfig``: the spec's metric/mode, scheduler and search algorithm."""
    from ray import tune

    scheduler = None
    if spec.scheduler.get("type") == "asha":
        from ray.tune.schedulers import ASHAScheduler

        kw = {k: spec.scheduler[k] for k in ("grace_period", "max_t", "reduction_factor")
              if k in spec.scheduler}
        kw.setdefault("max_t", int(spec.stop.get("training_iteration", 100)))
        scheduler = ASHAScheduler(time_attr="training_iteration", **kw)
    search_alg = None
    if spec.search.get("type") == "optuna":
        try:
            from ray.tune.search.optuna import OptunaSearch
            OptunaSearch()  # raises when optuna is not installed
        except (ImportError, AssertionError, RuntimeError) as exc:
            raise ConfigError(f"search.type optuna needs the optuna package ({exc})") from None
        search_alg = OptunaSearch()
    if search_alg is not None and spec.search.get("max_concurrent"):
        from ray.tune.search import ConcurrencyLimiter

        search_alg = ConcurrencyLimiter(search_alg,
                                        max_concurrent=int(spec.search["max_concurrent"]))
    # No actor reuse: an RLlib Algorithm cannot reset_config(), so Tune fails every trial
    # that would start in a finished trial's actor (num_samples > trials running at once).
    return tune.TuneConfig(num_samples=spec.num_samples, metric=spec.metric, mode=spec.mode,
                           scheduler=scheduler, search_alg=search_alg, reuse_actors=False)


def training_seeds(spec: ExperimentSpec, seed: int) -> list[int]:
    """The RLlib seeds of a spec's training seeds: ``seed``, ``seed + 1``, ..."""
    return [int(seed) + k for k in range(int(spec.seeds))]


def param_space(spec: ExperimentSpec, seed: int) -> dict[str, Any]:
    """Tune's parameter space. With ``spec.seeds > 1`` the trial seed is a grid over the
    training seeds and each trial's workload stream moves with it (``task_seed + 1000 *
    (seed - first seed)``), so every seed trains on its own episodes."""
    from ray import tune

    env_config = to_tune_space(spec.env_config, "env_config")
    seeds = training_seeds(spec, seed)
    trial_seed: Any = seeds[0]
    if len(seeds) > 1:
        trial_seed = tune.grid_search(seeds)
        base = env_config.get("task_seed")
        if isinstance(base, int):
            env_config["task_seed"] = tune.sample_from(
                lambda s: base + 1000 * (int(s.config["seed"]) - seeds[0]))
    return {
        "env_config": env_config,
        "training": to_tune_space(spec.training, "training"),
        "evaluation": dict(spec.evaluation),
        "resources": dict(spec.resources),
        "seed": trial_seed,
    }


def build_tuner(spec: ExperimentSpec, storage_path: Path, resume: str, seed: int):
    """A new Tuner, or the restored one when ``resume == 'auto'`` and the experiment exists."""
    from ray import tune

    trainable = trainable_class(spec.algo)
    exp_dir = storage_path / spec.name
    if tune.Tuner.can_restore(str(exp_dir)):
        if resume == "never":
            raise ConfigError(
                f"experiment {exp_dir} exists; re-run with --resume auto to continue it, or "
                f"pick another --name")
        print(f"Resuming experiment {spec.name} from {exp_dir}", flush=True)
        return tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_unfinished=True,
                                  resume_errored=True), True
    checkpoint = spec.checkpoint
    run_config = tune.RunConfig(
        name=spec.name,
        storage_path=str(storage_path),
        stop=dict(spec.stop),
        checkpoint_config=tune.CheckpointConfig(
            checkpoint_frequency=int(checkpoint.get("frequency", 0)),
            num_to_keep=checkpoint.get("num_to_keep"),
            checkpoint_at_end=bool(checkpoint.get("at_end", True)),
        ),
        failure_config=tune.FailureConfig(max_failures=int(spec.failure.get("max_failures", 0))),
        verbose=1,
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(spec, seed),
        tune_config=tune_config(spec),
        run_config=run_config,
    )
    return tuner, False


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl_autoscaling.tune",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True, choices=ALGOS, help="algorithm to train")
    p.add_argument("--config", type=Path, default=None,
                   help="experiment spec YAML (default: tune_configs/<algo>.yaml)")
    p.add_argument("--num-samples", type=int, default=None,
                   help="samples of the search space (overrides the spec)")
    p.add_argument("--storage-path", type=Path, default=Path("runs/tune"),
                   help="Tune storage path; a local dir, a shared mount, or a URI")
    p.add_argument("--name", default=None, help="experiment name (default: the spec's, or algo)")
    p.add_argument("--resume", choices=("auto", "never"), default="auto",
                   help="auto: continue the experiment if it exists (default)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join ('auto' or host:port); default: start Ray locally")
    p.add_argument("--smoke", action="store_true",
                   help="tiny budget (the spec's smoke section) for tests and first contact")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. --set training.alpha=0.05 (repeatable)")
    p.add_argument("--output", type=Path, default=Path("runs"),
                   help="where exported run directories go (default: runs/)")
    p.add_argument("--seed", type=int, default=42,
                   help="RLlib seed of the first training seed; the spec's `seeds` training "
                        "seeds use seed, seed+1, ... (default %(default)s)")
    add_recipe_flag(p, DEFAULT_RECIPE)
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray instance")
    return p


def load_experiment(algo: str, recipe: str = DEFAULT_RECIPE, path: str | Path | None = None,
                    smoke: bool = False, overrides: Mapping[str, Any] | None = None
                    ) -> ExperimentSpec:
    """The experiment a ``tune`` command runs: the spec file (default
    ``tune_configs/<algo>.yaml``) over ``recipe``'s sections (env, training, iterations,
    checkpoints, evaluations), then ``--smoke`` and ``--set`` overrides."""
    from ..env import EnvSettings

    return load_spec(path or TUNE_CONFIG_DIR / f"{algo}.yaml", algo, smoke=smoke,
                     overrides=overrides, training_keys=training_keys(algo),
                     base=algorithm(algo).recipe_spec(recipe,
                                                      recipe_instance(EnvSettings, recipe)))


def run(args: argparse.Namespace) -> int:
    config_path = args.config or TUNE_CONFIG_DIR / f"{args.algo}.yaml"
    overrides = parse_set(args.set)
    if args.num_samples is not None:
        overrides["num_samples"] = args.num_samples
    if args.name:
        overrides["name"] = args.name
    spec = load_experiment(args.algo, args.recipe, config_path, smoke=args.smoke,
                           overrides=overrides)
    validate_spec(spec)  # bad trial settings fail here, before Ray starts
    storage = args.storage_path if "://" in str(args.storage_path) else (
        args.storage_path.expanduser().resolve())

    import logging

    import ray

    from ..training.report import report_line
    from .export import deliver_policy, export_experiment

    # Tune's TensorBoard logger warns about our list-valued result keys (training_episodes);
    # they are meant for the exporter and the JSON log, not for TensorBoard.
    logging.getLogger("ray.tune.logger.tensorboardx").setLevel(logging.ERROR)

    if not ray.is_initialized():
        if args.address:
            from .ray_auth import prepare_ray_init

            prepare_ray_init(args.address)  # token auth as Ray's CLI finds it; RayAuthError
            ray.init(address=args.address)
        else:
            ray.init(num_cpus=args.num_cpus)
    check_resources(spec, float(ray.cluster_resources().get("CPU", 0.0)))
    tuner, resumed = build_tuner(spec, storage if isinstance(storage, Path) else Path(storage),
                                 args.resume, args.seed)
    with signals_interrupt(), environ(snapshot_env()):
        results = tuner.fit()  # (ray.init installed its own SIGTERM handler)
    exported = export_experiment(results, args.algo, args.output, metric=spec.metric,
                                 mode=spec.mode)
    for trial_dir, run_dir in exported["runs"].items():
        print(f"exported {trial_dir} -> {run_dir}")
    best_dir, report = deliver_policy(exported["runs"], args.algo, spec.confirm_episodes)
    if best_dir is not None:
        print(report_line(report))
        print(f"best trial run directory: {best_dir} (models/{args.algo}_best, policy_report.json"
              f": the ranking rule over {len(exported['runs'])} trial(s), confirmed on "
              f"{report['episodes']} fresh episodes)")
    elif exported["best"]:
        print(f"best trial run directory: {exported['best']} "
              f"(by {spec.metric}, {spec.mode}; {report.get('note')})")
    errors = [r for r in results if r.error]
    for r in errors:
        print(f"trial {Path(r.path).name} failed: {r.error}", file=sys.stderr)
    unfinished = sum(1 for r in results if not r.error and not (r.metrics or {}).get("done"))
    if unfinished:
        # Tune caught Ctrl+C, saved the experiment and returned early.
        print(f"interrupted: {unfinished} trial(s) unfinished; re-run the same command to "
              f"resume from {storage / spec.name}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run; bad input is one line and exit 2 (``run_guarded``), SIGTERM and SIGHUP
    stop the experiment the way Ctrl+C does."""
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args))
