"""What the status page costs learning: the demo's learning rate with the page open and
refreshing against the same service with the page turned off.

    .venv/bin/python benchmarks/status/page_cost.py               # 8 pairs of 30 s, ~6 min
    .venv/bin/python benchmarks/status/page_cost.py --pairs 1 --seconds 5   # a smoke run

Each pair is two fresh `lifelong serve --demo --demo-rate 0` subprocesses run side by side (the
embedded drifting stream learned flat out: Python-bound, so any GIL the page takes shows; the
default learner; no checkpoints). "off": `--status-port 0` (no page, no recording). "open": the
page on the metrics port (recording every second) and a client in this process doing what an
open page does: load the page and its files once, then `GET /api/v1/status?since=N` every second.
After `--warmup` seconds both learning rates are measured over the same `--seconds` (from
`lifelong_samples_learned_total`), with each process's CPU time. Side by side, the load of the
shared machine falls on both alike (one after the other, it moved the rate by a third between
runs). Which process runs first alternates. The result is the median over pairs of open/off in
samples per wall second, and in samples per CPU second of the service (what the page costs in
CPU, whatever else the machine runs). First, in this process alone, the CPU time of one recording,
one poll (one new reading), one first load of a full ring (600 readings), and one poll over
HTTP, server and client together; then two services learning nothing, page off and open, for
twice `--seconds`: their CPU per second. Writes
results/page_cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speed"))
from service_bench import Service, cpu_seconds, loadavg, machine_info

RESULTS = Path(__file__).resolve().parent / "results"
PAGE_FILES = (
    "",
    "static/uPlot.min.css",
    "static/status.css",
    "static/uPlot.iife.min.js",
    "static/status.js",
)
FLAGS = (
    "--demo",
    "--demo-rate",
    "0",
    "--checkpoint-every-samples",
    "1000000000",
    "--checkpoint-every-seconds",
    "1000000000",
)
MEASURES = ("samples_per_second", "samples_per_cpu_second")


class OpenPage(threading.Thread):
    """What a browser showing the page asks: the page once, then the JSON every `every` s."""

    def __init__(self, base: str, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.base, self.every = base, every
        self.stop = threading.Event()
        self.latencies: list[float] = []  # seconds per JSON poll
        self.bytes = 0

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            body = response.read()
        self.bytes += len(body)
        return body

    def run(self) -> None:
        for path in PAGE_FILES:
            self.get(path)
        seq = 0
        while not self.stop.wait(self.every):
            start = time.perf_counter()
            seq = json.loads(self.get(f"api/v1/status?since={seq}"))["history"]["seq"]
            self.latencies.append(time.perf_counter() - start)


def side_by_side(
    flags: dict[str, tuple[str, ...]], warmup: float, seconds: float, read: Callable[[Service], Any]
) -> tuple[dict[str, Any], dict[str, Any], float, OpenPage]:
    """A service per mode of `flags` (started in its order), the "open" one polled by an open
    page; `read` of each after `warmup` and again `seconds` later: (before, after, elapsed,
    page)."""
    services = {mode: Service(*mode_flags) for mode, mode_flags in flags.items()}
    try:
        for service in services.values():
            service.wait_ready()
        page = OpenPage(f"http://127.0.0.1:{services['open'].metrics_port}/")
        page.start()
        time.sleep(warmup)
        before = {m: read(s) for m, s in services.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        after = {m: read(s) for m, s in services.items()}
        elapsed = time.monotonic() - t0
        page.stop.set()
        page.join()
    finally:
        for service in services.values():
            service.close()
    return before, after, elapsed, page


def run_pair(warmup: float, seconds: float, open_first: bool) -> dict:
    """Both modes side by side over the same window: mode -> its measurements."""
    modes = ("open", "off") if open_first else ("off", "open")
    flags = {"off": (*FLAGS, "--status-port", "0"), "open": FLAGS}
    before, after, elapsed, page = side_by_side(
        {mode: flags[mode] for mode in modes},
        warmup,
        seconds,
        lambda s: (s.learned("demo"), cpu_seconds(s.proc.pid)),
    )
    result: dict = {"first": modes[0]}
    for mode in modes:
        learned = after[mode][0] - before[mode][0]
        cpu = after[mode][1] - before[mode][1]
        result[mode] = {
            "samples_per_second": learned / elapsed,
            "samples_per_cpu_second": learned / cpu,
            "cpu_seconds": cpu,
        }
    result["open"].update(
        polls=len(page.latencies),
        poll_ms_median=1000 * statistics.median(page.latencies),
        bytes_fetched=page.bytes,
    )
    return result


def idle_cpu(seconds: float) -> dict[str, float]:
    """CPU milliseconds per second of a service learning nothing, with the page off and open
    (side by side, the open one polled as in `run_pair`): the difference is all the page costs,
    recording and serving, without learning's share of the GIL in the way."""
    flags = {"off": ("--status-port", "0"), "open": ()}
    before, after, elapsed, _ = side_by_side(flags, 2.0, seconds, lambda s: cpu_seconds(s.proc.pid))
    return {m: 1000 * (after[m] - before[m]) / elapsed for m in flags}


