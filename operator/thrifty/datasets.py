"""The trace slices shipped in ``traces/``, grouped into the training and the held-out split.

Training, calibration of the baselines and the environments' tests use ``train``; published
evaluation uses ``heldout``, which no policy or baseline was tuned on.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from thrifty.traces import load
from thrifty.traces.model import Trace

SPLITS = ("train", "heldout")

_SHARED_FILES = ("alibaba-openb/nodes.csv.gz",)
"""Files used by both splits: the node inventory describes hardware, not load."""

_SPLIT_FILES = (
    "alibaba-openb/pods-{split}.csv.gz",
    "alibaba-callgraphs/callgraphs-{split}.jsonl.gz",
    "alibaba-genai/genai-{split}.tar.gz",
    "azure-llm/conv-{split}.csv.gz",
    "bitbrains-rnd/vms-{split}.tar.xz",
    "vasim-alibaba/c_12104_cpu-{split}.csv.gz",
)


def traces_dir() -> Path:
    """``$THRIFTY_TRACES``, else the ``traces/`` folder of the source checkout."""
    configured = os.environ.get("THRIFTY_TRACES")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "traces"


def split_files(split: str, root: Path | None = None) -> tuple[Path, ...]:
    """Paths of the files of one split."""
    if split not in SPLITS:
        raise ValueError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")
    root = root or traces_dir()
    return tuple(root / name for name in _SHARED_FILES) + tuple(
        root / name.format(split=split) for name in _SPLIT_FILES
    )


@lru_cache(maxsize=4)
def load_split(split: str, root: str | None = None) -> tuple[Trace, ...]:
    """Every trace of one split, loaded (cached: loading takes about a second)."""
    return tuple(load(path) for path in split_files(split, Path(root) if root else None))
