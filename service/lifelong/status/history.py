"""A bounded ring of telemetry readings, recorded on a timer: what the status page charts.

A reading is a flat mapping of series name -> number: aggregates (an accuracy, a dead fraction,
a count), never samples. `History.record(reading, time)` appends one under a sequence number and
keeps the last `capacity`. Counters named in `markers` turn into events when they grow (a drift
detected, an update refused), kept in a ring of their own and drawn as markers.

>>> history = History(capacity=2, markers={"drifts": "drift"})
>>> for t, drifts in [(1.0, 0), (2.0, 1), (3.0, 1)]:
...     history.record({"accuracy": 0.5, "drifts": drifts}, t)
>>> history.since(1)
{'seq': 3, 'time': [2.0, 3.0], 'series': {'accuracy': [0.5, 0.5], 'drifts': [1, 1]}, \
'events': [{'seq': 2, 'time': 2.0, 'kind': 'drift'}]}

"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

Reading = Mapping[str, float]


class History:
    """The last `capacity` readings and the events found in them (at most `capacity` too)."""

    def __init__(self, capacity: int, markers: Mapping[str, str] | None = None) -> None:
        self.capacity = capacity
        self.markers = dict(markers or {})
        self._points: deque[tuple[int, float, Reading]] = deque(maxlen=capacity)
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()  # one recorder, any number of readers

    def record(self, reading: Reading, at: float) -> None:
        """Append `reading`, taken at Unix time `at`."""
        with self._lock:
            self._seq += 1
            if self._points:
                last = self._points[-1][2]
                for counter, kind in self.markers.items():
                    if reading.get(counter, 0) > last.get(counter, 0):
                        self._events.append({"seq": self._seq, "time": at, "kind": kind})
            self._points.append((self._seq, at, dict(reading)))

    def since(self, seq: int) -> dict[str, Any]:
        """Readings and events recorded after sequence number `seq` (0: all that are kept), as
        columns: `time` and one list per series (None where a reading lacked it); `seq` is the
        newest one's, to ask for what follows next time."""
        with self._lock:
            points = [p for p in self._points if p[0] > seq]
            events = [e for e in self._events if e["seq"] > seq]
            newest = self._seq
        names = dict.fromkeys(name for _, _, reading in points for name in reading)
        return {
            "seq": newest,
            "time": [at for _, at, _ in points],
            "series": {n: [reading.get(n) for _, _, reading in points] for n in names},
            "events": events,
        }


class Rate:
    """Per-second rate of a growing count between successive `update`s (0 at the first).

    >>> rate = Rate(clock=iter([0.0, 2.0]).__next__)
    >>> rate.update(10), rate.update(30)
    (0.0, 10.0)

    """

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[float, float] | None = None

    def update(self, count: float) -> float:
        now = self._clock()
        last, self._last = self._last, (now, count)
        if last is None or now <= last[0]:
            return 0.0
        return (count - last[1]) / (now - last[0])
