"""Kafka security: the `kafka_security_protocol`, `kafka_sasl_*` and `kafka_tls_*` settings as
librdkafka's configuration, for the learn loop's consumer and every producer (docs/security.md).

>>> from lifelong.config import Settings
>>> librdkafka_security(Settings())
{'security.protocol': 'plaintext'}
>>> settings = Settings(
...     kafka_security_protocol="sasl_ssl", kafka_sasl_mechanism="SCRAM-SHA-512",
...     kafka_sasl_username="lifelong", kafka_sasl_password="s3cret", kafka_tls_ca_file="ca.pem")
>>> sorted(librdkafka_security(settings).items())  # doctest: +NORMALIZE_WHITESPACE
[('sasl.mechanism', 'SCRAM-SHA-512'), ('sasl.password', 's3cret'), ('sasl.username', 'lifelong'),
 ('security.protocol', 'sasl_ssl'), ('ssl.ca.location', 'ca.pem'),
 ('ssl.endpoint.identification.algorithm', 'https')]

"""

from __future__ import annotations

from lifelong.config import ConfigError, Settings

__all__ = ["librdkafka_security"]


def librdkafka_security(settings: Settings) -> dict[str, str]:
    """librdkafka's security properties for `settings`; reads `kafka_sasl_password_file`."""
    protocol = settings.kafka_security_protocol
    config = {"security.protocol": protocol}
    if protocol.startswith("sasl_"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = settings.kafka_sasl_password or _read_password(settings)
    if protocol in ("ssl", "sasl_ssl"):
        files = {
            "ssl.ca.location": settings.kafka_tls_ca_file,
            "ssl.certificate.location": settings.kafka_tls_cert_file,
            "ssl.key.location": settings.kafka_tls_key_file,
        }
        config |= {key: str(path) for key, path in files.items() if path is not None}
        if settings.kafka_tls_key_password is not None:
            config["ssl.key.password"] = settings.kafka_tls_key_password
        verify = settings.kafka_tls_verify_hostname
        config["ssl.endpoint.identification.algorithm"] = "https" if verify else "none"
    return config


def _read_password(settings: Settings) -> str:
    path = settings.kafka_sasl_password_file
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"kafka_sasl_password_file: {e}") from None
    return text.removesuffix("\n").removesuffix("\r")  # `echo` and editors end files with one
