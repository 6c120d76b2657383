"""Twin calibration: ``python -m rl_autoscaling.calibrate {validate,fit}`` (see ``__main__``)."""
