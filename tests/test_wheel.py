"""The wheel runs anywhere: built from a copy of the source, installed into a bare directory
and run from ``/`` (no source tree in sight), ``python -m rl_autoscaling.tune --smoke`` finds
its packaged spec and farm config and trains. Every data file of the source package and every
Tune spec of the top-level ``tune_configs/`` is in the wheel (pyproject's package-data and
package-dir, setup.py's package list).

``PYTHONPATH`` puts the installed wheel ahead of the venv's editable install (setuptools'
editable finder comes after the ``sys.path`` finders), and the test checks that the package
imported is the wheel's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import source_data_files

from rl_autoscaling.service.specs import TUNE_CONFIG_DIR


def test_the_wheel_ships_the_specs_and_configs():
    data = source_data_files()
    for name in ("rl_autoscaling/py.typed", "rl_autoscaling/configs/default.yml",
                 "rl_autoscaling/tune_configs/sarsa.yaml",
                 "rl_autoscaling/tune_configs/dqn.yaml"):
        assert name in data
    # One copy: a source checkout (PYTHONPATH, editable install) reads the top-level specs.
    assert TUNE_CONFIG_DIR == Path(__file__).resolve().parents[1] / "tune_configs"
    assert not (TUNE_CONFIG_DIR.parent / "rl_autoscaling" / "tune_configs").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_tune_smoke_runs_from_the_installed_wheel(installed_wheel, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed_wheel), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    where = subprocess.run(
        [sys.executable, "-c", "import rl_autoscaling, rl_autoscaling.service.specs as s; "
                               "print(rl_autoscaling.__file__); print(s.TUNE_CONFIG_DIR)"],
        cwd="/", env=env, capture_output=True, text=True, check=True, timeout=120)
    package_file, spec_dir = where.stdout.split()
    assert Path(package_file) == installed_wheel / "rl_autoscaling" / "__init__.py"
    assert Path(spec_dir) == installed_wheel / "rl_autoscaling" / "tune_configs"

    storage, output = tmp_path / "tune", tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "rl_autoscaling.tune", "--algo", "sarsa", "--smoke",
         "--storage-path", str(storage), "--output", str(output), "--num-cpus", "1"],
        cwd="/", env=env, capture_output=True, text=True, timeout=600)
    detail = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, detail
    (run_dir,) = output.iterdir()
    assert f"best trial run directory: {run_dir}" in proc.stdout, detail
    assert (run_dir / "training_metrics.json").exists()
    assert any(p.name == "sarsa_final.pkl" for p in (run_dir / "models").iterdir())
    assert [p.name for p in storage.iterdir()] == ["sarsa"]
