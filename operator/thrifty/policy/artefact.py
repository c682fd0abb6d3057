"""A trained policy on disk: ``policies/<name>/``.

==================  ==============================================================
file                content
==================  ==============================================================
``policy.json``     name, version, feature schema version and fingerprint, network
                    shapes, observation normalisation, training config and seed
``weights.npz``     the network weights as numpy arrays (torch ``Linear`` layout)
``MODEL_CARD.md``   data, training time, evaluation on training and held-out slices
``rllib/``          the RLlib checkpoints (``--policy-backend rllib``)
==================  ==============================================================

Loading checks everything before a policy serves: a missing file, an unreadable array, a
schema the running feature module does not produce, or a weight of the wrong shape raises
:class:`~thrifty.policy.base.PolicyError` naming the file and the problem.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrifty import features
from thrifty.policy.base import PolicyError

METADATA_FILE = "policy.json"
WEIGHTS_FILE = "weights.npz"
MODEL_CARD_FILE = "MODEL_CARD.md"
RLLIB_DIR = "rllib"

NETWORKS = {
    "placement": features.PLACEMENT_ROW_NAMES,
    "sizing": features.WORKLOAD_FEATURE_NAMES,
}
"""The networks of a policy and the feature columns each one reads."""


@dataclass(frozen=True)
class Artefact:
    """A loaded, validated policy artefact."""

    directory: Path
    metadata: dict
    weights: dict[str, np.ndarray]
    normalisers: dict[str, features.RunningNormaliser]
    hidden_layers: int

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])


def _read_metadata(path: Path) -> dict:
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"{path}: missing (not a policy artefact directory?)") from None
    except (OSError, json.JSONDecodeError) as error:
        raise PolicyError(f"{path}: unreadable: {error}") from None
    for key in ("name", "version", "feature_schema_version", "feature_fingerprint", "hidden_layers", "normalisation"):
        if key not in metadata:
            raise PolicyError(f"{path}: missing key {key!r}")
    return metadata


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            weights = {name: archive[name].astype(np.float32) for name in archive.files}
    except FileNotFoundError:
        raise PolicyError(f"{path}: missing") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise PolicyError(f"{path}: unreadable: {error}") from None
    for name, array in weights.items():
        if not np.all(np.isfinite(array)):
            raise PolicyError(f"{path}: array {name!r} holds NaN or infinite values")
    return weights


def _check_shapes(path: Path, weights: dict[str, np.ndarray], layers: int) -> None:
    """Each network's first layer reads exactly the columns the feature module produces now."""
    for network, columns in NETWORKS.items():
        first = f"{network}.trunk.0.weight"
        if first not in weights:
            raise PolicyError(f"{path}: array {first!r} missing")
        if weights[first].shape[1] != len(columns):
            raise PolicyError(
                f"{path}: {first} reads {weights[first].shape[1]} features, the feature module "
                f"produces {len(columns)}"
            )
        for i in range(layers):
            for part in ("weight", "bias"):
                if f"{network}.trunk.{2 * i}.{part}" not in weights:
                    raise PolicyError(f"{path}: array '{network}.trunk.{2 * i}.{part}' missing")


def load_artefact(directory: str | Path) -> Artefact:
    """Load and validate ``directory``; raises PolicyError naming the file and the problem."""
    directory = Path(directory)
    metadata = _read_metadata(directory / METADATA_FILE)
    if metadata["feature_schema_version"] != features.SCHEMA_VERSION:
        raise PolicyError(
            f"{directory / METADATA_FILE}: trained on feature schema {metadata['feature_schema_version']}, "
            f"this Thrifty computes schema {features.SCHEMA_VERSION}; retrain the policy"
        )
    if metadata["feature_fingerprint"] != features.schema_fingerprint():
        raise PolicyError(
            f"{directory / METADATA_FILE}: feature columns differ from this Thrifty's schema "
            f"{features.SCHEMA_VERSION} (fingerprint mismatch); retrain the policy"
        )
    layers = int(metadata["hidden_layers"])
    weights = _read_weights(directory / WEIGHTS_FILE)
    _check_shapes(directory / WEIGHTS_FILE, weights, layers)
    normalisers = {}
    for network, columns in NETWORKS.items():
        entry = metadata["normalisation"].get(network)
        if entry is None:
            raise PolicyError(f"{directory / METADATA_FILE}: normalisation for {network!r} missing")
        try:
            normaliser = features.RunningNormaliser.from_dict(entry)
            normaliser.check(columns, features.SCHEMA_VERSION)
        except (KeyError, TypeError, ValueError) as error:
            raise PolicyError(f"{directory / METADATA_FILE}: normalisation for {network!r}: {error}") from None
        normalisers[network] = normaliser
    return Artefact(directory, metadata, weights, normalisers, layers)
