"""Train the DQN autoscaler with RLlib: ``python -m rl_autoscaling.train_dqn [flags]`` (see
:mod:`rl_autoscaling.training.dqn`).
"""

import sys

from .training.dqn import main

if __name__ == "__main__":
    sys.exit(main())
