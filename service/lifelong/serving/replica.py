"""A prediction replica (`lifelong serve-predictions`): PredictionService answered from the
snapshot file a learner writes (`lifelong serve --snapshot-file`), in a process of its own, so
serving does not share the learner's GIL.

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
import signal
import sys
import threading
from pathlib import Path

from lifelong import snapshot_file
from lifelong.config import ConfigError, Settings
from lifelong.http import serve_http, status_board
from lifelong.metrics import PredictionMetrics
from lifelong.model import MLPPredictor
from lifelong.samples import Task
from lifelong.serving.server import GrpcServer
from lifelong.status import ReplicaProbe

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


class Replica:
    """One `lifelong serve-predictions` process: `start()`, then `stop()` (or `run()`)."""

    def __init__(self, settings: Settings) -> None:
        if settings.snapshot_file is None:
            raise ConfigError(
                "serve-predictions needs snapshot_file (--snapshot-file): the file a "
                "`lifelong serve --snapshot-file` learner writes"
            )
        sys.setswitchinterval(settings.switch_interval_ms / 1000)  # gRPC workers share the GIL
        self.settings = settings
        self.metrics = PredictionMetrics()
        self.reader = SnapshotReader(settings.snapshot_file, settings.task, self.metrics)
        self.metrics.watch_version(lambda: self.reader.predictor.version)
        self.grpc = GrpcServer(self.reader, settings, predictions_only=True)
        self.board = status_board(settings, ReplicaProbe(self.reader, settings.snapshot_file))
        self.done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: list = []

    def start(self) -> None:
        self._http = serve_http(self.settings, self.metrics, self.board)
        ready = self.reader.poll()
        self.grpc.start(serving=ready)
        self._threads.append(threading.Thread(target=self._poll, args=(ready,), name="snapshot"))
        if self.board is not None:
            status = threading.Thread(target=self.board.run, args=(self.done,), name="status")
            self._threads.append(status)
        for thread in self._threads:
            thread.start()
        log.info("serving predictions from %s", self.settings.snapshot_file)

    def _poll(self, ready: bool) -> None:
        while not self.done.wait(self.settings.snapshot_poll_seconds):
            if self.reader.poll() and not ready:
                ready = True
                self.grpc.set_serving()

    def run(self) -> int:
        """Start, serve until SIGTERM or SIGINT, stop; the exit status."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, _: self.done.set())
        self.start()
        self.done.wait()
        log.info("shutting down")
        self.stop()
        return 0

    def stop(self, grace: float = 5.0) -> None:
        self.done.set()
        self.grpc.stop(grace)
        for thread in self._threads:
            thread.join()
        for server in self._http:
            server.shutdown()
