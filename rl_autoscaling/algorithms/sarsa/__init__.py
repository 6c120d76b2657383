"""algorithms/sarsa."""
