"""Submit a training job to a Ray cluster: ``python -m rl_autoscaling.submit`` (see
:mod:`rl_autoscaling.service.submit`).
"""

import sys

from .service.submit import main

if __name__ == "__main__":
    sys.exit(main())
