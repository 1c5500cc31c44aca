"""What a prediction replica (`lifelong.replica`) answers from: the snapshot file a learner
writes (`lifelong serve --snapshot-file`).

`SnapshotReader` looks at the file every `snapshot_poll_seconds` (one stat; the same inode and
modification time: nothing to read) and swaps a newer snapshot in by reference, as `ModelHost`
publishes its own. A file that does not parse is refused, once, and the previous snapshot stays;
atomic replacement means a partly written file is never seen. Until a first snapshot is read the
replica answers as a server that has learned nothing (FAILED_PRECONDITION) and its health says
NOT_SERVING.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lifelong import snapshot_file
from lifelong.metrics import PredictionMetrics
from lifelong.model import MLPPredictor
from lifelong.samples import Task

log = logging.getLogger(__name__)


class SnapshotReader:
    """A `PredictionSource`: the snapshot in `path`, read again by `poll()` when it changed."""

    def __init__(self, path: Path, task: Task, metrics: PredictionMetrics) -> None:
        self.path = path
        self.task = task
        self.metrics = metrics
        self.predictor = MLPPredictor.empty(task)
        self._seen: tuple[int, int, int] | None = None  # the file last read or refused
        self._error: str | None = None  # the last error reading it, logged once

    def poll(self) -> bool:
        """Read the file if it changed since the last look; whether a new snapshot came in."""
        try:
            seen = _identity(os.stat(self.path))
            if seen == self._seen:
                return False
            with open(self.path, "rb") as file:  # the file as opened, even if replaced meanwhile
                seen, data = _identity(os.fstat(file.fileno())), file.read()
        except FileNotFoundError:  # not written yet
            return False
        except OSError as e:  # e.g. no permission: said once, tried again at every poll
            if str(e) != self._error:
                self._error = str(e)
                log.error("cannot read the snapshot file %s: %s", self.path, e)
            return False
        self._error = None
        try:
            predictor = snapshot_file.load(data)
            if predictor.task != self.task:
                raise ValueError(f"it holds a {predictor.task} model, but task is {self.task}")
        except ValueError as e:
            self._seen = seen  # refused once, not at every poll
            log.error(
                "snapshot file %s refused, still serving version %d: %s",
                self.path,
                self.predictor.version,
                e,
            )
            return False
        self._seen, self.predictor = seen, predictor
        log.debug("snapshot version %d read from %s", predictor.version, self.path)
        return True


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
