"""Standardisation of feature columns for the policy networks, stored with a policy's weights.

Features come in their own units (millicores, bytes, watts, ratios), so a network sees
``clip((x - mean) / std, -clip, clip)``. During training :meth:`RunningNormaliser.update`
accumulates the mean and variance over every batch seen; the trained policy is exported with
:meth:`RunningNormaliser.to_dict` (JSON-friendly) or :meth:`RunningNormaliser.save` (npz), and
the operator applies the frozen statistics. The column names travel with the statistics, so
loading a normaliser against a different feature schema fails loudly instead of silently
scaling the wrong columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.features.schema import SCHEMA_VERSION

DEFAULT_CLIP = 10.0
"""Standardised values are clipped to +-10: outliers stay visible but cannot saturate a layer."""

_MIN_STD = 1e-8
"""A column whose standard deviation is below this is constant: it is centred, not scaled."""


@dataclass
class RunningNormaliser:
    """Per-column mean and variance, updated batch by batch, applied as a clipped z-score.

    Start one with :meth:`new` (training) or :meth:`fixed` (statistics computed elsewhere).
    """

    names: tuple[str, ...]
    """Column names, in order (e.g. ``PLACEMENT_ROW_NAMES``)."""
    schema_version: int
    """``thrifty.features.SCHEMA_VERSION`` of the features the statistics were gathered on."""
    mean: np.ndarray
    """(F,) column means."""
    variance: np.ndarray
    """(F,) column population variances."""
    count: float = 0.0
    """Rows seen so far."""
    clip: float = DEFAULT_CLIP
    """Bound of the standardised values."""

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        width = len(self.names)
        self.mean = np.array(self.mean, dtype=float)
        self.variance = np.array(self.variance, dtype=float)
        if self.mean.shape != (width,) or self.variance.shape != (width,):
            raise ValueError(
                f"RunningNormaliser: mean {self.mean.shape} and variance {self.variance.shape} "
                f"must have one entry per name ({width})"
            )
        if not (
            np.all(np.isfinite(self.mean))
            and np.all(np.isfinite(self.variance))
            and np.all(self.variance >= 0)
        ):
            raise ValueError("RunningNormaliser: mean and variance must be finite, variance >= 0")
        if not self.clip > 0:
            raise ValueError(f"RunningNormaliser: clip must be positive, got {self.clip}")

    @classmethod
    def new(
        cls, names: Sequence[str], schema_version: int = SCHEMA_VERSION, clip: float = DEFAULT_CLIP
    ) -> RunningNormaliser:
        """A normaliser that has seen nothing yet (the identity, clipped, until updated)."""
        width = len(names)
        return cls(tuple(names), schema_version, mean=np.zeros(width), variance=np.ones(width), clip=clip)

    @classmethod
    def fixed(
        cls,
        names: Sequence[str],
        schema_version: int,
        mean: np.ndarray,
        std: np.ndarray,
        clip: float = DEFAULT_CLIP,
    ) -> RunningNormaliser:
        """A normaliser with given statistics, e.g. computed offline over a whole trace."""
        std = np.asarray(std, dtype=float)
        return cls(tuple(names), schema_version, mean=mean, variance=std**2, count=1.0, clip=clip)

    @property
    def std(self) -> np.ndarray:
        """(F,) standard deviations; 1 for constant columns, which are then only centred."""
        std = np.sqrt(self.variance)
        return np.where(std > _MIN_STD, std, 1.0)

    def update(self, batch: np.ndarray) -> None:
        """Fold a (rows, F) batch into the statistics (Chan et al.'s parallel algorithm)."""
        batch = self._checked(batch).reshape(-1, len(self.names))
        if not np.all(np.isfinite(batch)):
            raise ValueError("normaliser: update batch holds NaN or inf")
        rows = batch.shape[0]
        if rows == 0:
            return
        batch_mean = batch.mean(axis=0)
        batch_variance = batch.var(axis=0)
        total = self.count + rows
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (rows / total)
        self.variance = (
            self.variance * self.count + batch_variance * rows + delta**2 * (self.count * rows / total)
        ) / total
        self.count = total

    def normalise(self, features: np.ndarray) -> np.ndarray:
        """``clip((x - mean) / std, -clip, clip)`` over the last axis of ``features`` (..., F)."""
        features = self._checked(features)
        return np.clip((features - self.mean) / self.std, -self.clip, self.clip)

    __call__ = normalise

    def check(self, names: Sequence[str], schema_version: int) -> None:
        """Raise ValueError unless the statistics were gathered on exactly these columns."""
        if tuple(names) != self.names or schema_version != self.schema_version:
            missing = [name for name in names if name not in self.names]
            extra = [name for name in self.names if name not in names]
            raise ValueError(
                f"normaliser was built for feature schema {self.schema_version} with {len(self.names)} "
                f"columns, this code has schema {schema_version} with {len(names)} columns "
                f"(new: {missing[:5]}, gone: {extra[:5]}); retrain or export the policy again"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable form."""
        return {
            "names": list(self.names),
            "schema_version": int(self.schema_version),
            "mean": self.mean.tolist(),
            "variance": self.variance.tolist(),
            "count": float(self.count),
            "clip": float(self.clip),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunningNormaliser:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                names=tuple(str(name) for name in data["names"]),
                schema_version=int(data["schema_version"]),
                mean=np.asarray(data["mean"], dtype=float),
                variance=np.asarray(data["variance"], dtype=float),
                count=float(data["count"]),
                clip=float(data.get("clip", DEFAULT_CLIP)),
            )
        except KeyError as missing:
            raise ValueError(f"normaliser: missing field {missing}") from None

    def save(self, path: str | Path) -> None:
        """Write the statistics to an ``.npz`` file (readable without pickle)."""
        np.savez(
            path,
            names=np.asarray(self.names, dtype=str),
            schema_version=np.int64(self.schema_version),
            mean=self.mean,
            variance=self.variance,
            count=np.float64(self.count),
            clip=np.float64(self.clip),
        )

    @classmethod
    def load(cls, path: str | Path) -> RunningNormaliser:
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_dict({key: data[key] for key in data.files} | {"names": data["names"].tolist()})

    def _checked(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=float)
        if features.ndim == 0 or features.shape[-1] != len(self.names):
            raise ValueError(
                f"normaliser: expected {len(self.names)} columns in the last axis, got shape {features.shape}"
            )
        return features
