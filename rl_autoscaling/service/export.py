"""Export Tune trials into the seed's run layout (docs/artefacts.md).

    python -m rl_autoscaling.export <trial-or-experiment-dir> [--output runs/]

For every trial it writes ``<output>/<algo>_run_<UTC ts of the trial's first result>/`` with
``training_metrics.json`` (one record per training episode, from the results'
``training_episodes``), ``evaluation_metrics.json`` (one record per evaluation),
``models/`` (``<algo>_epNNNN`` per Tune checkpoint and ``<algo>_final``, ``.pkl`` for SARSA,
``.pt`` for DQN: the model files the trainable wrote into each checkpoint),
``plots/training_curves.png`` and ``logs/`` (``training.log`` with one line per episode, plus
Tune's ``result.json``, ``progress.csv`` and ``params.json``). Exporting the same trial again
refreshes the same run directory. Nothing here unpickles anything.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..algorithms.registry import ALGORITHMS, algorithm
from ..common.errors import UserError, run_guarded
from ..common.modelio import atomic_write_json, atomic_write_text
from ..training.harness import RunDirectory, episode_line

MODEL_INFO = "farm_model.json"  # written by the trainable into every Tune checkpoint
SOURCE_MARKER = "tune_trial.txt"
TRIAL_PREFIXES = {d.trial_prefix: name for name, d in ALGORITHMS.items()}
EVAL_PREFIXES = ("mean_", "std_")


class ExportError(ValueError):
    """The directory is not a Tune trial / experiment of this package."""


def trial_algo(trial_dir: Path) -> str:
    for prefix, algo in TRIAL_PREFIXES.items():
        if trial_dir.name.startswith(prefix + "_"):
            return algo
    raise ExportError(f"{trial_dir} is not a trial of rl_autoscaling.tune "
                      f"(expected a name starting with {' or '.join(TRIAL_PREFIXES)}_)")


def find_trials(path: Path) -> list[Path]:
    """The trial directories at ``path`` (a trial itself, or an experiment holding trials)."""
    path = Path(path)
    if not path.is_dir():
        raise ExportError(f"no such directory: {path}")
    if (path / "result.json").exists():
        return [path]
    trials = sorted(p for p in path.iterdir() if p.is_dir() and (p / "result.json").exists())
    if not trials:
        raise ExportError(f"{path} holds no Tune trial (no result.json found)")
    return trials


def read_results(trial_dir: Path) -> list[dict[str, Any]]:
    """Tune's ``result.json`` rows (one JSON object per line; torn last lines are skipped),
    without the rows a restore re-ran: when ``training_iteration`` goes back to ``i`` (the
    trial resumed from an earlier checkpoint), the earlier rows from ``i`` on are dropped, so
    nothing is counted twice."""
    rows = []
    for row in _raw_results(trial_dir):
        it = row.get("training_iteration")
        if it is not None:
            while rows and rows[-1].get("training_iteration") is not None and \
                    rows[-1]["training_iteration"] >= it:
                rows.pop()
        rows.append(row)
    return rows


def _raw_results(trial_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for line in (trial_dir / "result.json").read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
    return rows


def _last_by_episode(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per episode number, the latest (iterations re-run after a restore win)."""
    by_episode: dict[int, dict[str, Any]] = {}
    for rec in records:
        by_episode[int(rec["episode"])] = rec
    return [by_episode[k] for k in sorted(by_episode)]


