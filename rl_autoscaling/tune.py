"""The Tune training service: ``python -m rl_autoscaling.tune --algo sarsa|dqn`` (see
:mod:`rl_autoscaling.service.tune`).
"""

import sys

from .service.tune import main

if __name__ == "__main__":
    sys.exit(main())
