"""Files the package writes get the user's umask; a farm config's relative ``trace:`` path is
relative to the config file; a training that dies says why in its ``training.log``."""

from __future__ import annotations

import logging
import os
import stat

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
