"""Open trace files whatever their packaging: plain, gzip, tar archive or directory.

Every loader reads its input through :func:`members`, so each format accepts the same packaging
variants. Compression is recognised by content (magic bytes), not by file name, because renamed
or re-packaged copies of a trace are common.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from thrifty.traces.model import TraceFormatError

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Member:
    """One file's decompressed content."""

    name: str
    """How errors name it: the path, or ``archive[member]`` for a file inside an archive."""
    filename: str
    """The file's own name, without directories."""
    data: bytes

    @property
    def stem(self) -> str:
        """The file name without its ``.gz``, ``.csv``, ``.jsonl`` or ``.json`` suffixes."""
        stem = self.filename
        for suffix in (".gz", ".csv", ".jsonl", ".json"):
            stem = stem.removesuffix(suffix)
        return stem

    def text(self) -> str:
        """The content as text (UTF-8, a byte-order mark removed)."""
        try:
            return self.data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise TraceFormatError(self.name, None, f"not UTF-8 text ({err.reason})") from None


def gunzip_if_needed(name: str, data: bytes) -> bytes:
    """Decompress ``data`` when it is gzip (a ``.gz`` variant of a text format)."""
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise TraceFormatError(name, None, f"corrupt gzip data: {err}") from None


def _is_archive(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, tarfile.TarError):
        # A truncated .gz or .xz makes tarfile's probe fail; it is then not a readable archive.
        return False


def _wanted(filename: str, suffixes: tuple[str, ...] | None) -> bool:
    # Hidden files are never data: macOS tar adds AppleDouble "._name" companions, editors and
    # version control add their own.
    if filename.startswith("."):
        return False
    return suffixes is None or filename.lower().removesuffix(".gz").endswith(suffixes)


def _archive_members(path: Path, suffixes: tuple[str, ...] | None) -> Iterator[Member]:
    try:
        with tarfile.open(path, "r:*") as archive:
            # Archive order, not sorted: going back in a compressed stream decompresses it again
            # from the start, which makes a sorted read of a large .tar.xz quadratic.
            for entry in archive:
                filename = os.path.basename(entry.name)
                if not entry.isfile() or not _wanted(filename, suffixes):
                    continue
                handle = archive.extractfile(entry)
                if handle is None:
                    continue
                name = f"{path}[{entry.name}]"
                yield Member(name, filename, gunzip_if_needed(name, handle.read()))
    except (OSError, EOFError, tarfile.TarError) as err:
        raise TraceFormatError(str(path), None, f"unreadable archive: {err}") from None


def members(
    path: str | os.PathLike[str], suffixes: tuple[str, ...] | None = None
) -> Iterator[Member]:
    """Yield the files that ``path`` holds, decompressed: a directory's sorted by path, an
    archive's in archive order.

    ``path`` may be a plain or gzip-compressed file, a tar archive (plain, ``.gz``, ``.xz`` or
    ``.bz2``) of such files, or a directory of any of these (searched recursively). Inside an
    archive or directory only files whose name ends with one of ``suffixes`` (before an optional
    ``.gz``; all files if None) are kept, so that a README beside the data is not read as data.
    A file named directly is always read.
    """
    path = Path(path)
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            if _is_archive(child):
                yield from _archive_members(child, suffixes)
            elif _wanted(child.name, suffixes):
                yield Member(
                    str(child), child.name, gunzip_if_needed(str(child), child.read_bytes())
                )
        return
    if not path.exists():
        raise TraceFormatError(str(path), None, "no such file or directory")
    if _is_archive(path):
        yield from _archive_members(path, suffixes)
        return
    yield Member(str(path), path.name, gunzip_if_needed(str(path), path.read_bytes()))


def single_member(path: str | os.PathLike[str]) -> Member:
    """The one file that ``path`` holds (for formats that are a single file)."""
    found = list(members(path))
    if len(found) != 1:
        raise TraceFormatError(str(path), None, f"expected one file, found {len(found)}")
    return found[0]
