"""The wheel runs anywhere: built from a copy of the source, installed into a bare directory
and run from ``/`` (no source tree in sight), ``python -m rl_autoscaling.tune --smoke`` finds
its packaged spec and farm config and trains. Every data file of the source package is in the
wheel (pyproject's package-data).

``PYTHONPATH`` puts the installed wheel ahead of the venv's editable install (setuptools'
editable finder comes after the ``sys.path`` finders), and the test checks that the package
imported is the wheel's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _source_data_files() -> set[str]:
    """Every non-Python file of the source package, as a wheel path."""
    return {str(p.relative_to(ROOT)) for p in (ROOT / "rl_autoscaling").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """The package built as a wheel (from a clean copy: no stale build/) and installed with
    ``pip install --target``; returns that directory."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "rl_autoscaling", src / "rl_autoscaling",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # No build isolation: setuptools comes from this environment (works offline).
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (root / "dist").glob("rl_autoscaling-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = _source_data_files() - names
    assert not missing, f"data files missing from the wheel: {sorted(missing)}"
    target = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return target


def test_the_wheel_ships_the_specs_and_configs():
    data = _source_data_files()
    for name in ("rl_autoscaling/py.typed", "rl_autoscaling/configs/default.yml",
                 "rl_autoscaling/service/tune_configs/sarsa.yaml",
                 "rl_autoscaling/service/tune_configs/dqn.yaml"):
        assert name in data


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
    assert Path(spec_dir) == installed_wheel / "rl_autoscaling" / "service" / "tune_configs"

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
