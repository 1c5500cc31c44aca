"""The status page: a read-only view of a learning service or a prediction replica, served over
HTTP (`/`, its JSON at `/api/v1/status`), charting telemetry aggregates kept in a bounded ring.

`probes` say what to read, `history` keeps it, `board` reads on a timer and builds the document,
`web` serves it; `static/` holds the page and the vendored uPlot (see `static/VENDORED.md`).
"""

from lifelong.status.board import Board
from lifelong.status.history import History, Rate
from lifelong.status.probes import Chart, LearnerProbe, ReplicaProbe
from lifelong.status.web import StatusApp, serve

__all__ = [
    "Board",
    "Chart",
    "History",
    "LearnerProbe",
    "Rate",
    "ReplicaProbe",
    "StatusApp",
    "serve",
]
