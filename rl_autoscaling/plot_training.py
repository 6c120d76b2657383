"""Re-plot training curves from stored metrics:
``python -m rl_autoscaling.plot_training RUN_DIR|training_metrics.json|training.log``
(the plotting itself: :mod:`rl_autoscaling.reporting.curves`)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .reporting.curves import plot_source


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl_autoscaling.plot_training",
                                description="Plot training curves from stored metrics.")
    p.add_argument("source", help="training_metrics.json, logs/training.log or a run directory")
    p.add_argument("--output", default=None,
                   help="PNG path (default: <run dir>/plots/training_curves.png)")
    p.add_argument("--evaluation", default=None,
                   help="evaluation_metrics.json (default: the one in the run directory)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .common.errors import run_guarded

    args = build_parser().parse_args(argv)

    def go() -> int:
        out = plot_source(args.source, args.output, args.evaluation)
        print(f"Saved training curves to {out}")
        return 0

    return run_guarded(go)


if __name__ == "__main__":
    sys.exit(main())
