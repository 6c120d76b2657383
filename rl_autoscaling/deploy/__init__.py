"""Deploying a trained autoscaler: ``python -m rl_autoscaling.serve`` (see :mod:`.cli`).

* :mod:`.policy_source` - the policy being served: a SARSA ``.pkl`` / DQN ``.pt`` model file
  (safe loaders only) swapped in when the file is replaced, or a baseline by name;
* :mod:`.controller` - the continuous control loop: observe, decide, guard, apply, log;
* :mod:`.metrics` - Prometheus ``/metrics`` and ``/healthz``;
* :mod:`.keda` - KEDA's external scaler gRPC service (``--keda-grpc``);
* :mod:`.observer` - the scaler of KEDA mode: counts workers by heartbeat, never scales;
* :mod:`.cli` - the command line.
"""
