"""Load the policy the operator serves, from what ``thrifty run --policy`` names.

Three forms, so the trained policy plugs in without any change to the handlers:

* ``heuristic``: :class:`thrifty.policy.heuristic.HeuristicPolicy`, the default;
* a directory (``policies/<name>/``): a trained policy's artefact, served by the backend named
  by ``backend``: ``numpy`` (:class:`thrifty.policy.numpy_policy.NumpyPolicy`, the exported
  weights run in numpy) or ``rllib`` (:class:`thrifty.policy.rllib_policy.RLlibPolicy`, the
  RLlib checkpoint itself, which needs ray and torch);
* ``module:Class``: any importable class (or factory) whose no-argument call returns a policy.
  Tests use it to inject a broken policy; users can plug in their own.

Anything that goes wrong raises :class:`thrifty.policy.base.PolicyError` with a message that
says what to do; the caller falls back to the heuristic and says so.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from thrifty.policy.base import Policy, PolicyError, PolicyInfo
from thrifty.policy.heuristic import HeuristicPolicy

HEURISTIC = "heuristic"
BACKENDS = {"numpy": "thrifty.policy.numpy_policy:NumpyPolicy.load",
            "rllib": "thrifty.policy.rllib_policy:RLlibPolicy"}
"""Serving backend -> ``module:callable`` taking the artefact directory, imported only when used
(so the operator never imports ray or torch unless asked to)."""


def _checked(policy: object, origin: str) -> Policy:
    """The object, if it has what the core calls on a policy."""
    missing = [name for name in ("score_nodes", "size") if not callable(getattr(policy, name, None))]
    if missing:
        raise PolicyError(f"{origin}: the object has no method {', '.join(missing)} (see thrifty.policy.base.Policy)")
    if not isinstance(getattr(policy, "info", None), PolicyInfo):
        raise PolicyError(f"{origin}: the object has no 'info' attribute of type thrifty.policy.base.PolicyInfo")
    return policy  # type: ignore[return-value]


def _from_directory(directory: Path, backend: str) -> Policy:
    if backend not in BACKENDS:
        raise PolicyError(f"policy backend {backend!r}: must be one of {', '.join(sorted(BACKENDS))}")
    module_name, _, path = BACKENDS[backend].partition(":")
    origin = f"policy {str(directory)!r} ({backend} backend)"
    try:
        first, *rest = path.split(".")
        loader = getattr(importlib.import_module(module_name), first)
        for attribute in rest:
            loader = getattr(loader, attribute)
        return _checked(loader(directory), origin)
    except PolicyError:
        raise
    except Exception as error:  # an artefact may be broken in any way; say which and how
        raise PolicyError(f"{origin} could not be loaded: {type(error).__name__}: {error}") from error


def _from_import(spec: str) -> Policy:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise PolicyError(f"policy {spec!r}: expected module:Class")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except ModuleNotFoundError as error:
        raise PolicyError(f"policy {spec!r}: cannot import module {error.name!r}") from error
    except AttributeError as error:
        raise PolicyError(f"policy {spec!r}: module {module_name!r} has no attribute {attribute!r}") from error
    if not callable(factory):
        raise PolicyError(f"policy {spec!r}: {attribute!r} is not a class or factory")
    try:
        policy = factory()
    except Exception as error:  # user code may fail in any way
        raise PolicyError(f"policy {spec!r}: constructing it failed: {type(error).__name__}: {error}") from error
    return _checked(policy, f"policy {spec!r}")


def load_policy(spec: str, backend: str = "numpy") -> Policy:
    """The policy named by ``spec`` (see the module docstring); raises :class:`PolicyError`."""
    if spec == HEURISTIC:
        return HeuristicPolicy()
    path = Path(spec)
    if path.is_dir():
        return _from_directory(path, backend)
    if ":" in spec:
        return _from_import(spec)
    if path.exists():
        raise PolicyError(f"policy {spec!r}: is a file; a trained policy is a directory (policies/<name>/)")
    raise PolicyError(f"policy {spec!r}: no such directory, and not {HEURISTIC!r} or module:Class")
