"""Policies: the heuristic default and the trained RL policy behind one interface."""

from thrifty.policy.base import Policy, PolicyError, PolicyInfo

__all__ = ["Policy", "PolicyError", "PolicyInfo"]
