"""Thrifty: places and sizes Kubernetes containers with a reinforcement-learning policy."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("thrifty")
except PackageNotFoundError:  # a source tree on PYTHONPATH that was never installed
    __version__ = "0+unknown"

REPOSITORY_URL = "https://github.com/thrifty-dev/thrifty"
"""Where the project's source and docs live (what ``[project.urls]`` would name ``Source``)."""
RUNBOOKS_URL = f"{REPOSITORY_URL}/blob/main/docs/runbooks.md"
"""Base of every alert's ``runbook_url``: ``RUNBOOKS_URL#<alert name in lower case>``."""
