"""Prediction throughput (PredictBatch, PredictStream) and unary Predict latency with ghz, with
and without the service learning from Kafka at full rate.

    GOBIN=$PWD/.cache/bin go install github.com/bojand/ghz/cmd/ghz@v0.120.0   # once
    .venv/bin/python benchmarks/speed/predict_latency.py          # starts and stops its own broker
    .venv/bin/python benchmarks/speed/predict_latency.py --bootstrap 127.0.0.1:9092

Two topics of the 20-feature Hyperplane stream are written first (JSON records, as kafka_e2e.py):
a small one (`--warm`, 2k) and a large one (`--load`, 2M). Phase "idle": `lifelong serve`
(defaults: 8 gRPC workers, one OpenBLAS/torch thread) learns the small topic, then only answers:
PredictBatch of 256 and 1024 rows and PredictStream of 1024-row messages, from 1 and 2 client
threads of raw stubs with requests built once, each case with the rows as `examples` (one dense
`Features` each) then as one `Matrix` (`--seconds` each; rows/s = rows answered / wall time;
CPU per row of the client process and of the service), then ghz: unary Predict (one dense row)
at a constant `--rps` for `--duration` (`--unary-only`: the ghz phases alone, into
results/predict_unary.json). `--throughput-only`: the batch and stream cases alone,
without a broker (the service learns the small set over LearnStream), into
results/predict_throughput.json. Phase
"learning": a fresh service consumes the large topic; once it learns, the same ghz run, and the
learning rate during it (from /metrics) is recorded; the topic outlasts the run (checked). It runs
twice: with the default GIL switch interval (`unary_learning`) and with Python's own 5 ms
(`unary_learning_switch_5ms`). Phase "replica" (`unary_replica`): the same, the learner writing its
snapshot file (`--snapshot-file` in /dev/shm) and ghz calling a `lifelong serve-predictions`
process serving that file; the learner's CPU is recorded beside the replica's. Each ghz run
records the CPU per call of the service (answering) and of ghz.
Client and server share the machine's cores. Writes results/predict.json (ghz's own JSON report
included) and results/predict_latency.png.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc
from service_bench import (
    LIFELONG,
    REPO,
    RESULTS,
    Broker,
    Service,
    cpu_seconds,
    free_port,
    hyperplane,
    loadavg,
    machine_info,
    produce_json,
    write_json,
)

GHZ = REPO / ".cache" / "bin" / "ghz"
GHZ_VERSION = "v0.120.0"
LEARNING_PHASES = (  # result key, extra `lifelong serve` flags
    ("unary_learning", ()),
    ("unary_learning_switch_5ms", ("--switch-interval-ms", "5")),
)


class Replica(Service):
    """`lifelong serve-predictions` of `snapshot_file` as a subprocess on free ports (`Service`'s
    metrics, readiness and shutdown)."""

    def __init__(self, snapshot_file: Path) -> None:
        self.grpc_port, self.metrics_port = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix="lifelong-bench-replica-")
        self.log = open(Path(self.dir) / "replica.log", "w")  # noqa: SIM115
        cmd = [LIFELONG, "serve-predictions", "--snapshot-file", str(snapshot_file)]
        cmd += ["--grpc-address", f"127.0.0.1:{self.grpc_port}"]
        cmd += ["--metrics-port", str(self.metrics_port), "--log-level", "WARNING"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.target = f"127.0.0.1:{self.grpc_port}"

    def wait_snapshot(self, row: list[float], timeout: float = 60.0) -> None:
        """Until it answers Predict (it has read a snapshot with something learned)."""
        request = pb.PredictRequest(features=pb.Features(dense=row))
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            stub = pb_grpc.PredictionServiceStub(channel)
            while True:
                try:
                    stub.Predict(request, timeout=5)
                    return
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(self.log_text()) from None
                    time.sleep(0.1)


def rows_request(X: np.ndarray, cls=pb.PredictBatchRequest, *, matrix: bool = False, **kw):
    """The rows of `X` as one `Matrix`, or as one dense `Features` per row."""
    if matrix:
        return cls(matrix=pb.Matrix(columns=X.shape[1], values=X.ravel().tolist()), **kw)
    return cls(examples=[pb.Features(dense=row) for row in X.tolist()], **kw)


def answered(response) -> int:
    """Rows answered, in either form."""
    dense = response.matrix_predictions
    if dense.classes:
        return len(dense.probabilities) // len(dense.classes)
    return len(response.predictions) or len(dense.values)


def run_threads(threads: int, seconds: float, work: Callable[[float], int], pid: int) -> dict:
    """`work(stop)` on `threads` threads at once, each answering rows until `perf_counter()`
    reaches `stop` and returning how many; rows/s over the wall time, and the CPU time per row
    of this (client) process and of the service (`pid`), the steadier figures on a shared
    machine."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def run(k: int) -> None:
        counts[k] = work(stop)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    start, client, service = time.perf_counter(), time.process_time(), cpu_seconds(pid)
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall, rows = time.perf_counter() - start, sum(counts)
    return {
        "client_threads": threads,
        "rows": rows,
        "seconds": wall,
        "rows_per_s": rows / wall,
        "client_cpu_us_per_row": (time.process_time() - client) / rows * 1e6,
        "service_cpu_us_per_row": (cpu_seconds(pid) - service) / rows * 1e6,
    }


