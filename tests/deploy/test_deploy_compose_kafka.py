"""compose.secure.yaml's Kafka broker, run: its environment rendered into server.properties as the
apache/kafka image renders it (`KAFKA_FOO_BAR` -> `foo.bar`), on Kafka 3.9.1's own jars (the
image's version, from kafka-dev.sh's cache), with certificates and a password made here.

No Docker: the addresses and the secrets directory are moved to this machine, nothing else. Then
the broker's healthcheck command logs in, `lifelong produce` writes with the producer's
environment, and a consumer with the learner's settings reads the records back, all over the
INTERNAL (SASL_SSL) listener; a wrong password is refused.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy.test_deploy_compose import clean_env
from deploy_support import COMPOSE_FILE, binary, run
from lifelong.config import load_settings
from lifelong.ingest.security import librdkafka_security
from testsupport import CertificateAuthority, free_port, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

JAVA = ["java", "-Xmx384m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
# Variables the image keeps for the JVM, not server.properties (its kafka-propertiesSpec.json).
NOT_PROPERTIES = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS", "KAFKA_LOG4J_OPTS"}


def property_name(variable: str) -> str:
    """The image's rule: KAFKA_ dropped, `___` -> `-`, `__` -> `_`, `_` -> `.`, lower case."""
    name = variable.removeprefix("KAFKA_").lower()
    return (
        name.replace("___", "\0").replace("__", "\1").replace("_", ".").translate({0: "-", 1: "_"})
    )


def services() -> dict:
    secure = COMPOSE_FILE.parent / "compose.secure.yaml"
    compose = str(binary("docker-compose"))
    result = run(
        compose, "-f", COMPOSE_FILE, "-f", secure, "config", "--format", "json", env=clean_env()
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.replace("$$", "$"))["services"]  # $$: Compose's escape


class Here:
    """The stack's names on this machine: hosts, ports and secret directories."""

    def __init__(self, tmp: Path) -> None:
        self.ports = {port: str(free_port()) for port in ("19092", "9092", "29093")}
        self.broker_secrets = tmp / "kafka-secrets"
        self.service_secrets = tmp / "secrets"
        self.data = tmp / "data"

    def __call__(self, value: str) -> str:
        value = value.replace("/etc/kafka/secrets", str(self.broker_secrets))
        value = value.replace("/run/secrets/lifelong", str(self.service_secrets))
        value = value.replace("/var/lib/kafka/data", str(self.data))
        # kafka:19092 -> localhost:P (the certificate names localhost); bare ":19092" too.
        ports = r"(kafka|localhost)?:(19092|9092|29093)\b"
        return re.sub(ports, lambda m: "localhost:" + self.ports[m.group(2)], value)


@pytest.fixture(scope="module")
def broker(kafka_dev, tmp_path_factory) -> Iterator[tuple[dict, Here, Path]]:
    tmp = tmp_path_factory.mktemp("compose-kafka")
    here = Here(tmp)
    stack = services()
    ca = CertificateAuthority(tmp, "compose-ca")
    cert, key = ca.issue("kafka")
    password = "compose-password"
    ca_pem = ca.cert_file.read_text()
    for directory, files in {
        here.broker_secrets: {
            "broker.crt": cert.read_text(),
            "broker.key": key.read_text(),
            "ca.crt": ca_pem,
            "lifelong-password": password,  # Kafka reads the file whole: no newline
        },
        here.service_secrets: {"kafka-ca.crt": ca_pem, "kafka-password": password},
    }.items():
        directory.mkdir()
        for name, text in files.items():
            (directory / name).write_text(text)
    env = stack["kafka"]["environment"]
    properties = [
        f"{property_name(k)}={here(v)}"
        for k, v in sorted(env.items())
        if k.startswith("KAFKA_") and k not in NOT_PROPERTIES
    ]
    config = tmp / "server.properties"
    config.write_text("\n".join(properties) + "\n")
    fetched = kafka_dev("fetch")
    assert fetched.returncode == 0, fetched.stderr
    classpath = fetched.stdout.strip().splitlines()[-1] + "/*"
    formatted = subprocess.run(
        [*JAVA, "-cp", classpath, "kafka.tools.StorageTool", "format",
         "-t", env["CLUSTER_ID"], "-c", str(config)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    log = tmp / "kafka.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*JAVA, "-cp", classpath, "kafka.Kafka", str(config)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield stack, here, Path(classpath.removesuffix("/*"))
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def healthcheck(stack: dict, here: Here, libs: Path, client: Path) -> subprocess.CompletedProcess:
    """The broker's healthcheck command, its script replaced by the class it runs."""
    test = stack["kafka"]["healthcheck"]["test"]
    assert test[1] == "/opt/kafka/bin/kafka-broker-api-versions.sh"
    args = [here(a) for a in test[2:]]
    args[args.index("/etc/kafka/client.properties")] = str(client)
    return subprocess.run(
        [*JAVA, "-cp", f"{libs}/*", "kafka.admin.BrokerApiVersionsCommand", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_secure_broker_runs_and_its_clients_log_in(broker, tmp_path):
    stack, here, libs = broker
    mounted = Path(
        next(v["source"] for v in stack["kafka"]["volumes"] if v["target"].endswith(".properties"))
    )
    client = tmp_path / "client.properties"
    client.write_text(here(mounted.read_text()))
    wait_for(
        lambda: healthcheck(stack, here, libs, client).returncode == 0,
        "the broker's healthcheck to pass",
    )

    producer = stack["producer"]["environment"]
    environ = {**os.environ, **{k: here(v) for k, v in producer.items()}}
    bootstrap = here(stack["lifelong"]["environment"]["LIFELONG_KAFKA_BOOTSTRAP"])
    argv = [sys.executable, "-m", "lifelong", "produce", "--bootstrap", bootstrap]
    argv += ["--topic", "compose-secure", "--stream", "sine", "--count", "50"]
    produced = subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=120)
    assert produced.returncode == 0, produced.stderr

    from confluent_kafka import Consumer

    learner = {k: here(v) for k, v in stack["lifelong"]["environment"].items()}
    settings = load_settings(environ=learner)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compose-secure-test",
            "auto.offset.reset": "earliest",
            **librdkafka_security(settings),
        }
    )
    read: list = []
    try:
        consumer.subscribe(["compose-secure"])
        wait_for(
            lambda: (
                read.extend(m for m in consumer.consume(50, 0.5) if not m.error())
                or len(read) >= 50
            ),
            "the 50 records",
        )
    finally:
        consumer.close()
    assert len(read) == 50

    client.write_text(client.read_text().replace("lifelong-password", "nope"))
    (here.broker_secrets / "nope").write_text("wrong")
    refused = healthcheck(stack, here, libs, client)
    assert refused.returncode != 0
    assert "Authentication failed" in refused.stdout + refused.stderr
