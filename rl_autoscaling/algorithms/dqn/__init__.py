"""algorithms/dqn."""
