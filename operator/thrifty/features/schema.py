"""The feature schema's version, stored with every trained policy.

Bump :data:`SCHEMA_VERSION` whenever a column is added, removed, renamed or reordered, or its
definition, unit or default changes: a policy trained on one schema cannot read another.
:data:`SCHEMA_FINGERPRINTS` records the column names of each version, so that a change to the
names without a bump fails ``tests/unit/test_features.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SCHEMA_VERSION = 1
"""Version of every column tuple in :mod:`thrifty.features`."""

SCHEMA_FINGERPRINTS: dict[int, str] = {
    1: "ffcb37109844754c",
}
"""``fingerprint`` of the column names of each released schema version."""


def fingerprint(name_tuples: Iterable[tuple[str, ...]]) -> str:
    """Short sha256 of the column-name tuples, in order."""
    text = "\n".join("|".join(names) for names in name_tuples)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
