"""Settings: precedence, parsing, validation, and the generated configuration docs."""

import os
import sys
from pathlib import Path

import pytest
from lifelong import config
from lifelong.cli import main
from lifelong.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_valid_and_documented():
    settings = Settings()
    assert settings.task == "classification"
    assert settings.kafka_bootstrap is None
    assert settings.dead_letter == "lifelong.samples.dlq"
    for field in config.FIELDS.values():
        assert field.metadata["help"], field.name


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path):
    file = tmp_path / "lifelong.toml"
    file.write_text('grpc_workers = 2\nmax_features = 20\nkafka_topic = "from-file"\n')
    environ = {"LIFELONG_GRPC_WORKERS": "3", "LIFELONG_MAX_FEATURES": "30"}
    settings = load_settings(flags={"grpc_workers": "4"}, environ=environ, config_file=file)
    assert settings.grpc_workers == 4  # flag
    assert settings.max_features == 30  # environment
    assert settings.kafka_topic == "from-file"  # file
    assert settings.kafka_group == "lifelong"  # default


def test_config_file_from_the_environment(tmp_path):
    file = tmp_path / "lifelong.toml"
    file.write_text('task = "regression"\n[learner]\nhidden = [8]\n')
    settings = load_settings(environ={"LIFELONG_CONFIG": str(file)})
    assert settings.task == "regression"
    assert settings.learner == {"hidden": [8]}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LIFELONG_TASK": "ranking"}, "task: 'ranking' is not one of classification, regression"),
        ({"LIFELONG_GRPC_WORKERS": "many"}, "grpc_workers: cannot read 'many'"),
        ({"LIFELONG_GRPC_WORKERS": "0"}, "grpc_workers: 0 is below the minimum 1"),
        ({"LIFELONG_SWITCH_INTERVAL_MS": "0"}, "switch_interval_ms: 0.0 is below the minimum"),
        ({"LIFELONG_REFRESH_EVERY_SECONDS": "nan"}, "refresh_every_seconds"),
        ({"LIFELONG_DEMO": "perhaps"}, "demo: cannot read 'perhaps'"),
        ({"LIFELONG_LEARNER": "[64]"}, "learner: cannot read '[64]': expected a JSON object"),
        ({"LIFELONG_VALUE_FORMAT": "avro"}, "value_format: 'avro' is not one of json, protobuf"),
        ({"LIFELONG_KAFKA_BOOTSTRAP": "localhost:9092"}, "checkpoint_dir is not"),
        ({"LIFELONG_DEMO": "true", "LIFELONG_TASK": "regression"}, "demo stream"),
        ({"LIFELONG_KAFKA_SECURITY_PROTOCOL": "sasl"}, "not one of plaintext, ssl, sasl_plaintext"),
        (
            {"LIFELONG_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "LIFELONG_KAFKA_SASL_USERNAME": "u"},
            "sasl_ssl needs kafka_sasl_mechanism, kafka_sasl_password or kafka_sasl_password_file",
        ),
        ({"LIFELONG_KAFKA_SASL_MECHANISM": "GSSAPI"}, "not one of PLAIN, SCRAM-SHA-256"),
        ({"LIFELONG_KAFKA_SASL_USERNAME": "u"}, "kafka_sasl_* settings are used with"),
        ({"LIFELONG_KAFKA_TLS_CA_FILE": "ca.pem"}, "kafka_tls_* settings are used with"),
        (
            {"LIFELONG_KAFKA_SECURITY_PROTOCOL": "ssl", "LIFELONG_KAFKA_TLS_CERT_FILE": "c.pem"},
            "kafka_tls_cert_file and kafka_tls_key_file go together",
        ),
    ],
)
def test_bad_settings_say_what_is_wrong(environ, message):
    with pytest.raises(ConfigError) as error:
        load_settings(environ=environ)
    assert message in str(error.value)


def test_bad_config_file(tmp_path):
    file = tmp_path / "lifelong.toml"
    file.write_text("grpc_wokers = 2\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*grpc_wokers"):
        load_settings(environ={}, config_file=file)
    file.write_text('grpc_workers = "two"\n')
    with pytest.raises(ConfigError, match="grpc_workers: expected int"):
        load_settings(environ={}, config_file=file)
    with pytest.raises(ConfigError, match="config file"):
        load_settings(environ={}, config_file=tmp_path / "missing.toml")


def test_printed_settings_read_back(tmp_path, capsys, monkeypatch):
    for name in config.FIELDS:
        monkeypatch.delenv("LIFELONG_" + name.upper(), raising=False)
    monkeypatch.delenv("LIFELONG_CONFIG", raising=False)
    argv = ["config", "--grpc-workers", "3", "--checkpoint-dir", str(tmp_path), "--demo"]
    argv += ["--learner", '{"hidden": [8, 8]}']
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 0
    file = tmp_path / "printed.toml"
    file.write_text(capsys.readouterr().out)
    settings = load_settings(environ={}, config_file=file)
    assert settings == Settings(
        grpc_workers=3, checkpoint_dir=tmp_path, demo=True, learner={"hidden": [8, 8]}
    )


KAFKA_SECRETS = {
    "LIFELONG_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "LIFELONG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "LIFELONG_KAFKA_SASL_USERNAME": "lifelong",
    "LIFELONG_KAFKA_SASL_PASSWORD": "sasl-secret-1",
    "LIFELONG_KAFKA_TLS_CERT_FILE": "client.pem",
    "LIFELONG_KAFKA_TLS_KEY_FILE": "client.key",
    "LIFELONG_KAFKA_TLS_KEY_PASSWORD": "key-secret-2",
}


def test_kafka_secrets_come_from_the_environment_and_are_never_shown(capsys, monkeypatch):
    settings = load_settings(environ=KAFKA_SECRETS)
    assert settings.kafka_sasl_password == "sasl-secret-1"
    assert settings.kafka_tls_key_password == "key-secret-2"
    assert "secret" not in repr(settings)
    for name in [n for n in os.environ if n.startswith("LIFELONG_")]:
        monkeypatch.delenv(name)  # the shell's own settings would change what `config` prints
    for name, value in KAFKA_SECRETS.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        main(["config"])
    printed = capsys.readouterr().out
    assert "secret" not in printed
    assert "# kafka_sasl_password = (set, not shown)" in printed
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    help = capsys.readouterr().out
    assert "--kafka-sasl-username" in help
    assert "--kafka-sasl-password " not in help and "--kafka-tls-key-password" not in help
    with pytest.raises(SystemExit):  # no flag: `ps` would show a password
        main(["config", "--kafka-sasl-password", "x"])


def test_configuration_docs_are_generated_from_the_settings():
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == config.markdown(), "run: lifelong config --markdown > docs/configuration.md"


def test_the_app_sets_the_switch_interval(monkeypatch):
    from lifelong.app import App

    calls = []
    monkeypatch.setattr(sys, "setswitchinterval", calls.append)
    app = App(Settings(grpc_address="127.0.0.1:0", metrics_port=0, switch_interval_ms=0.25))
    app.grpc.stop(0)
    assert calls == [0.00025]
