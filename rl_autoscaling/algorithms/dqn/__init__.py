"""DQN on RLlib: hyperparameters and the RLlib config (:mod:`.config`), the epsilon schedule
(:mod:`.schedule`), the training env wrapper (:mod:`.training_env`), the learner
(:mod:`.learner`), weight I/O (:mod:`.weights`), the ``.pt`` model format (:mod:`.model`) and
the greedy policies (:mod:`.policy`, :mod:`.rllib_policy`).

Only :mod:`.model` and :mod:`.policy` are importable without Ray.
"""