def batch_throughput(
    target: str, X: np.ndarray, size: int, threads: int, seconds: float, pid: int, matrix: bool
) -> dict:
    request = rows_request(X[:size], matrix=matrix)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)
        assert answered(stub.PredictBatch(request, timeout=10)) == size  # warm

        def work(stop: float) -> int:
            rows = 0
            while time.perf_counter() < stop:
                rows += answered(stub.PredictBatch(request, timeout=10))
            return rows

        result = run_threads(threads, seconds, work, pid)
    form = "matrix" if matrix else "examples"
    return {"rpc": "PredictBatch", "form": form, "rows_per_call": size, **result}


def stream_throughput(
    target: str, X: np.ndarray, size: int, threads: int, seconds: float, pid: int, matrix: bool
) -> dict:
    request = rows_request(X[:size], pb.PredictStreamRequest, matrix=matrix, request_id=1)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)

        def work(stop: float) -> int:
            def requests():
                while time.perf_counter() < stop:
                    yield request

            return sum(map(answered, stub.PredictStream(requests(), timeout=seconds + 30)))

        result = run_threads(threads, seconds, work, pid)
    form = "matrix" if matrix else "examples"
    return {"rpc": "PredictStream", "form": form, "rows_per_call": size, **result}


def throughput(service: Service, X: np.ndarray, seconds: float) -> list[dict]:
    """Every batch and stream case, each form right after the other (interleaved, so a busy
    machine slows both alike)."""
    cases = [(batch_throughput, size, threads) for size in (256, 1024) for threads in (1, 2)]
    cases += [(stream_throughput, 1024, threads) for threads in (1, 2)]
    results = []
    for measure, size, threads in cases:
        for matrix in (False, True):
            r = measure(service.target, X, size, threads, seconds, service.proc.pid, matrix)
            r["load_1min"] = loadavg()[0]
            print(r, flush=True)
            results.append(r)
    return results


