"""Packages of the wheel (everything else is in pyproject.toml): the ``rl_autoscaling``
directories, plus the Tune specs of the top-level ``tune_configs/`` shipped as
``rl_autoscaling/tune_configs/`` (pyproject's package-dir), so there is one copy of them."""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["rl_autoscaling*"]), "rl_autoscaling.tune_configs"])
