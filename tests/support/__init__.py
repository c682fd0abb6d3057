"""Helpers shared by the tests: custom policies and the operator process fixture."""
