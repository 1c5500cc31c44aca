"""Atomic checkpoint files: learner bytes and the stream offsets they reflect.

One file per checkpoint, ``checkpoint-<sequence>.ckpt``::

    header:   magic b"LLCKPT\\r\\n", version u16, metadata length u32, payload length u64,
              sha256 of metadata + payload (32 bytes)
    metadata: JSON {"offsets": {"topic:partition": next_offset}, "samples_learned": n, "created": t}
    payload:  the learner's bytes (``lifelong.model.load`` reads them)

The digest detects a torn or flipped file, which is then skipped. A file is written to a temporary
name in the same directory, flushed, fsynced, renamed into place, then the directory is fsynced:
a crash leaves the previous checkpoint or the new one, never half of one.

>>> import tempfile
>>> store = CheckpointStore(Path(tempfile.mkdtemp()))
>>> _ = store.save(b"weights", {"samples:0": 42}, samples_learned=42)
>>> checkpoint = store.load_latest()
>>> checkpoint.learner_state, checkpoint.offsets, checkpoint.samples_learned
(b'weights', {'samples:0': 42}, 42)

"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Checkpoint", "CheckpointStore"]

log = logging.getLogger(__name__)

MAGIC = b"LLCKPT\r\n"  # the CR LF catches text-mode mangling, as PNG's signature does
VERSION = 1
HEADER = struct.Struct(">8sHIQ32s")
NAME = re.compile(r"checkpoint-(\d{12})\.ckpt")
TEMP_PREFIX = ".checkpoint-"  # never matches NAME: a crash's leftover is not a checkpoint


def sequence_of(path: Path) -> int:
    """The sequence number of the checkpoint file at `path`.

    >>> sequence_of(Path("/ckpt/checkpoint-000000000042.ckpt"))
    42
    """
    match = NAME.fullmatch(path.name)
    if match is None:
        raise ValueError(f"{path} is not named as a checkpoint")
    return int(match.group(1))


class CorruptCheckpoint(ValueError):
    """A checkpoint file that cannot be trusted."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    sequence: int
    learner_state: bytes
    offsets: dict[str, int]
    samples_learned: int
    created: float


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, prefix: str, durable: bool) -> None:
    """Replace the file at `path` with `data` through a temporary file named `prefix`... in the
    same directory, renamed into place: a reader sees the old file or the new one, never part of
    one. `durable`: the file fsynced before the rename and the directory after it, so the new
    file also survives a power loss."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_directory(path.parent)


def encode(learner_state: bytes, offsets: dict[str, int], samples_learned: int) -> bytes:
    metadata = json.dumps(
        {"offsets": offsets, "samples_learned": samples_learned, "created": time.time()},
        sort_keys=True,
    ).encode()
    digest = hashlib.sha256(metadata)
    digest.update(learner_state)
    header = HEADER.pack(MAGIC, VERSION, len(metadata), len(learner_state), digest.digest())
    return header + metadata + learner_state


def decode(data: bytes, path: Path, sequence: int) -> Checkpoint:
    if len(data) < HEADER.size:
        raise CorruptCheckpoint(f"truncated header ({len(data)} bytes)")
    magic, version, metadata_length, payload_length, expected = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptCheckpoint("not a checkpoint file (bad magic)")
    if version != VERSION:
        raise CorruptCheckpoint(f"unsupported format version {version}")
    body = memoryview(data)[HEADER.size :]
    if len(body) != metadata_length + payload_length:
        raise CorruptCheckpoint(
            f"truncated: {len(body)} bytes after the header, expected "
            f"{metadata_length + payload_length}"
        )
    if hashlib.sha256(body).digest() != expected:
        raise CorruptCheckpoint("checksum mismatch")
    metadata = json.loads(bytes(body[:metadata_length]))
    return Checkpoint(
        path=path,
        sequence=sequence,
        learner_state=bytes(body[metadata_length:]),
        offsets={str(k): int(v) for k, v in metadata["offsets"].items()},
        samples_learned=int(metadata["samples_learned"]),
        created=float(metadata["created"]),
    )


class CheckpointStore:
    """Numbered checkpoint files in one directory; the newest `keep` are kept.

    Saves are serialised by a lock, so the sequence follows the order of `save` calls. One process
    writes a directory; readers may open it at any time.

    """

    def __init__(self, directory: Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.directory = Path(directory)
        self.keep = keep
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _sequences(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.iterdir():
            match = NAME.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def save(self, learner_state: bytes, offsets: dict[str, int], samples_learned: int) -> Path:
        """Write a checkpoint atomically and return its path."""
        data = encode(learner_state, offsets, samples_learned)
        with self._lock:
            for stale in self.directory.glob(TEMP_PREFIX + "*"):
                stale.unlink(missing_ok=True)  # a crashed writer's leftover; we are the only writer
            existing = self._sequences()
            sequence = existing[-1][0] + 1 if existing else 1
            path = self.directory / f"checkpoint-{sequence:012d}.ckpt"
            write_atomically(path, data, prefix=TEMP_PREFIX, durable=True)
            for _, old in existing[: max(0, len(existing) + 1 - self.keep)]:
                old.unlink(missing_ok=True)
        return path

    def load_latest(self) -> Checkpoint | None:
        """The newest checkpoint that reads back intact, or None if there is none."""
        return next(self.checkpoints(), None)

    def load(self, sequence: int) -> Checkpoint | None:
        """Checkpoint number `sequence` if it is there and intact, else None."""
        return next((c for c in self.checkpoints() if c.sequence == sequence), None)

    def checkpoints(self) -> Iterator[Checkpoint]:
        """The checkpoints that read back intact, newest first (each read when reached)."""
        for sequence, path in reversed(self._sequences()):
            try:
                yield decode(path.read_bytes(), path, sequence)
            except FileNotFoundError:  # pruned by a save meanwhile
                continue
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("skipping checkpoint %s: %s", path, error)
