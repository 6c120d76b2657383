"""rl_autoscaling: train and serve RL autoscalers for an OpenFaaS task farm with Ray RLlib."""

from .env import (
    GYM_ENV_ID,
    RAY_ENV_NAME,
    OpenFaaSAutoscalingEnv,
    register_gym_env,
    register_ray_env,
)

__version__ = "0.1.0"

register_gym_env()

__all__ = ["GYM_ENV_ID", "RAY_ENV_NAME", "OpenFaaSAutoscalingEnv", "register_ray_env"]
