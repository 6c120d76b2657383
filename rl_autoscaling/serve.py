"""Run a trained autoscaler continuously: ``python -m rl_autoscaling.serve --model M`` (see
:mod:`rl_autoscaling.deploy.cli`).
"""

import sys

from .deploy.cli import main

if __name__ == "__main__":
    sys.exit(main())
