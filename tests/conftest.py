"""Shared pytest fixtures for the Lifelong test suite.

Sections (add new ones below, each under its own banner):

* Kafka: a real Apache Kafka broker for integration tests marked ``@pytest.mark.kafka``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from testsupport import free_port

ROOT = Path(__file__).resolve().parents[1]


# =============================================================================
# Kafka
# =============================================================================
# Never a mock: the session fixture starts a real Apache Kafka broker (one KRaft
# node on 127.0.0.1) through deploy/kafka/kafka-dev.sh on a free port, in a
# per-session temporary directory, and stops it at the end of the session. Set
# LIFELONG_KAFKA_BOOTSTRAP=host:port to use an already running broker instead.
#
# Fixtures: kafka_broker (details), kafka_bootstrap ("host:port"),
# kafka_topic (factory of fresh, uniquely named topics), kafka_dev (runs the
# script). The broker and its version are reported in the terminal summary.
# kafka_secure_broker: a second real broker, started by the first test that
# asks for it, whose only client listener is SASL_SSL (kafka-dev.sh --sasl-ssl).

KAFKA_DEV_SCRIPT = ROOT / "deploy" / "kafka" / "kafka-dev.sh"
KAFKA_BOOTSTRAP_ENV = "LIFELONG_KAFKA_BOOTSTRAP"
# Generous: the first run downloads the broker jars with Maven.
KAFKA_DEV_TIMEOUT_S = 600


@dataclass
class KafkaBroker:
    """The broker the session's Kafka tests talk to."""

    bootstrap: str
    version: str
    started_here: bool
    pid: int | None = None
    run_dir: Path | None = None
    log: Path | None = None
    ready_s: float | None = None
    stop_note: str = field(default="")

    def describe(self) -> str:
        if not self.started_here:
            return (
                f"using the existing Kafka broker at {self.bootstrap} "
                f"(${KAFKA_BOOTSTRAP_ENV}), broker version {self.version}"
            )
        text = (
            f"a real Kafka broker started: Apache Kafka {self.version} "
            f"(KRaft, single node) at {self.bootstrap}, pid {self.pid}, "
            f"ready in {self.ready_s:.1f}s; log {self.log}"
        )
        return f"{text}; {self.stop_note}" if self.stop_note else text


_KAFKA_BROKER = pytest.StashKey[KafkaBroker]()


def _run_kafka_dev(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_DEV_SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=KAFKA_DEV_TIMEOUT_S,
        check=False,
    )


def _script_failure(what: str, result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{what} failed (exit {result.returncode})\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def read_broker_info(run_dir: Path) -> dict[str, str]:
    """The key=value facts kafka-dev.sh records in DIR/broker.info."""
    lines = (run_dir / "broker.info").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _probe_broker_version(bootstrap: str) -> str:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="lifelong-tests-probe", bootstrap_timeout_ms=10_000
    )
    try:
        broker_id = admin.describe_cluster()["brokers"][0]["broker_id"]
        return admin.get_broker_version_data(broker_id).broker_version_str
    finally:
        admin.close()


def _start_session_broker(run_dir: Path, *options: str) -> KafkaBroker:
    started = time.monotonic()
    for _attempt in range(3):
        port = free_port()
        # --owner-pid: should this pytest process die without tearing down,
        # the script's watchdog still stops the broker.
        result = _run_kafka_dev(
            "start", "--port", str(port), "--dir", run_dir, "--owner-pid", str(os.getpid()),
            *options,
        )  # fmt: skip
        if result.returncode == 0:
            break
        if "already in use" not in result.stderr:  # only a lost port race is retried
            break
    if result.returncode != 0:
        pytest.fail(_script_failure("starting the Kafka broker with kafka-dev.sh", result))
    info = read_broker_info(run_dir)
    return KafkaBroker(
        bootstrap=info["bootstrap"],
        version=info["kafka_version"],
        started_here=True,
        pid=int(info["pid"]),
        run_dir=run_dir,
        log=Path(info["log"]),
        ready_s=time.monotonic() - started,
    )


@pytest.fixture(scope="session")
def kafka_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """A real Kafka broker for the whole session (started lazily, on first use)."""
    external = os.environ.get(KAFKA_BOOTSTRAP_ENV, "").strip()
    if external:
        try:
            version = _probe_broker_version(external)
        except Exception as exc:
            pytest.fail(f"${KAFKA_BOOTSTRAP_ENV}={external} does not answer: {exc!r}")
        broker = KafkaBroker(bootstrap=external, version=version, started_here=False)
        request.config.stash[_KAFKA_BROKER] = broker
        yield broker
        return

    broker = _start_session_broker(tmp_path_factory.mktemp("kafka"))
    request.config.stash[_KAFKA_BROKER] = broker
    try:
        yield broker
    finally:
        _stop_session_broker(broker)


def _stop_session_broker(broker: KafkaBroker) -> None:
    stopping = time.monotonic()
    result = _run_kafka_dev("stop", "--dir", broker.run_dir)
    if result.returncode != 0:
        broker.stop_note = "STOP FAILED"
        raise RuntimeError(_script_failure("stopping the Kafka broker", result))
    broker.stop_note = f"stopped in {time.monotonic() - stopping:.1f}s"


@dataclass
class SecureKafka:
    """The SASL_SSL broker: its listener, CA and the user kafka-dev.sh made (PLAIN,
    SCRAM-SHA-256 and SCRAM-SHA-512 all take it)."""

    broker: KafkaBroker
    ca_file: Path
    username: str
    password_file: Path

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def kafka_python(self, mechanism: str = "SCRAM-SHA-256") -> dict[str, str]:
        """kafka-python's arguments to reach it (the tests' own client)."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "ssl_cafile": str(self.ca_file),
            "sasl_mechanism": mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


@pytest.fixture(scope="session")
def kafka_secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A real Kafka broker whose client listener speaks SASL_SSL only (started lazily)."""
    broker = _start_session_broker(tmp_path_factory.mktemp("kafka-secure"), "--sasl-ssl")
    info = read_broker_info(broker.run_dir)
    try:
        yield SecureKafka(
            broker, Path(info["ssl_ca_file"]), info["sasl_username"],
            Path(info["sasl_password_file"]),
        )  # fmt: skip
    finally:
        _stop_session_broker(broker)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    """``host:port`` of the session's real Kafka broker."""
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def kafka_dev() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs deploy/kafka/kafka-dev.sh with the given arguments (does not check the exit)."""
    return _run_kafka_dev


@pytest.fixture
def kafka_topic(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """Factory of fresh topics for one test: ``make_topic(partitions=3) -> name``.

    Each topic gets a unique name derived from the test's name, is ready (every
    partition has a leader) when returned, and is deleted after the test.
    """
    from kafka import KafkaAdminClient

    # '-' only: Kafka warns about names mixing '.' and '_' (metric collisions).
    stem = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:80]
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="lifelong-tests-admin")
    created: list[str] = []

    def make_topic(partitions: int = 3, configs: dict[str, str] | None = None) -> str:
        name = f"test-{stem}-{uuid.uuid4().hex[:12]}"
        spec = {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}
        admin.create_topics({name: spec}, wait_for_metadata=True)
        created.append(name)
        return name

    try:
        yield make_topic
        if created:
            admin.delete_topics(created)
    finally:
        admin.close()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    # Kafka: say which real broker the session used. If another section needs
    # this hook too, extend this function rather than defining it twice.
    broker = config.stash.get(_KAFKA_BROKER, None)
    if broker is not None:
        terminalreporter.write_sep("-", "kafka")
        terminalreporter.write_line(broker.describe())
