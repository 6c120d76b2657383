"""Compare agents on the same episodes: ``python -m rl_autoscaling.compare_policies`` (see
:mod:`rl_autoscaling.training.compare`).
"""

import sys

from .training.compare import main

if __name__ == "__main__":
    sys.exit(main())
