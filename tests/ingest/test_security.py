"""The Kafka security settings as librdkafka's configuration (`lifelong.ingest.security`); on a
real SASL_SSL broker: tests/integration/test_service_kafka_security.py."""

import pytest
from lifelong.config import ConfigError, Settings
from lifelong.ingest.security import librdkafka_security


def test_a_password_file_and_client_certificates(tmp_path):
    password = tmp_path / "password"
    password.write_text("from a Secret\n")
    settings = Settings(
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="lifelong",
        kafka_sasl_password_file=password,
        kafka_tls_cert_file=tmp_path / "client.pem",
        kafka_tls_key_file=tmp_path / "client.key",
        kafka_tls_key_password="key password",
        kafka_tls_verify_hostname=False,
    )
    assert librdkafka_security(settings) == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "lifelong",
        "sasl.password": "from a Secret",
        "ssl.certificate.location": str(tmp_path / "client.pem"),
        "ssl.key.location": str(tmp_path / "client.key"),
        "ssl.key.password": "key password",
        "ssl.endpoint.identification.algorithm": "none",
    }


def test_sasl_without_tls_has_no_tls_properties():
    settings = Settings(
        kafka_security_protocol="sasl_plaintext",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )
    assert not any(key.startswith("ssl.") for key in librdkafka_security(settings))


def test_an_unreadable_password_file_names_the_setting(tmp_path):
    settings = Settings(
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password_file=tmp_path / "missing",
    )
    with pytest.raises(ConfigError, match=r"kafka_sasl_password_file: .*missing"):
        librdkafka_security(settings)
