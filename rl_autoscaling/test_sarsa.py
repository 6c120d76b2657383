"""Greedy evaluation of a SARSA model: ``python -m rl_autoscaling.test_sarsa --model PKL`` (see
:mod:`rl_autoscaling.training.eval_sarsa`).
"""

import sys

from .training.eval_sarsa import main

if __name__ == "__main__":
    sys.exit(main())
