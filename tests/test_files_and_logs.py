"""Files the package writes get the user's umask; a farm config's relative ``trace:`` path is
relative to the config file; a training that dies says why in its ``training.log``."""

from __future__ import annotations

import io
import logging
import os
import stat
import sys

import pytest

from rl_autoscaling.common.modelio import atomic_write_json, current_umask, save_pickle
from rl_autoscaling.config import load_config
from rl_autoscaling.farm.workload import generate_workload
from rl_autoscaling.training.harness import (
    RunDirectory,
    close_logger,
    logged_failure,
    run_training,
    setup_run_logger,
)
from rl_autoscaling.training.progress import LiveLine


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        a = atomic_write_json(tmp_path / "a.json", {"x": 1})
        b = save_pickle(tmp_path / "b.pkl", {"q": [1.0]})
    finally:
        os.umask(old)
    for path in (a, b):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_relative_trace_path_resolves_against_the_config_file(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "trace.csv").write_text("arrival_s,processing_s\n0.0,1.0\n0.5,1.0\n")
    (conf / "farm.yml").write_text("trace: trace.csv\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config("../conf/farm.yml")
    assert os.path.samefile(cfg.trace, conf / "trace.csv")
    assert generate_workload(cfg, seed=0).arrivals.tolist() == [0.0, 0.5]
    # an override's relative path stays relative to the working directory
    assert load_config(None, {"trace": "t.csv"}).trace == "t.csv"


def test_absolute_trace_path_is_kept(tmp_path):
    trace = tmp_path / "t.csv"
    (tmp_path / "farm.yml").write_text(f"trace: {trace}\n")
    assert load_config(tmp_path / "farm.yml").trace == str(trace)


def test_a_failing_training_logs_the_error_to_training_log(tmp_path):
    run = RunDirectory.create(tmp_path, "sarsa")
    log = setup_run_logger(run, console=False)

    def train_episode(ep: int):
        if ep == 2:
            raise ConnectionError("Redis at redis://127.0.0.1:1/0 went away")
        return {"episode": ep, "total_reward": 1.0}

    with pytest.raises(ConnectionError):
        with logged_failure(log):
            run_training(run, log, episodes=3, train_episode=train_episode,
                         save_model=lambda path, n: path.write_text("m"), plot=False)
    close_logger(log)
    text = run.training_log.read_text()
    assert "ERROR Training failed: ConnectionError: Redis at redis://127.0.0.1:1/0 went away" in text
    assert "Traceback" in text  # the details, at DEBUG level, in the file only


def test_the_console_gets_one_line_not_the_traceback(tmp_path, capsys):
    run = RunDirectory.create(tmp_path, "sarsa")
    log = setup_run_logger(run, console_level=logging.INFO)
    with pytest.raises(ValueError):
        with logged_failure(log):
            raise ValueError("bad")
    close_logger(log)
    out = capsys.readouterr().out
    assert "Training failed: ValueError: bad" in out and "Traceback" not in out


def _train_quietly(tmp_path, episodes: int, checkpoint_every: int):
    """run_training over ``episodes`` instant episodes with a checkpoint evaluation every
    ``checkpoint_every``; returns the run directory."""
    run = RunDirectory.create(tmp_path, "sarsa")
    log = setup_run_logger(run)
    try:
        run_training(run, log, episodes=episodes, checkpoint_every=checkpoint_every, plot=False,
                     train_episode=lambda ep: {"episode": ep, "total_reward": -ep,
                                               "final_qos": 0.5, "mean_workers": 10.0,
                                               "epsilon": 0.1},
                     save_model=lambda path, n: path.write_text("m"),
                     evaluate=lambda ep: {"episode": ep, "eval_episodes": 2,
                                          "mean_final_qos": 0.99, "mean_mean_workers": 12.5})
    finally:
        close_logger(log)
    return run


def test_episode_lines_go_to_the_log_file_and_the_console_gets_summaries(tmp_path, capsys):
    run = _train_quietly(tmp_path, episodes=50, checkpoint_every=25)
    out = capsys.readouterr().out.splitlines()
    lines = run.training_log.read_text().splitlines()
    # the file: every episode line as before, no summaries
    assert [int(line.split()[4].split("/")[0]) for line in lines if " Episode " in line] == list(
        range(1, 51))
    assert not [line for line in lines if " Episodes " in line]
    # the console: no episode line; a summary every 5 episodes (a tenth of the run) with the
    # window's means and the latest evaluation; the milestones as in the file
    assert not [line for line in out if " Episode " in line]
    summaries = [line for line in out if " INFO Episodes " in line]
    assert [s.split(" INFO Episodes ")[1].split(":")[0] for s in summaries] == [
        f"{a}-{a + 4}/50" for a in range(1, 50, 5)]
    assert "mean final_qos=0.5000 mean_workers=10.00 total_reward=-3.00 epsilon=0.1000" in \
        summaries[0] and "eval @" not in summaries[0]
    assert "total_reward=-48.00" in summaries[-1]
    assert summaries[-1].endswith("| eval @25: final_qos 0.9900 workers 12.50")
    for milestone in ("Saved checkpoint", "Evaluation at episode 25", "Saved final model",
                      "Finished 50 episode(s)"):
        assert any(milestone in line for line in out), milestone


def test_the_live_progress_line_is_redrawn_on_a_terminal_and_cleared_before_log_lines(
        tmp_path, monkeypatch):
    class Terminal(io.StringIO):  # stdout and stderr on one terminal
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.setattr(LiveLine, "redraw", 0.0)
    _train_quietly(tmp_path, episodes=20, checkpoint_every=10)
    text = term.getvalue()
    clear = "\r\x1b[K"
    # every live line is drawn in place over the previous one, episode by episode ...
    drawn = [int(d.split()[1].split("/")[0]) for d in text.split(clear)
             if d.startswith("Episode ")]
    assert sorted(set(drawn)) == list(range(1, 21)) and drawn == sorted(drawn)
    assert "| eval @10: final_qos 0.9900 workers 12.50" in text  # with the latest evaluation
    # ... and cleared before each log line: what stays on a line is the log line alone
    lines = text.split("\n")
    assert all(line.rpartition(clear)[2].startswith("20") for line in lines[:-1])
    assert any("Finished 20 episode(s)" in line for line in lines)
    assert lines[-1] == ""  # and the live line is gone at the end


def test_without_a_terminal_the_progress_is_a_plain_line_at_most_every_interval(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(LiveLine, "interval", 0.0)
    _train_quietly(tmp_path, episodes=5, checkpoint_every=0)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    assert [line.split()[1] for line in err.splitlines()] == ["2/5", "3/5", "4/5", "5/5"]
    monkeypatch.setattr(LiveLine, "interval", 3600.0)
    _train_quietly(tmp_path, episodes=5, checkpoint_every=0)
    assert capsys.readouterr().err == ""
