"""What every Lifelong process does at start and at the end, the learning service (`App`) and
the prediction replica alike: logs (text or JSON lines), the interpreter's switch interval,
malloc's thresholds, and serving until SIGTERM or SIGINT.

>>> import threading
>>> done = threading.Event()
>>> run_until_signalled(done.set, lambda: print("stopped"), done)
stopped

"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable

from lifelong.config import Settings

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)


def prepare(settings: Settings) -> None:
    """The interpreter's side of serving: gRPC workers and learning share the GIL, and a
    short switch interval keeps a prediction from waiting behind a learning step."""
    sys.setswitchinterval(settings.switch_interval_ms / 1000)
    fix_mmap_threshold()


M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 256 * 1024


def fix_mmap_threshold() -> bool:
    """Have glibc's malloc give each block of `MMAP_THRESHOLD_BYTES` or more a mapping of its own,
    unmapped when freed, whatever blocks were freed before; True if it was set.

    glibc raises the threshold to the largest mapped block freed (up to 32 MiB): after one record
    of several MB, blocks that size come from the heap and stay in the process when freed, so the
    service grew with each large record and its parsed document (issue 16, finding 7; the numbers
    are in tests/fuzz/test_fuzz_service.py). Fixing the threshold also fixes the heap's trim
    threshold (128 KiB). Left alone elsewhere than glibc, and when the environment sets it.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "malloc.mmap_threshold" in tunables:
        return False
    return ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


def run_until_signalled(
    start: Callable[[], None], stop: Callable[[], None], done: threading.Event
) -> None:
    """`start()`, wait until SIGTERM, SIGINT or `done` is set, then `stop()`."""
    if threading.current_thread() is threading.main_thread():  # signals reach only it
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, _: _on_signal(signum, done))
    start()
    done.wait()
    stop()


def _on_signal(signum: int, done: threading.Event) -> None:
    log.info("%s: shutting down", signal.Signals(signum).name)
    done.set()
