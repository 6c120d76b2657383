"""Export Tune trials to the seed layout: ``python -m rl_autoscaling.export`` (see
:mod:`rl_autoscaling.service.export`).
"""

import sys

from .service.export import main

if __name__ == "__main__":
    sys.exit(main())
