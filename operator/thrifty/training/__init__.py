"""Training the policy with Ray RLlib (needs the ``train`` extra: ray[rllib] and torch).

Nothing in the operator imports this package: serving runs the exported weights in numpy.
"""
