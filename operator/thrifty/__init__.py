"""Thrifty: places and sizes Kubernetes containers with a reinforcement-learning policy."""

__version__ = "0.1.0"