def episode_records(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return _last_by_episode(r for row in rows for r in row.get("training_episodes") or [])


def evaluation_records(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        ev = row.get("evaluation") or {}
        if "episode" in ev and "eval_episodes" in ev:
            keep = {k: v for k, v in ev.items()
                    if k in ("episode", "eval_episodes", "episodes") or k.startswith(EVAL_PREFIXES)}
            out.append(keep)
    return _last_by_episode(out)


def _timestamp(rows: Sequence[dict[str, Any]], trial_dir: Path) -> str:
    epoch = rows[0].get("timestamp") if rows else None
    if epoch is None:
        epoch = trial_dir.stat().st_mtime
    return datetime.fromtimestamp(float(epoch), timezone.utc).strftime("%Y%m%d_%H%M%S")


def _run_directory(output: Path, algo: str, timestamp: str, trial_dir: Path) -> RunDirectory:
    """The trial's run directory: the one it was exported to before, else a new one."""
    source = str(trial_dir.resolve())
    for existing in sorted(output.glob(f"{algo}_run_{timestamp}*")):
        marker = existing / "logs" / SOURCE_MARKER
        if marker.exists() and marker.read_text().strip() == source:
            return RunDirectory(existing, algo)
    run = RunDirectory.create(output, algo, timestamp=timestamp)
    atomic_write_text(run.logs / SOURCE_MARKER, source + "\n")
    return run


def _export_models(trial_dir: Path, run: RunDirectory) -> list[Path]:
    written = []
    latest: tuple[int, Path] | None = None
    for ckpt in sorted(trial_dir.glob("checkpoint_*")):
        info_path = ckpt / MODEL_INFO
        if not info_path.exists():
            continue
        info = json.loads(info_path.read_text())
        src = ckpt / info["file"]
        if not src.exists():
            continue
        episode = int(info["episode"])
        dest = run.model_path(episode, src.suffix)
        shutil.copyfile(src, dest)
        written.append(dest)
        if latest is None or episode >= latest[0]:
            latest = (episode, src)
    if latest is not None:
        final = run.model_path("final", latest[1].suffix)
        shutil.copyfile(latest[1], final)
        written.append(final)
    return written


def export_trial(trial_dir: Path, output: Path) -> Path:
    """Export one trial; returns its run directory."""
    trial_dir = Path(trial_dir)
    algo = trial_algo(trial_dir)
    rows = read_results(trial_dir)
    run = _run_directory(Path(output), algo, _timestamp(rows, trial_dir), trial_dir)
    episodes = episode_records(rows)
    checkpoints = evaluation_records(rows)
    atomic_write_json(run.training_metrics, {"episodes": episodes})
    atomic_write_json(run.evaluation_metrics, {"checkpoints": checkpoints})
    total = len(episodes)
    atomic_write_text(run.training_log,
                      "".join(episode_line(rec, total) + "\n" for rec in episodes))
    for name in ("result.json", "progress.csv", "params.json"):
        if (trial_dir / name).exists():
            shutil.copyfile(trial_dir / name, run.logs / name)
    _export_models(trial_dir, run)
    if episodes:
        from ..reporting.curves import plot_training_curves

        plot_training_curves(episodes, run.training_curves,
                             evaluation=checkpoints or None, title=f"{algo} ({trial_dir.name})")
    return run.root


def export_experiment(results, algo: str, output: Path, metric: str = "eval_score",
                      mode: str = "max") -> dict[str, Any]:
    """Export every trial of a Tune ``ResultGrid``; returns {"runs": {...}, "best": dir}, the
    best trial picked by ``metric`` / ``mode`` (:func:`best_trial`)."""
    runs: dict[str, str] = {}
    for result in results:
        if not result.path or not (Path(result.path) / "result.json").exists():
            continue
        runs[result.path] = str(export_trial(Path(result.path), output))
    best = best_trial([Path(p) for p in runs], metric, mode)
    return {"runs": runs, "best": runs[str(best)] if best is not None else None}


def deliver_policy(runs: Mapping[str, str], algo: str, confirm_episodes: int = 100
                   ) -> tuple[Path | None, dict[str, Any]]:
    """The service's deliverable: among every evaluated checkpoint of every exported trial,
    the model the project's ranking rule chooses, confirmed on greedy episodes no trial
    trained on (``training.report``); written as ``models/<algo>_best.*`` with
    ``policy_report.json`` / ``.png`` into the run directory it came from. Returns (that
    run directory or None, the report)."""
    from ..training.report import Candidate, confirm_seeds, evaluation_env, write_best

    desc = algorithm(algo)
    candidates: list[Candidate] = []
    owner: dict[Path, Path] = {}
    env_config: dict[str, Any] | None = None
    for trial_dir, run_dir in runs.items():
        params_path = Path(trial_dir) / "params.json"
        if env_config is None and params_path.exists():
            env_config = dict(json.loads(params_path.read_text()).get("env_config") or {})
        run = RunDirectory(Path(run_dir), algo)
        if not run.evaluation_metrics.exists():
            continue
        for record in json.loads(run.evaluation_metrics.read_text()).get("checkpoints", []):
            path = run.model_path(int(record["episode"]), desc.model_suffix)
            if path.exists():
                candidates.append(Candidate(path, record, f"{run.root.name}/{path.stem}"))
                owner[path] = run.root
    if not candidates or env_config is None:
        return None, {"chosen": None, "note": "no evaluated checkpoint to choose from"}
    if env_config.get("backend", "simulated") == "live":
        return None, {"chosen": None,
                      "note": "live backend: choose with compare_policies on the twin"}
    env = evaluation_env(env_config)
    try:
        slo = float(env.farm_config.reward.slo_cost.qos_target)
        return write_best(candidates, desc.load_policy, env, slo, lambda c: owner[c.path],
                          f"{algo}_best{desc.model_suffix}", algo=algo,
                          settings={"trials": len(runs), "env_config": env_config},
                          seeds=confirm_seeds(confirm_episodes))
    finally:
        env.close()


def trial_score(trial_dir: Path, metric: str) -> float | None:
    """The trial's latest finite value of ``metric`` (``a/b`` reaches nested keys)."""
    for row in reversed(read_results(trial_dir)):
        value: Any = row
        for part in metric.split("/"):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def best_trial(trial_dirs: Sequence[Path], metric: str = "eval_score",
               mode: str = "max") -> Path | None:
    """The trial with the best latest ``metric`` (``mode`` max or min); trials that never
    reported it are skipped (the default metric is the greedy evaluation's score, never the
    exploring training reward)."""
    scored = [(s, d) for d in trial_dirs if (s := trial_score(d, metric)) is not None]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda sd: sd[0])[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl_autoscaling.export",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a Tune trial or experiment directory")
    parser.add_argument("--output", type=Path, default=Path("runs"),
                        help="where run directories are written (default: runs/)")
    args = parser.parse_args(argv)

    def go() -> int:
        try:
            for trial in find_trials(args.path):
                print(f"{trial} -> {export_trial(trial, args.output)}")
        except OSError as exc:
            raise UserError(f"{exc.filename or args.output}: {exc.strerror or exc}") from None
        return 0

    return run_guarded(go)  # ExportError is a ValueError: one line, exit 2
