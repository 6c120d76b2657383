"""Training curves: ``python -m rl_autoscaling.plot_training SOURCE [--output PNG]
[--evaluation JSON]``.

``SOURCE`` is a ``training_metrics.json``, a ``logs/training.log`` or a run directory (which
uses its ``training_metrics.json``, else its ``logs/training.log``). The figure (docs/artefacts.md) has
stacked panels over episodes: total reward, final QoS, max workers and scaling actions (scale
up + scale down), each raw and as a moving average of window ``min(15, max(3, n // 10))``;
checkpoint evaluations (mean +- std) are overlaid when ``evaluation_metrics.json`` sits in the
run directory or is given with ``--evaluation``. Without ``--output`` the figure goes to
``<run dir>/plots/training_curves.png``.

Readers accept the original toolkit's files: numbers written as floats (``12.0`` episodes),
extra keys (``source_run``), missing ``mean_workers`` / ``mean_loss`` / ``std_*`` fields, and
a bare list instead of ``{"episodes": [...]}``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

TRAINING_METRICS = "training_metrics.json"
EVALUATION_METRICS = "evaluation_metrics.json"
TRAINING_LOG = Path("logs") / "training.log"
INT_FIELDS = ("episode", "steps", "processed_tasks", "scale_up_count", "scale_down_count",
              "noop_count", "qos_violations", "unfinished_tasks", "eval_episodes")
#: (panel title, training field, evaluation mean key)
PANELS = (
    ("Total reward", "total_reward", "total_reward"),
    ("Final QoS", "final_qos", "final_qos"),
    ("Max workers", "max_workers", "max_workers"),
    ("Scaling actions", "scaling_actions", "scaling_actions"),
)
#: Names the log parser maps to the record field names (docs/artefacts.md) (lower case, spaces as '_').
LOG_ALIASES = {
    "reward": "total_reward", "total_reward": "total_reward", "final_qos": "final_qos",
    "qos": "mean_qos", "mean_qos": "mean_qos", "max_workers": "max_workers",
    "mean_workers": "mean_workers", "avg_workers": "mean_workers", "epsilon": "epsilon",
    "eps": "epsilon", "steps": "steps", "processed_tasks": "processed_tasks",
    "processed": "processed_tasks", "scale_up_count": "scale_up_count",
    "scale_ups": "scale_up_count", "scale_up": "scale_up_count",
    "scale_down_count": "scale_down_count", "scale_downs": "scale_down_count",
    "scale_down": "scale_down_count", "noop_count": "noop_count", "noops": "noop_count",
    "noop": "noop_count", "qos_violations": "qos_violations", "violations": "qos_violations",
    "unfinished_tasks": "unfinished_tasks", "unfinished": "unfinished_tasks",
    "mean_loss": "mean_loss", "loss": "mean_loss",
}
_EPISODE_RE = re.compile(r"\bEpisode\s+(\d+)(?:\s*/\s*\d+)?")
_PAIR_RE = re.compile(
    r"([A-Za-z][A-Za-z_ ]*?)\s*[=:]\s*([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")


class MetricsFormatError(ValueError):
    """A metrics file that holds no usable records."""


# ---------------------------------------------------------------------------- readers

def moving_average_window(n: int) -> int:
    """The docs/artefacts.md smoothing window for ``n`` episodes: min(15, max(3, n // 10))."""
    return min(15, max(3, n // 10))


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (shorter at the start; NaNs skipped)."""
    arr = np.asarray(values, dtype=float)
    out = np.full(arr.shape, np.nan)
    for i in range(arr.size):
        chunk = arr[max(0, i - window + 1): i + 1]
        chunk = chunk[np.isfinite(chunk)]
        if chunk.size:
            out[i] = chunk.mean()
    return out


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x


def normalise_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with the integer fields as ints (``12.0`` -> 12) and other
    numbers as floats; every other value (``source_run``, ...) is kept as it is."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if key in INT_FIELDS and math.isfinite(value):
                out[key] = int(round(value))
            else:
                out[key] = float(value)
        else:
            out[key] = value
    return out


def _records(data: Any, key: str, source: Path) -> list[dict[str, Any]]:
    items = data.get(key) if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise MetricsFormatError(f"{source}: expected a list under '{key}'")
    out = [normalise_record(r) for r in items if isinstance(r, Mapping)]
    for i, rec in enumerate(out, start=1):
        rec.setdefault("episode", i)
    return out


def parse_training_log(text: str) -> list[dict[str, Any]]:
    """Episode records from a training log: every line with ``Episode N`` (or ``N/T``) and
    ``name=value`` or ``name: value`` pairs, names as in docs/artefacts.md or the usual short forms
    (``Reward``, ``Final QoS``, ``Scale ups``, ...). Evaluation and ``Episode N summary``
    lines are skipped; a later line for the same episode replaces an earlier one."""
    by_episode: dict[int, dict[str, Any]] = {}
    for line in text.splitlines():
        match = _EPISODE_RE.search(line)
        if (not match or "valuation" in line[:match.start()]
                or line[match.end():].lstrip().lower().startswith("summary")):
            continue
        rec: dict[str, Any] = {"episode": int(match.group(1))}
        for name, value in _PAIR_RE.findall(line[match.end():]):
            key = LOG_ALIASES.get(re.sub(r"\s+", "_", name.strip().lower()))
            if key:
                rec[key] = float(value)
        if len(rec) > 1:
            by_episode[rec["episode"]] = normalise_record(rec)
    return [by_episode[k] for k in sorted(by_episode)]


def resolve_source(source: str | Path) -> Path:
    """The metrics file behind ``source`` (a file, or a run directory)."""
    p = Path(source)
    if p.is_dir():
        for candidate in (p / TRAINING_METRICS, p / TRAINING_LOG):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{p} holds neither {TRAINING_METRICS} nor {TRAINING_LOG}")
    if not p.is_file():
        raise FileNotFoundError(f"metrics source not found: {p}")
    return p


def load_training_metrics(source: str | Path) -> list[dict[str, Any]]:
    """Episode records from a metrics JSON, a training log or a run directory."""
    path = resolve_source(source)
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetricsFormatError(f"{path} is not valid JSON: {exc}") from None
        records = _records(data, "episodes", path)
    else:
        records = parse_training_log(text)
    if not records:
        raise MetricsFormatError(f"{path} holds no episode records")
    return records


def load_evaluation_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Checkpoint records from an ``evaluation_metrics.json`` (``{"checkpoints": [...]}``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"evaluation metrics not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MetricsFormatError(f"{p} is not valid JSON: {exc}") from None
    return _records(data, "checkpoints", p)


def run_directory_of(path: Path) -> Path:
    """The run directory a metrics file belongs to (``logs/``'s parent for a log)."""
    parent = path.parent
    return parent.parent if parent.name == "logs" else parent


# ---------------------------------------------------------------------------- plotting

def _series(records: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    if key == "scaling_actions":
        vals = []
        for r in records:
            up, down = _number(r.get("scale_up_count")), _number(r.get("scale_down_count"))
            direct = _number(r.get("scaling_actions"))
            vals.append(direct if direct is not None and up is None and down is None
                        else (np.nan if up is None and down is None else (up or 0) + (down or 0)))
        return np.asarray(vals, dtype=float)
    return np.asarray([np.nan if _number(r.get(key)) is None else _number(r.get(key))
                       for r in records], dtype=float)


def plot_training_curves(episodes: Sequence[Mapping[str, Any]] | str | Path,
                         output: str | Path | None = None,
                         evaluation: Sequence[Mapping[str, Any]] | str | Path | None = None,
                         title: str | None = None) -> Path:
    """Draw the docs/artefacts.md training curves to ``output``; returns the PNG path.

    Args:
        episodes: episode records, or a metrics source (JSON, log or run directory).
        output: PNG path (default: ``<run dir>/plots/training_curves.png`` for a source,
            ``training_curves.png`` for records).
        evaluation: checkpoint records or an ``evaluation_metrics.json`` path (a missing file
            means no overlay); default for a source: the run directory's file, if any.
        title: figure title (default: the run directory's name for a source).
    """
    if isinstance(episodes, (str, Path)):
        path = resolve_source(episodes)
        run_dir = run_directory_of(path)
        episodes = load_training_metrics(path)
        output = output or run_dir / "plots" / "training_curves.png"
        title = title or run_dir.name
        if evaluation is None:
            evaluation = run_dir / EVALUATION_METRICS
    if isinstance(evaluation, (str, Path)):
        evaluation = (load_evaluation_metrics(evaluation) if Path(evaluation).is_file()
                      else None)
    output = output or "training_curves.png"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [normalise_record(r) for r in episodes]
    if not records:
        raise MetricsFormatError("no episode records to plot")
    x = np.asarray([r.get("episode", i + 1) for i, r in enumerate(records)], dtype=float)
    window = moving_average_window(len(records))
    evals = [normalise_record(r) for r in (evaluation or [])]
    fig, axes = plt.subplots(len(PANELS), 1, sharex=True, figsize=(10, 2.6 * len(PANELS)))
    for ax, panel in zip(axes, PANELS):
        _draw_panel(ax, panel, records, x, window, evals)
    axes[-1].set_xlabel("Episode")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _draw_panel(ax, panel: tuple[str, str, str], records: Sequence[Mapping[str, Any]],
                x: np.ndarray, window: int, evals: Sequence[Mapping[str, Any]]) -> None:
    """One panel: the raw series, its moving average and the evaluation means +- std."""
    label, key, eval_key = panel
    y = _series(records, key)
    if np.isfinite(y).any():
        ax.plot(x, y, color="tab:blue", alpha=0.35, linewidth=1, label="episode")
        ax.plot(x, moving_average(y, window), color="tab:blue", linewidth=2,
                label=f"moving average ({window})")
    if key == "max_workers":
        mean_w = _series(records, "mean_workers")
        if np.isfinite(mean_w).any():
            ax.plot(x, moving_average(mean_w, window), color="tab:green", linewidth=1.5,
                    linestyle="--", label=f"mean workers ({window})")
    points = [(float(r["episode"]), mean, _number(r.get(f"std_{eval_key}")) or 0.0)
              for r in evals
              if (mean := _number(r.get(f"mean_{eval_key}"))) is not None
              and r.get("episode") is not None]
    if points:
        ex, ey, es = zip(*points)
        ax.errorbar(ex, ey, yerr=es, fmt="o", color="tab:red", capsize=3,
                    label="evaluation mean ± std")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def plot_source(source: str | Path, output: str | Path | None = None,
                evaluation: str | Path | None = None) -> Path:
    """CLI entry: like :func:`plot_training_curves` on a source, but an explicitly given
    evaluation file must exist."""
    if evaluation and not Path(evaluation).is_file():
        raise FileNotFoundError(f"evaluation metrics not found: {evaluation}")
    return plot_training_curves(source, output, evaluation)
