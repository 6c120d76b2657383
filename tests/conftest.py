"""Shared fixtures. Ray is started once per session on ports it picks itself (never 6379,
which belongs to the machine's Redis)."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from rl_autoscaling.env import register_ray_env

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_ray_env()
    yield ray
    ray.shutdown()


def source_data_files() -> set[str]:
    """Every non-Python file of the source package and every Tune spec of the top-level
    ``tune_configs/`` (shipped as ``rl_autoscaling/tune_configs/``), as a wheel path."""
    package = {str(p.relative_to(ROOT)) for p in (ROOT / "rl_autoscaling").rglob("*")
               if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    return package | {f"rl_autoscaling/tune_configs/{p.name}"
                      for p in (ROOT / "tune_configs").iterdir() if p.is_file()}


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> Path:
    """The package built as a wheel (from a clean copy: no stale build/) and installed with
    ``pip install --target``; returns that directory."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("rl_autoscaling", "tune_configs"):
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # No build isolation: setuptools comes from this environment (works offline).
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (root / "dist").glob("rl_autoscaling-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = source_data_files() - names
    assert not missing, f"data files missing from the wheel: {sorted(missing)}"
    target = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return target
