"""Subcommands of the ``thrifty`` CLI: one module each, with ``register(subparsers)``.

Each module's ``register`` adds its parser and sets ``func`` to a callable taking the parsed
arguments and returning the exit status. Heavy imports stay inside the callables so that
``thrifty --help`` is fast and the operator never imports training code.
"""
