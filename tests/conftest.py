"""Shared fixtures. Ray is started once per session on ports it picks itself (never 6379,
which belongs to the machine's Redis)."""

import os

import pytest

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
