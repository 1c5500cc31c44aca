"""`lifelong serve` and `lifelong serve-predictions` as real subprocesses, asked over gRPC and
scraped over HTTP, for the tests on the real broker (fixture: `service`, tests/integration)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from lifelong.client import LifelongClient, LifelongError
from prometheus_client.parser import text_string_to_metric_families
from testsupport import free_port, wait_for

LEARNER = {"hidden": [32], "seed": 7}
DEADLINE = 120.0  # seconds before a wait gives up: a hang, not a slow machine
TESTS = Path(__file__).resolve().parent


class Service:
    """`lifelong <command>` subprocesses sharing one configuration and checkpoint directory.
    `tests/` is on their Python path, so a test learner (`model = "recording:..."`) loads."""

    def __init__(
        self,
        tmp_path: Path,
        bootstrap: str,
        topic: str,
        *,
        command: str = "serve",
        name: str = "serve",
        **settings: object,
    ) -> None:
        self.command = command
        self.checkpoint_dir = tmp_path / "checkpoints"
        self.log = tmp_path / f"{name}.log"
        self.grpc = f"127.0.0.1:{free_port()}"
        self.metrics_port = free_port()
        self.settings = {
            "kafka_bootstrap": bootstrap,
            "kafka_topic": topic,
            "kafka_group": f"{topic}-service",
            "grpc_address": self.grpc,
            "metrics_port": self.metrics_port,
            **settings,
        }
        if command == "serve":
            self.settings.setdefault("checkpoint_dir", self.checkpoint_dir)
            self.settings.setdefault("learner", json.dumps(LEARNER))
        self.process: subprocess.Popen | None = None
        self.client = LifelongClient(self.grpc, timeout=5.0)

    def start(self, **overrides: object) -> None:
        flags = []
        for name, value in {**self.settings, **overrides}.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):  # --flag / --no-flag
                flags.append(flag if value else "--no-" + flag[2:])
            elif value is not None:
                flags += [flag, str(value)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get(
            "PYTHONPATH", "")])}  # fmt: skip
        # A fresh channel: the last one's reconnection backoff (after a kill, up to minutes)
        # would hide the new process.
        self.client.close()
        self.client = LifelongClient(self.grpc, timeout=5.0)
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lifelong", self.command, *flags],
                stdout=log,
                stderr=log,
                env=env,
            )

    def samples_learned(self) -> int | None:
        """Samples the model has learned, or None while the server is not answering."""
        assert self.process.poll() is None, f"lifelong serve exited; see {self.log}"
        try:
            return self.client.model_info().samples_learned
        except LifelongError:
            return None

    def wait_learned(self, n: int) -> None:
        wait_for(lambda: (self.samples_learned() or 0) >= n, f"{n} samples learned")
        assert self.samples_learned() == n

    def wait_served(self, n: int) -> None:
        """Until predictions come from a snapshot that learned `n` samples."""
        wait_for(lambda: self.client.model_info().model_version == n, f"model version {n}")

    def metrics(self) -> dict[tuple[str, tuple], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
            text = response.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def metric(self, name: str, **labels: str) -> float | None:
        """One series' value, or None if it is not exported (yet)."""
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=DEADLINE)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
        self.client.close()
