"""Thrifty as kube-scheduler's extender (KEP-1819): kube-scheduler's ``thrifty`` profile filters
with all its plugins, Thrifty's policy scores the nodes left (``prioritize``) and Thrifty binds
(``bind``). :mod:`~thrifty.extender.scores` is the pure mapping from the policy's choice to
extender scores; :mod:`~thrifty.extender.server` is the HTTP endpoint; see docs/placement.md.
"""
