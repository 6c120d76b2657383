"""plot_training: readers of the original toolkit's files (floats for ints, source_run, missing
fields), the log parser, the smoothing window, the evaluation overlay and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.axes  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rl_autoscaling import plot_training  # noqa: E402
from rl_autoscaling.reporting import curves as pt  # noqa: E402
from rl_autoscaling.training.harness import episode_line  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "training_original"


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A copy of the original-layout run directory (so plots land in tmp)."""
    dest = tmp_path / "sarsa_run_20250913_083002"
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture
def errorbars(monkeypatch) -> list:
    """Record the evaluation overlays drawn (x values of each errorbar call)."""
    calls: list = []
    real = matplotlib.axes.Axes.errorbar

    def spy(self, x, y, *args, **kwargs):
        calls.append((list(x), list(y), list(kwargs.get("yerr", []))))
        return real(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", spy)
    return calls


def test_reader_accepts_the_original_layout():
    records = pt.load_training_metrics(FIXTURE / "training_metrics.json")
    assert [r["episode"] for r in records] == [1, 2, 3, 4, 5]
    first = records[0]
    assert isinstance(first["episode"], int) and isinstance(first["steps"], int)
    assert isinstance(first["scale_up_count"], int) and first["qos_violations"] == 43
    assert first["source_run"] == "sarsa_run_20250912_101530"
    assert "mean_workers" not in first and records[2]["mean_workers"] == 13.9
    assert records[4]["mean_loss"] == 0.0


def test_evaluation_reader_tolerates_missing_std_and_extra_keys():
    checkpoints = pt.load_evaluation_metrics(FIXTURE / "evaluation_metrics.json")
    assert [(c["episode"], c["eval_episodes"]) for c in checkpoints] == [(2, 3), (4, 3)]
    assert "std_total_reward" not in checkpoints[1]


def test_reader_accepts_a_bare_list(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"total_reward": 1.0}, {"total_reward": 2.0}]))
    assert [r["episode"] for r in pt.load_training_metrics(path)] == [1, 2]


def test_log_parser_reads_the_seed_style_log():
    records = pt.load_training_metrics(FIXTURE / "logs" / "training.log")
    assert [r["episode"] for r in records] == [1, 2, 3]
    assert records[1]["total_reward"] == 120.7 and records[1]["final_qos"] == 0.9877
    assert records[0]["max_workers"] == 18 and records[0]["scale_up_count"] == 6
    assert records[2]["epsilon"] == 0.396


def test_log_parser_round_trips_our_episode_lines():
    rec = {"episode": 7, "steps": 30, "total_reward": 142.1234, "mean_qos": 0.9987,
           "final_qos": 0.9982, "processed_tasks": 1140, "epsilon": 0.3826,
           "scale_up_count": 9, "scale_down_count": 2, "noop_count": 19, "max_workers": 25.0,
           "mean_workers": 20.6667, "qos_violations": 2, "unfinished_tasks": 0}
    text = "\n".join([
        "2025-01-01 00:00:00 INFO " + episode_line(rec, 100) + " | 7% 90.1 ep/s elapsed "
        "0:00:01 ETA 0:00:02",
        "2025-01-01 00:00:00 INFO Evaluation at episode 7 (3 greedy episodes): "
        "total_reward=1.00+-0.00 final_qos=0.5000+-0.0000",
        "2025-01-01 00:00:00 DEBUG Episode 7 summary: q_table_states=12",
    ])
    parsed, = pt.parse_training_log(text)
    assert parsed == pytest.approx(rec)
    assert isinstance(parsed["steps"], int)


@pytest.mark.parametrize("n,window", [(1, 3), (30, 3), (45, 4), (100, 10), (150, 15),
                                      (1000, 15)])
def test_moving_average_window(n, window):
    assert pt.moving_average_window(n) == window


def test_moving_average_is_trailing_and_skips_gaps():
    out = pt.moving_average([1.0, 2.0, 3.0, float("nan"), 5.0], 3)
    assert list(out) == pytest.approx([1.0, 1.5, 2.0, 2.5, 4.0])
    assert np.isnan(pt.moving_average([float("nan")], 3)[0])


def test_plot_from_a_run_directory_overlays_the_evaluation(run_dir, errorbars):
    out = pt.plot_training_curves(run_dir)
    assert out == run_dir / "plots" / "training_curves.png" and out.stat().st_size > 0
    assert len(errorbars) == 4  # one overlay per panel
    reward, qos, max_workers, scaling = errorbars
    assert reward == ([2.0, 4.0], [118.2, 133.0], [4.1, 0.0])  # missing std -> 0
    assert scaling[1] == [6.3, 5.0]


def test_plot_scaling_actions_are_ups_plus_downs(run_dir, monkeypatch):
    drawn = []
    real = matplotlib.axes.Axes.plot

    def spy(self, x, y, *a, **k):
        drawn.append(list(np.asarray(y, dtype=float)))
        return real(self, x, y, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    pt.plot_training_curves(pt.load_training_metrics(run_dir), run_dir / "x.png")
    assert [8.0, 7.0, 6.0, 9.0, 4.0] in drawn


def test_plot_from_a_log_goes_to_the_run_plots_dir(run_dir, errorbars):
    (run_dir / "training_metrics.json").unlink()
    out = pt.plot_source(run_dir / "logs" / "training.log")
    assert out == run_dir / "plots" / "training_curves.png" and out.is_file()
    assert errorbars  # evaluation_metrics.json of the run directory


def test_no_overlay_without_evaluation(tmp_path, errorbars):
    src = tmp_path / "training_metrics.json"
    shutil.copy(FIXTURE / "training_metrics.json", src)
    out = pt.plot_training_curves(src, evaluation=tmp_path / "missing.json")
    assert out.is_file() and errorbars == []


def test_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert plot_training.main([str(run_dir / "training_metrics.json"), "--output", str(out),
                    "--evaluation", str(run_dir / "evaluation_metrics.json")]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out


@pytest.mark.parametrize("args,match", [
    (["{tmp}/nope.json"], "not found"),
    (["{run}", "--evaluation", "{tmp}/nope.json"], "evaluation metrics not found"),
    (["{tmp}/empty.json"], "holds no episode records"),
    (["{tmp}/broken.json"], "not valid JSON"),
])
def test_cli_errors_are_one_line(run_dir, tmp_path, capsys, args, match):
    (tmp_path / "empty.json").write_text('{"episodes": []}')
    (tmp_path / "broken.json").write_text('{"episodes": [')
    argv = [a.format(tmp=tmp_path, run=run_dir) for a in args]
    assert plot_training.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and err.count("\n") == 1
