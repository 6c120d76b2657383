"""Train tabular SARSA(lambda): ``python -m rl_autoscaling.train_sarsa [flags]`` (see
:mod:`rl_autoscaling.training.sarsa`).
"""

import sys

from .training.sarsa import main

if __name__ == "__main__":
    sys.exit(main())
