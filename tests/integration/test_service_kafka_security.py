"""`lifelong serve` on a broker whose only client listener is SASL_SSL (kafka-dev.sh --sasl-ssl).

Nothing is mocked: a real broker with a CA, a broker certificate and SCRAM and PLAIN users made at
its start (tests/conftest.py, `kafka_secure_broker`), the service a real subprocess. Three
mechanisms meet the same user: the service's consumer and dead-letter producer use
SCRAM-SHA-512, `lifelong produce` PLAIN, the tests' own kafka-python SCRAM-SHA-256.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from services import Service
from testsupport import CertificateAuthority, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

START_FAILURE_SECONDS = 30.0  # a start that fails must fail by then: seconds, not a retry loop


@pytest.fixture
def secure(kafka_secure_broker):
    return kafka_secure_broker


@pytest.fixture
def topic(secure, request) -> str:
    """A fresh one-partition topic on the SASL_SSL broker, made over SASL_SSL."""
    name = "test-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:80]
    admin = KafkaAdminClient(client_id="lifelong-tests-admin", **secure.kafka_python())
    try:
        admin.create_topics(
            {name: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True
        )
        yield name
    finally:
        admin.close()


def flags(secure, password_file: Path, **overrides: object) -> dict[str, object]:
    """The service's Kafka security settings, as flags: the password from a file, as a mounted
    Secret gives it."""
    return {
        "kafka_security_protocol": "sasl_ssl",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": secure.username,
        "kafka_sasl_password_file": password_file,
        "kafka_tls_ca_file": secure.ca_file,
        **overrides,
    }


def test_learns_over_sasl_ssl_and_dead_letters_there(secure, topic, tmp_path):
    # `lifelong produce`, its password from the environment; LIFELONG_KAFKA_BOOTSTRAP without a
    # checkpoint directory would not do for the service, and the tool leaves it to --bootstrap.
    environ = {
        **os.environ,
        "LIFELONG_KAFKA_BOOTSTRAP": "elsewhere:9092",
        "LIFELONG_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "LIFELONG_KAFKA_SASL_MECHANISM": "PLAIN",
        "LIFELONG_KAFKA_SASL_USERNAME": secure.username,
        "LIFELONG_KAFKA_SASL_PASSWORD": secure.password,
        "LIFELONG_KAFKA_TLS_CA_FILE": str(secure.ca_file),
    }
    argv = [sys.executable, "-m", "lifelong", "produce", "--bootstrap", secure.bootstrap]
    argv += ["--topic", topic, "--stream", "sine", "--count", "200", "--seed", "1"]
    tool = subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=120)
    assert tool.returncode == 0, tool.stderr
    assert f"produced 200 samples to {topic}" in tool.stdout
    producer = KafkaProducer(**secure.kafka_python())
    producer.send(topic, key=b"bad", value=b'{"features": {"x0": ')  # offset 200
    producer.flush()
    producer.close()

    svc = Service(tmp_path, secure.bootstrap, topic, **flags(secure, secure.password_file))
    try:
        svc.start()
        svc.wait_learned(200)
        consumer = KafkaConsumer(enable_auto_commit=False, **secure.kafka_python())
        tp = TopicPartition(f"{topic}.dlq", 0)
        records: list = []
        try:
            wait_for(lambda: consumer.partitions_for_topic(tp.topic), "the dead-letter topic")
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            wait_for(
                lambda: records.extend(consumer.poll(timeout_ms=200).get(tp, [])) or records,
                "the dead letter",
            )
        finally:
            consumer.close()
        (dead,) = records
        headers = dict(dead.headers)
        assert (dead.key, headers["lifelong-error-reason"]) == (b"bad", b"undecodable")
        assert headers["lifelong-source-offset"] == b"200"
        assert svc.stop() == 0
    finally:
        svc.close()
    assert secure.password not in svc.log.read_text()


def exit_of_a_failed_start(svc: Service) -> tuple[int, float, str]:
    """(exit status, seconds from start to exit, log) of a service meant to fail at start."""
    started = time.monotonic()
    svc.start()
    try:
        status = svc.process.wait(timeout=START_FAILURE_SECONDS)
    finally:
        svc.close()
    return status, time.monotonic() - started, svc.log.read_text()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_a_wrong_password_stops_the_service_at_start_saying_so(secure, topic, tmp_path, mechanism):
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password\n")
    svc = Service(
        tmp_path, secure.bootstrap, topic, **flags(secure, wrong, kafka_sasl_mechanism=mechanism)
    )
    status, seconds, log = exit_of_a_failed_start(svc)
    assert status != 0, log
    assert "SASL authentication error: Authentication failed" in log, log
    assert "check the Kafka security settings" in log
    assert "not-the-password" not in log
    print(f"{mechanism}: exited {status} after {seconds:.1f}s")


def test_a_broker_certificate_from_another_ca_stops_the_service_at_start(secure, topic, tmp_path):
    other = CertificateAuthority(tmp_path, "other-ca")
    svc = Service(
        tmp_path,
        secure.bootstrap,
        topic,
        **flags(secure, secure.password_file, kafka_tls_ca_file=other.cert_file),
    )
    status, seconds, log = exit_of_a_failed_start(svc)
    assert status != 0, log
    assert "SSL handshake failed" in log and "certificate verify failed" in log, log
    print(f"exited {status} after {seconds:.1f}s")