def ghz(target: str, row: list[float], rps: int, duration: str, concurrency: int) -> dict:
    data = json.dumps({"features": {"dense": row}})
    out = subprocess.run(
        [
            str(GHZ),
            "--insecure",
            "--proto",
            str(REPO / "protos/lifelong/v1/lifelong.proto"),
            "--import-paths",
            str(REPO / "protos"),
            "--call",
            "lifelong.v1.PredictionService/Predict",
            "-d",
            data,
            "--rps",
            str(rps),
            "--duration",
            duration,
            "--concurrency",
            str(concurrency),
            "--connections",  # two, unless fewer workers: ghz refuses more connections
            str(min(2, concurrency)),
            "--format",
            "json",
            target,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    report.pop("details", None)
    return report


def unary(
    service: Service, row: list[float], args: argparse.Namespace, replica: Replica | None = None
) -> dict:
    """ghz against `service` (or its `replica`): latencies as ghz sees them and as the answering
    server's histogram does, the learning during the run, and the CPU seconds of the answering
    server, of ghz (both on this machine's cores) and, with a replica, of the learner."""
    server = replica or service
    before, learned0, t0 = server.metrics(), service.learned(), time.perf_counter()
    cpu0, learner0 = cpu_seconds(server.proc.pid), cpu_seconds(service.proc.pid)
    ghz0 = children_cpu_seconds()
    report = ghz(server.target, row, args.rps, args.duration, args.concurrency)
    ghz_cpu = children_cpu_seconds() - ghz0
    server_cpu = cpu_seconds(server.proc.pid) - cpu0
    learner_cpu = cpu_seconds(service.proc.pid) - learner0
    after, learned1, t1 = server.metrics(), service.learned(), time.perf_counter()
    calls = max(report["count"], 1)
    result = {
        "client": percentiles(report),
        "server": server_latency(before, after),
        "service_cpu_seconds": server_cpu,
        "service_cpu_ms_per_call": 1e3 * server_cpu / calls,
        "ghz_cpu_ms_per_call": 1e3 * ghz_cpu / calls,
        "learned_during": learned1 - learned0,
        "learning_rate_during": (learned1 - learned0) / (t1 - t0),
        "learned_at_end": learned1,
        "load_1min": loadavg()[0],
        "ghz_report": report,
    }
    if replica is not None:  # the answering server above is the replica
        result["learner_cpu_seconds"] = learner_cpu
        result["learner_cpu_us_per_sample"] = 1e6 * learner_cpu / max(learned1 - learned0, 1)
    return result


def children_cpu_seconds() -> float:
    """CPU seconds of this process's finished children (ghz, once it has run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentiles(report: dict) -> dict:
    dist = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    return {
        "p50_ms": dist.get(50),
        "p90_ms": dist.get(90),
        "p99_ms": dist.get(99),
        "average_ms": report["average"] / 1e6,
        "rps": report["rps"],
        "count": report["count"],
        "errors": {k: v for k, v in report["statusCodeDistribution"].items() if k != "OK"},
    }


def server_latency(before: dict, after: dict, rpc: str = "predict") -> dict:
    """Server-side time per call from the lifelong_predict_latency_seconds histogram's deltas."""
    prefix = 'lifelong_predict_latency_seconds_bucket{le="'
    buckets = []
    for key, value in after.items():
        if key.startswith(prefix) and f'rpc="{rpc}"' in key:
            le = key.split('le="')[1].split('"')[0]
            buckets.append((float(le), value - before.get(key, 0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    out = {"calls": total}
    for q in (0.5, 0.9, 0.99):
        out[f"le_bucket_p{int(q * 100)}_s"] = next(
            (le for le, c in buckets if c >= q * total), None
        )
    return out


def learning_service(broker: Broker, topic: str, *flags: str) -> Service:
    """`lifelong serve` learning `topic` from the start, in a consumer group of its own."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    return Service(
        "--kafka-bootstrap",
        broker.bootstrap,
        "--kafka-topic",
        topic,
        "--kafka-group",
        group,
        *flags,
    )


def record_learning(result: dict, name: str, learning: dict, load: int) -> None:
    """Store and print a learning phase's numbers; warn if the topic ran out during the run."""
    learning["still_learning_at_end"] = learning["learned_at_end"] < load
    result[name] = learning
    print(
        name,
        learning["client"],
        learning["server"],
        learning["learning_rate_during"],
        learning["still_learning_at_end"],
        flush=True,
    )
    if not learning["still_learning_at_end"]:
        print(
            f"warning: all {load} samples were learned before ghz ended: part of the run had "
            "nothing learning; raise --load",
            file=sys.stderr,
            flush=True,
        )


def wait_learned(service: Service, n: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while service.learned() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(service.log_text())
        time.sleep(0.2)


def throughput_only(args: argparse.Namespace) -> None:
    result: dict = {"load_average_at_start": loadavg(), "args": vars(args)}
    X, y = hyperplane(args.warm)
    with Service() as service:
        service.wait_ready()
        samples = (
            pb.LearnStreamRequest(
                sample=pb.Sample(features=pb.Features(dense=row), label=pb.Label(integer=label))
            )
            for row, label in zip(X.tolist(), y.tolist(), strict=True)
        )
        with grpc.insecure_channel(service.target) as channel:
            pb_grpc.LearningServiceStub(channel).LearnStream(samples, timeout=300)
        result["throughput"] = [
            {"repeat": k, **r}
            for k in range(args.repeats)
            for r in throughput(service, X, args.seconds)
        ]
    result.update(load_average_at_end=loadavg(), machine=machine_info())
    write_json("predict_throughput.json", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start one)")
    parser.add_argument("--warm", type=int, default=2000)
    # At ~35k samples/s learning beside 2k req/s (quiet machine), 800k ran out before a 20 s run
    # ended; the phases warn if the topic does not outlast the run.
    parser.add_argument("--load", type=int, default=2_000_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rps", type=int, default=2000)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="PredictBatch/PredictStream only, no broker: the service learns the --warm rows over "
        "LearnStream; writes results/predict_throughput.json",
    )
    parser.add_argument("--repeats", type=int, default=1, help="with --throughput-only: rounds")
    parser.add_argument(
        "--unary-only",
        action="store_true",
        help="the ghz phases only (idle, learning); writes results/predict_unary.json",
    )
    args = parser.parse_args()
    if args.throughput_only:
        throughput_only(args)
        return
    if not GHZ.exists():
        raise SystemExit(
            f"build ghz first: GOBIN={GHZ.parent} go install "
            f"github.com/bojand/ghz/cmd/ghz@{GHZ_VERSION}"
        )

    result: dict = {"load_average_at_start": loadavg(), "ghz": GHZ_VERSION, "args": vars(args)}
    X, y = hyperplane(args.load)
    row = X[-1].tolist()
    with Broker(args.bootstrap) as broker:
        warm, load = f"bench.warm.{uuid.uuid4().hex[:8]}", f"bench.load.{uuid.uuid4().hex[:8]}"
        produce_json(broker.bootstrap, warm, X[: args.warm], y[: args.warm])
        produce_json(broker.bootstrap, load, X, y)
        print("produced", flush=True)

        # Phase idle: learned the small topic, then predictions only.
        with Service(
            "--kafka-bootstrap",
            broker.bootstrap,
            "--kafka-topic",
            warm,
            "--kafka-group",
            f"bench-{uuid.uuid4().hex[:8]}",
        ) as service:
            service.wait_ready()
            wait_learned(service, args.warm)
            if not args.unary_only:
                result["throughput"] = throughput(service, X, args.seconds)
            result["unary_idle"] = idle = unary(service, row, args)
            print("idle", idle["client"], idle["server"], flush=True)

        # Phase learning: the service learns the large topic at full rate during the ghz run; with
        # the default GIL switch interval and with Python's own (5 ms), each a fresh service.
        for name, flags in LEARNING_PHASES:
            with learning_service(broker, load, *flags) as service:
                service.wait_ready()
                wait_learned(service, 1)
                time.sleep(1.0)
                learning = unary(service, row, args)
            record_learning(result, name, learning, args.load)

        # Phase replica: as above, ghz calling a replica process serving the learner's snapshot.
        shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # a tmpfs, as deployed
        snapshots = Path(tempfile.mkdtemp(prefix="lifelong-bench-snapshot-", dir=shm))
        try:
            with (
                learning_service(
                    broker, load, "--snapshot-file", str(snapshots / "snapshot.safetensors")
                ) as service,
                Replica(snapshots / "snapshot.safetensors") as replica,
            ):
                service.wait_ready()
                replica.wait_ready()
                wait_learned(service, 1)
                replica.wait_snapshot(row)
                time.sleep(1.0)
                learning = unary(service, row, args, replica)
        finally:
            shutil.rmtree(snapshots, ignore_errors=True)
        record_learning(result, "unary_replica", learning, args.load)

    result.update(load_average_at_end=loadavg(), machine=machine_info())
    if args.unary_only:
        write_json("predict_unary.json", result)
        return
    write_json("predict.json", result)
    plot(result, RESULTS / "predict_latency.png")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, style in (
        ("unary_idle", "-"),
        ("unary_learning", "--"),
        ("unary_learning_switch_5ms", ":"),
        ("unary_replica", "-."),
    ):
        dist = result[name]["ghz_report"].get("latencyDistribution") or []
        a.plot(
            [d["percentage"] for d in dist],
            [d["latency"] / 1e6 for d in dist],
            style,
            marker="o",
            label=name.replace("unary_", ""),
        )
    a.set_xlabel("percentile")
    a.set_ylabel("Predict latency, ms (ghz, client side)")
    a.set_yscale("log")
    a.axhline(5, color="grey", lw=0.8)
    a.legend()
    a.set_title(f"unary Predict at {result['args']['rps']} req/s")
    labels = [
        f"{r['rpc'].replace('Predict', '')} {r['rows_per_call']}\n"
        f"{r['form']}\n{r['client_threads']} thr"
        for r in result["throughput"]
    ]
    b.bar(range(len(labels)), [r["rows_per_s"] / 1e3 for r in result["throughput"]])
    b.set_xticks(range(len(labels)), labels, fontsize=6)
    b.axhline(200, color="grey", lw=0.8)
    b.set_ylabel("rows/s (thousands)")
    b.set_title("batch / stream prediction throughput (no learning)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
