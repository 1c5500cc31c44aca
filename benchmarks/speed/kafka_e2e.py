"""Kafka -> learned, end to end, against the same learner learning the same rows in process.

    .venv/bin/python benchmarks/speed/kafka_e2e.py            # starts and stops its own broker
    .venv/bin/python benchmarks/speed/kafka_e2e.py --bootstrap 127.0.0.1:9092 --n 300000 --profile

N rows of the 20-feature Hyperplane stream (run.py's) are written to a new one-partition topic as
the JSON records `lifelong produce` writes, before any timing. Then, interleaved, `--repeats` times:

- in process: `LifelongClassifier(LearnerConfig(seed=0))` learns the first row with `learn_one`
  (it names the 20 features, as the service's first record does) and the rest with `learn_many`
  in poll-sized (`--poll`, 500) batches of float64 rows;
- end to end: `lifelong serve --kafka-bootstrap ...` (a new consumer group and an empty
  checkpoint directory: a fresh model from the topic's beginning, default settings otherwise:
  checkpoint every 10k samples, 500 records per poll). /metrics is read every 0.1 s; the rate is
  counted from the first reading with samples learned (start-up, group join and the first fetch
  excluded) to the reading with all N learned.

`--profile` adds one end-to-end run under `py-spy record` (sampling on-CPU stacks, --nonblocking)
and writes the inclusive share per function of the Kafka loop thread's CPU time. py-spy is
optional (`pip install --target .cache/py-spy py-spy`, or on PATH): without it `--profile` is
refused and the service's CPU is reported for all its threads together, not per thread.
Writes results/kafka_e2e.json (every repetition, CPU seconds of the service and of the broker
over the timed window, load averages, machine), results/kafka_e2e.png and
results/kafka_e2e_profile.txt; `--repeats 0 --profile` makes the profile only.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
from service_bench import (
    REPO,
    RESULTS,
    VENV_BIN,
    Broker,
    Service,
    cpu_seconds,
    hyperplane,
    loadavg,
    machine_info,
    produce_json,
    write_json,
)


def find_py_spy() -> str | None:
    """py-spy where the README installs it, in the virtual environment, or on PATH; None if
    nowhere (it is optional)."""
    for path in (REPO / ".cache" / "py-spy" / "bin" / "py-spy", VENV_BIN / "py-spy"):
        if path.exists():
            return str(path)
    return shutil.which("py-spy")


PY_SPY = find_py_spy()
PROFILE_RATE = 200  # py-spy samples per second


def in_process(X: np.ndarray, y: np.ndarray, poll: int) -> dict:
    from lifelong.model import LearnerConfig, LifelongClassifier

    model = LifelongClassifier(LearnerConfig(seed=0))
    labels = y.tolist()
    model.learn_one({f"x{j}": v for j, v in enumerate(X[0].tolist())}, labels[0])
    start = time.perf_counter()
    cpu0 = time.process_time()
    for i in range(1, len(X), poll):
        model.learn_many(X[i : i + poll], labels[i : i + poll])
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    assert model.samples_learned == len(X)
    n = len(X) - 1
    return {
        "samples": n,
        "seconds": seconds,
        "rate": n / seconds,
        "cpu_seconds": cpu,
        "accuracy": model.stats().prequential_score,
    }


def thread_cpu(pid: int) -> dict[int, float]:
    """utime + stime of each thread of a process, by OS thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # ended meanwhile
            out[int(task.name)] = cpu_seconds(f"{pid}/task/{task.name}")
    return out