def cpu_per_call(calls: int = 2000) -> dict[str, float]:
    """CPU microseconds of one recording and of one page poll (one new reading), in this process
    with nothing else running: a default learner that has learned 20k demo samples."""
    from lifelong.demo import drifting_stream
    from lifelong.host import ModelHost
    from lifelong.model import LearnerConfig, LifelongClassifier
    from lifelong.samples import Sample
    from lifelong.status import Board, LearnerProbe, StatusApp, serve

    host = ModelHost(LifelongClassifier(LearnerConfig()))
    stream = drifting_stream(seed=0)
    host.learn(
        [Sample(x, None, y) for x, y in (next(stream) for _ in range(20_000))], source="demo"
    )
    board = Board(LearnerProbe(host), interval=1.0, horizon=600.0)
    app = StatusApp(board)
    for _ in range(600):  # a full ring, as after ten minutes
        board.record()

    def poll() -> None:
        since = board.history.since(10**12)["seq"] - 1
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/api/v1/status",
            "QUERY_STRING": f"since={since}",
        }
        b"".join(app(environ, lambda status, headers: None))

    def first_load() -> None:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/v1/status", "QUERY_STRING": ""}
        b"".join(app(environ, lambda status, headers: None))

    result = {}
    for name, call, n in (
        ("record", board.record, calls),
        ("poll", poll, calls),
        ("first_load", first_load, calls // 20),
    ):
        start = time.thread_time()
        for _ in range(n):
            call()
        result[f"cpu_us_per_{name}"] = 1e6 * (time.thread_time() - start) / n
    # The whole HTTP round trip, server thread and this client together: an upper bound.
    server = serve(app, 0, "127.0.0.1")
    page = OpenPage(f"http://127.0.0.1:{server.server_port}/")
    n = calls // 4
    start = time.process_time()
    for _ in range(n):
        page.get(f"api/v1/status?since={board.history.since(10**12)['seq'] - 1}")
    result["cpu_us_per_http_poll_with_client"] = 1e6 * (time.process_time() - start) / n
    server.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured, per pair")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--out", type=Path, default=RESULTS / "page_cost.json")
    args = parser.parse_args()

    per_call = cpu_per_call()
    print(", ".join(f"{k} {v:.0f}" for k, v in per_call.items()), flush=True)
    idle = idle_cpu(args.seconds * 2)
    print(f"learning nothing: off {idle['off']:.1f}, open {idle['open']:.1f} CPU ms/s", flush=True)
    pairs = []
    for i in range(args.pairs):
        pair = run_pair(args.warmup, args.seconds, open_first=i % 2 == 1)
        pair["loadavg"] = loadavg()
        pairs.append(pair)
        off, open_ = pair["off"], pair["open"]
        print(
            f"pair {i}: off {off['samples_per_second']:6.0f}/s "
            f"{off['samples_per_cpu_second']:6.0f}/CPU-s, "
            f"open {open_['samples_per_second']:6.0f}/s "
            f"{open_['samples_per_cpu_second']:6.0f}/CPU-s",
            flush=True,
        )
    summary: dict = {}
    for measure in MEASURES:
        ratios = [p["open"][measure] / p["off"][measure] for p in pairs]
        summary[measure] = {"median_open_over_off": statistics.median(ratios), "ratios": ratios}
        print(
            f"open/off, {measure}: median {statistics.median(ratios):.4f} "
            f"({', '.join(f'{r:.4f}' for r in ratios)})"
        )
    summary.update(per_call)
    summary["idle_cpu_ms_per_second"] = idle
    summary["poll_ms_median"] = statistics.median(p["open"]["poll_ms_median"] for p in pairs)
    args.out.parent.mkdir(exist_ok=True)
    record = {
        "command": " ".join(sys.argv),
        "args": {k: str(v) for k, v in vars(args).items()},
        "summary": summary,
        "pairs": pairs,
        "machine": machine_info(),
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
