"""Greedy evaluation of a DQN model: ``python -m rl_autoscaling.test_dqn --model PT`` (see
:mod:`rl_autoscaling.training.eval_dqn`).
"""

import sys

from .training.eval_dqn import main

if __name__ == "__main__":
    sys.exit(main())