def thread_roles(pid: int) -> dict[int, str] | None:
    """The service's threads by OS thread id (py-spy dump): the Kafka loop (the app's "kafka"
    thread), other Python threads ("python"); threads Python does not know (librdkafka's, gRPC
    core's) are left out. None without py-spy: the OS does not know Python's thread names."""
    if PY_SPY is None:
        return None
    out = subprocess.run(
        [PY_SPY, "dump", "--pid", str(pid), "--json", "--nonblocking"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {
        t["os_thread_id"]: "loop" if t.get("thread_name") == "kafka" else "python"
        for t in json.loads(out.stdout)
    }


def end_to_end(broker: Broker, topic: str, n: int, poll: int, profile: Path | None) -> dict:
    flags = [
        "--kafka-bootstrap",
        broker.bootstrap,
        "--kafka-topic",
        topic,
        "--kafka-group",
        f"bench-{uuid.uuid4().hex[:8]}",
        "--kafka-poll-max-records",
        str(poll),
    ]
    with Service(*flags) as service:
        service.wait_ready()
        spy = None
        if profile is not None:
            spy = subprocess.Popen(
                [
                    PY_SPY,
                    "record",
                    "--pid",
                    str(service.proc.pid),
                    "--nonblocking",
                    "--threads",
                    "--rate",
                    str(PROFILE_RATE),
                    "--format",
                    "raw",
                    "-o",
                    str(profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        series = []
        first = None
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                learned = service.learned()
            except OSError:  # a scrape refused on a busy machine: read again
                time.sleep(0.1)
                continue
            series.append((t, learned))
            if learned and first is None:
                first = (t, learned, cpu_seconds(service.proc.pid), broker.cpu_seconds())
                threads0 = thread_cpu(service.proc.pid)
            if learned >= n:
                break
            if service.proc.poll() is not None:
                raise RuntimeError(service.log_text())
            time.sleep(0.1)
        else:
            raise TimeoutError(f"learned {learned} of {n}")
        end = (t, learned, cpu_seconds(service.proc.pid), broker.cpu_seconds())
        threads1 = thread_cpu(service.proc.pid)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        metrics = service.metrics()
        roles = thread_roles(service.proc.pid)
    threads: collections.Counter = collections.Counter()
    for tid, cpu in threads1.items():
        role = "all" if roles is None else roles.get(tid, "native")
        threads[role] += cpu - threads0.get(tid, 0.0)
    t0, n0, c0, b0 = first
    if end[1] == n0:  # the timed window is between two readings of /metrics
        raise RuntimeError(f"all {n} records were learned by the first reading: too few to time")
    seconds = end[0] - t0
    return {
        "samples": end[1] - n0,
        "seconds": seconds,
        "rate": (end[1] - n0) / seconds,
        "service_cpu_seconds": end[2] - c0,
        "broker_cpu_seconds": end[3] - b0,
        # the Kafka loop, other Python threads, native ones (librdkafka, gRPC core); without
        # py-spy "all" of them
        "thread_cpu_seconds": dict(threads),
        "accuracy": metrics.get("lifelong_prequential_accuracy_ratio"),
        "rejected": sum(v for k, v in metrics.items() if k.startswith("lifelong_samples_rejected")),
        "series": [(round(t - t0, 3), k) for t, k in series],
    }


def summarise_profile(raw: Path, out: Path) -> str:
    """Inclusive share of on-CPU samples per function in the Kafka loop's thread
    (`KafkaSource.step`: poll, decode, learn, checkpoint)."""
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stacks.append((stack.split(";"), int(count)))
    all_total = sum(c for _, c in stacks)
    lines = [f"py-spy samples (on CPU, {PROFILE_RATE}/s): {all_total} in all threads"]
    for role, entry in (("loop", "KafkaSource.step"),):
        thread = [(f, c) for f, c in stacks if any(entry in x for x in f)]
        # The first poll builds or loads the compiled kernel (start-up, outside the timed window).
        startup = sum(c for f, c in thread if any("FastPath.__init__" in x for x in f))
        thread = [(f, c) for f, c in thread if not any("FastPath.__init__" in x for x in f)]
        total = sum(c for _, c in thread) or 1
        inclusive: collections.Counter = collections.Counter()
        for frames, count in thread:
            for name in {x.split(" (")[0] + " (" + x.split(" (")[-1] for x in frames[1:]}:
                inclusive[name] += count
        lines.append(
            f"\n{role}: {total} samples (stacks through {entry}; {startup} more in the kernel's "
            f"one-time build/load left out); inclusive share of the {role}'s samples:"
        )
        for name, count in inclusive.most_common(30):
            lines.append(f"{100 * count / total:6.1f}%  {name}")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text


def plot(data: dict, path: Path) -> None:
    """Samples learned vs seconds of each end-to-end run, and the in-process rate as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, run in enumerate(data["runs"]):
        series = run["end_to_end"]["series"]
        ax.plot(
            [t for t, _ in series],
            [n / 1e3 for _, n in series],
            color="C0",
            alpha=0.8,
            label="lifelong serve from Kafka" if k == 0 else None,
        )
    rate = data["summary"]["in_process_rate_median"]
    n = data["summary"]["n"]
    ax.plot(
        [0, n / rate], [0, n / 1e3], "k--", label=f"in process, learn_many (median {rate:,.0f}/s)"
    )
    ax.set_xlabel("seconds from the first samples learned")
    ax.set_ylabel("samples learned (thousands)")
    ax.set_title(f"Kafka -> learned, {n:,} JSON records, {len(data['runs'])} runs each")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start one)")
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--poll", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="one more run under py-spy")
    args = parser.parse_args()
    if PY_SPY is None:
        if args.profile:
            parser.error("--profile needs py-spy: pip install --target .cache/py-spy py-spy")
        print("no py-spy: the service's CPU is reported for all threads together", flush=True)

    load_start = loadavg()
    X, y = hyperplane(args.n)
    with Broker(args.bootstrap) as broker:
        topic = f"bench.e2e.{uuid.uuid4().hex[:8]}"
        produce_rate = produce_json(broker.bootstrap, topic, X, y)
        print(f"produced {args.n} records to {topic} at {produce_rate:,.0f}/s", flush=True)
        runs = []
        for r in range(args.repeats):
            a = in_process(X, y, args.poll)
            load = loadavg()[0]
            b = end_to_end(broker, topic, args.n, args.poll, None)
            print(
                f"rep {r}: in-process {a['rate']:,.0f}/s "
                f"({1e6 * a['cpu_seconds'] / a['samples']:.1f} us CPU/sample), Kafka end to end "
                f"{b['rate']:,.0f}/s ({b['rate'] / a['rate']:.0%}); service CPU "
                f"{b['service_cpu_seconds']:.1f} s "
                f"({1e6 * b['service_cpu_seconds'] / b['samples']:.1f} us/sample), broker CPU "
                f"{b['broker_cpu_seconds']:.1f} s over {b['seconds']:.1f} s; load {load:.2f}; "
                "us/sample by thread: "
                + ", ".join(
                    f"{role} {1e6 * cpu / b['samples']:.1f}"
                    for role, cpu in sorted(b["thread_cpu_seconds"].items())
                ),
                flush=True,
            )
            runs.append({"in_process": a, "load_1min": load, "end_to_end": b})
        if args.profile:
            raw = Path("/tmp") / f"lifelong-e2e-{uuid.uuid4().hex[:8]}.txt"
            p = end_to_end(broker, topic, args.n, args.poll, raw)
            print(f"profiled run: {p['rate']:,.0f}/s", flush=True)
            print(summarise_profile(raw, RESULTS / "kafka_e2e_profile.txt"))
            print(f"raw py-spy stacks kept in {raw}", flush=True)
        if not runs:
            return  # --repeats 0 --profile: the profiles only

    summary = {
        "n": args.n,
        "poll": args.poll,
        "produce_rate": produce_rate,
        "in_process_rate_median": statistics.median(r["in_process"]["rate"] for r in runs),
        "in_process_cpu_us_per_sample_median": 1e6
        * statistics.median(
            r["in_process"]["cpu_seconds"] / r["in_process"]["samples"] for r in runs
        ),
    }
    e2e = [r["end_to_end"] for r in runs]
    summary["end_to_end"] = {
        "rate_median": statistics.median(b["rate"] for b in e2e),
        "ratio_median": statistics.median(
            b["rate"] / r["in_process"]["rate"] for b, r in zip(e2e, runs, strict=True)
        ),
        "service_cpu_us_per_sample_median": 1e6
        * statistics.median(b["service_cpu_seconds"] / b["samples"] for b in e2e),
        "broker_cpu_us_per_sample_median": 1e6
        * statistics.median(b["broker_cpu_seconds"] / b["samples"] for b in e2e),
    }
    print(summary)
    data = {
        "summary": summary,
        "runs": runs,
        "load_average_at_start": load_start,
        "load_average_at_end": loadavg(),
        "machine": machine_info(),
    }
    write_json("kafka_e2e.json", data)
    plot(data, RESULTS / "kafka_e2e.png")


if __name__ == "__main__":
    main()
