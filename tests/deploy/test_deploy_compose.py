"""deploy/compose/compose.yaml, checked by Docker Compose itself (`docker compose config`: the
compose-spec schema, interpolation, normalisation; no engine needed), then its wiring: settings
the service accepts, files that exist, ports and names that agree across the stack."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from deploy_support import COMPOSE_FILE, DEPLOY, ROOT, binary, run
from lifelong.cli import build_parser
from lifelong.config import load_settings
from lifelong.serving.tls import check_listening

SERVICES = {"kafka", "lifelong", "lifelong-predict", "producer", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def compose() -> str:
    return str(binary("docker-compose"))


@pytest.fixture(scope="module")
def project(compose) -> dict:
    result = run(compose, "-f", COMPOSE_FILE, "config", "--format", "json", env=clean_env())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def clean_env() -> dict[str, str]:
    """No COMPOSE_* or stack variables from the caller's shell: the defaults are tested."""
    import os

    overridden = ("LIFELONG_", "KAFKA_", "PRODUCE_", "GRAFANA_", "COMPOSE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(overridden)}


def test_docker_compose_config_validates(compose):
    result = run(compose, "-f", COMPOSE_FILE, "config", "--quiet", env=clean_env())
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_rejects_an_invalid_file(compose, tmp_path):
    """The validation is real: a misspelt key fails the compose-spec schema."""
    bad = tmp_path / "compose.yaml"
    bad.write_text(COMPOSE_FILE.read_text().replace("    depends_on:\n", "    depends_onn:\n", 1))
    result = run(compose, "-f", bad, "config", "--quiet", env=clean_env())
    assert result.returncode != 0
    assert "depends_onn" in result.stderr


def test_the_stack(project):
    services = project["services"]
    assert set(services) == SERVICES
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    build = services["lifelong"]["build"]
    assert build["context"] == str(ROOT) and (ROOT / build["dockerfile"]).is_file()
    assert services["producer"]["image"] == services["lifelong"]["image"]


def test_lifelong_environment_is_valid_settings_for_the_kafka_broker(project):
    services = project["services"]
    env = services["lifelong"]["environment"]
    settings = load_settings(environ=env)  # raises ConfigError on anything wrong
    kafka_env = services["kafka"]["environment"]
    advertised = dict(
        item.split("://", 1) for item in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    assert settings.kafka_bootstrap == advertised[kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    volumes = {v["target"]: v for v in services["lifelong"]["volumes"]}
    assert str(settings.checkpoint_dir) in volumes
    assert volumes[str(settings.checkpoint_dir)]["type"] == "volume"
    published = {p["target"] for p in services["lifelong"]["ports"]}
    assert {settings.metrics_port, int(settings.grpc_address.rsplit(":", 1)[1])} <= published


def test_the_prediction_replica_serves_the_snapshot_file_the_learner_writes(project):
    services = project["services"]
    learner = load_settings(environ=services["lifelong"]["environment"])
    replica_service = services["lifelong-predict"]
    assert build_parser().parse_args(replica_service["command"]).command == "serve-predictions"
    assert replica_service["image"] == services["lifelong"]["image"]
    replica = load_settings(environ=replica_service["environment"])
    assert replica.snapshot_file is not None and replica.snapshot_file == learner.snapshot_file
    for settings in (learner, replica):  # they would refuse to listen otherwise
        check_listening(settings, settings.grpc_address)
    mounts = {
        name: {v["target"]: v["source"] for v in services[name]["volumes"]}
        for name in ("lifelong", "lifelong-predict")
    }
    directory = str(replica.snapshot_file.parent)
    assert mounts["lifelong"][directory] == mounts["lifelong-predict"][directory]  # one volume
    volume = project["volumes"][mounts["lifelong"][directory]]
    assert volume["driver_opts"]["type"] == "tmpfs"
    assert "uid=10001" in volume["driver_opts"]["o"]  # the image's user writes it
    published = {p["target"] for p in replica_service["ports"]}
    assert {replica.metrics_port, int(replica.grpc_address.rsplit(":", 1)[1])} <= published
    host_ports = {name: {p["published"] for p in services[name]["ports"]} for name in mounts}
    assert host_ports["lifelong"].isdisjoint(host_ports["lifelong-predict"])


def test_kafka_listeners_are_consistent(project):
    env = project["services"]["kafka"]["environment"]
    names = lambda key: {item.split("://")[0] for item in env[key].split(",")}  # noqa: E731
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert names("KAFKA_LISTENERS") == set(protocols)
    assert names("KAFKA_ADVERTISED_LISTENERS") | {env["KAFKA_CONTROLLER_LISTENER_NAMES"]} == set(
        protocols
    )
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    # a KRaft cluster id is 16 bytes in URL-safe base64 without padding
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    healthcheck = " ".join(project["services"]["kafka"]["healthcheck"]["test"])
    internal = next(i for i in env["KAFKA_LISTENERS"].split(",") if i.startswith("INTERNAL://"))
    assert internal.rsplit(":", 1)[1] in healthcheck


def producer_invocation(project) -> list[str]:
    """The `lifelong produce` command of the producer's loop, its variables expanded as the
    container's shell would (first round)."""
    service = project["services"]["producer"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    (script,) = service["command"]
    script = script.replace("$$", "$")  # compose escapes $ in its output
    env = {**service["environment"], "round": "1"}
    script = re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], script)
    command = re.search(r"lifelong (produce .*?)\|\|", script).group(1)
    return shlex.split(command)


def test_producer_runs_a_real_produce_command(project):
    """The producer's arguments parse with the real `lifelong` CLI, towards the same broker and
    topic the service learns from, with the drifting stream."""
    argv = producer_invocation(project)
    args = build_parser().parse_args(argv)
    env = project["services"]["lifelong"]["environment"]
    assert args.command == "produce"
    assert args.bootstrap == env["LIFELONG_KAFKA_BOOTSTRAP"]
    assert args.topic == env["LIFELONG_KAFKA_TOPIC"]
    assert args.stream == "drifting" and args.count > 0
    assert project["services"]["producer"]["restart"] == "no"  # one-shot


def bind_mounts(service: dict) -> dict[str, str]:
    return {v["target"]: v["source"] for v in service.get("volumes", []) if v["type"] == "bind"}


def test_prometheus_mounts_and_scrapes_the_service(project):
    service = project["services"]["prometheus"]
    mounts = bind_mounts(service)
    assert mounts["/etc/prometheus/prometheus.yml"] == str(DEPLOY / "prometheus" / "prometheus.yml")
    assert mounts["/etc/prometheus/alerts.yml"] == str(DEPLOY / "prometheus" / "alerts.yml")
    assert all(Path(p).is_file() for p in mounts.values())
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    metrics_port = project["services"]["lifelong"]["environment"]["LIFELONG_METRICS_PORT"]
    assert f'"lifelong:{metrics_port}"' in config
    assert re.search(r"job_name:\s*lifelong\b", config)  # the alerts select job="lifelong"


def test_grafana_provisioning_points_at_the_mounted_dashboards_and_prometheus(project):
    service = project["services"]["grafana"]
    mounts = bind_mounts(service)
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["/etc/grafana/provisioning"] == str(provisioning)
    provider = (provisioning / "dashboards" / "lifelong.yaml").read_text()
    path = re.search(r"^\s*path:\s*(\S+)", provider, re.M).group(1)
    assert mounts[path] == str(DEPLOY / "grafana" / "dashboards")
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (
        home == f"{path}/lifelong.json"
        and (DEPLOY / "grafana" / "dashboards" / "lifelong.json").is_file()
    )
    datasource = (provisioning / "datasources" / "prometheus.yaml").read_text()
    url = re.search(r"^\s*url:\s*(\S+)", datasource, re.M).group(1)
    assert url == "http://prometheus:9090"
    assert "prometheus" in project["services"]
    assert re.search(r"^\s*type:\s*prometheus\s*$", datasource, re.M)


def test_the_secure_override_turns_tls_and_tokens_on(compose):
    """compose.secure.yaml over compose.yaml (docs/security.md): valid for Compose; both gRPC
    services load with TLS and tokens from the mounted secrets directory, plaintext and open
    calls off, and a health-only port for the image's HEALTHCHECK that is not published."""
    secure = COMPOSE_FILE.parent / "compose.secure.yaml"
    result = run(
        compose, "-f", COMPOSE_FILE, "-f", secure, "config", "--format", "json", env=clean_env()
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in ("lifelong", "lifelong-predict"):
        settings = load_settings(environ=services[name]["environment"])
        assert not settings.grpc_insecure and not settings.auth_disabled
        check_listening(settings, settings.grpc_address)
        mounts = {v["target"]: v for v in services[name]["volumes"]}
        for path in (settings.tls_cert_file, settings.tls_key_file, settings.auth_tokens_file):
            mount = mounts[str(path.parent)]
            assert mount["type"] == "bind" and mount["read_only"], name
            assert Path(mount["source"]) == COMPOSE_FILE.parent / "secrets"
        health_port = int(settings.grpc_health_address.rsplit(":", 1)[1])
        assert health_port not in {p["target"] for p in services[name]["ports"]}


def test_the_secure_override_puts_kafka_behind_sasl_ssl(compose):
    """compose.secure.yaml: the broker's listeners speak SASL_SSL, its key and the user's
    password read from its own mounted directory; the learner and the producer authenticate as
    that user with the password and CA from theirs; the healthcheck logs in as they do."""
    secure = COMPOSE_FILE.parent / "compose.secure.yaml"
    result = run(
        compose, "-f", COMPOSE_FILE, "-f", secure, "config", "--format", "json", env=clean_env()
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    kafka = services["kafka"]
    env = kafka["environment"]
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert protocols == {"INTERNAL": "SASL_SSL", "HOST": "SASL_SSL", "CONTROLLER": "PLAINTEXT"}
    mounts = {v["target"]: v for v in kafka["volumes"]}
    broker_secrets = mounts["/etc/kafka/secrets"]
    assert broker_secrets["read_only"]
    assert Path(broker_secrets["source"]) == COMPOSE_FILE.parent / "kafka-secrets"
    # Compose writes $ as $$ in its output; the container sees ${dir:...}.
    referenced = set(re.findall(r"\$\$\{dir:([^:}]+):([^}]+)\}", json.dumps(env)))
    assert referenced == {
        ("/etc/kafka/secrets", name)
        for name in ("broker.crt", "broker.key", "ca.crt", "lifelong-password")
    }
    client = Path(mounts["/etc/kafka/client.properties"]["source"])
    lines = client.read_text().splitlines()
    properties = dict(line.split("=", 1) for line in lines if line and line[0] != "#")
    assert properties["security.protocol"] == "SASL_SSL"
    assert "/etc/kafka/client.properties" in kafka["healthcheck"]["test"]
    for name in ("lifelong", "producer"):
        settings = load_settings(environ=services[name]["environment"])
        assert settings.kafka_security_protocol == "sasl_ssl", name
        assert settings.kafka_sasl_mechanism == properties["sasl.mechanism"] == "PLAIN"
        assert f'username="{settings.kafka_sasl_username}"' in properties["sasl.jaas.config"]
        assert (
            f"user_{settings.kafka_sasl_username}="
            in env["KAFKA_LISTENER_NAME_INTERNAL_PLAIN_SASL_JAAS_CONFIG"]
        )
        volumes = {v["target"]: v for v in services[name]["volumes"]}
        for path in (settings.kafka_sasl_password_file, settings.kafka_tls_ca_file):
            mount = volumes[str(path.parent)]
            assert mount["read_only"] and Path(mount["source"]) == COMPOSE_FILE.parent / "secrets"


def test_the_scale_override_runs_two_learners_and_two_predictors_on_kafka(compose):
    """compose.scale.yaml over compose.yaml (docs/deploy.md, "Scale-out"): valid for Compose;
    two learners of one model with standbys on, under distinct host names (their static group
    ids); two replicas following the learners' snapshot topic, on distinct host ports."""
    scale = COMPOSE_FILE.parent / "compose.scale.yaml"
    result = run(
        compose, "-f", COMPOSE_FILE, "-f", scale, "config", "--format", "json", env=clean_env()
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    learners = [
        load_settings(environ=services[n]["environment"]) for n in ("lifelong", "lifelong-b")
    ]
    for settings in learners:
        settings.check_learning()
        assert settings.kafka_standby and settings.kafka_bootstrap == "kafka:19092"
    assert learners[0].kafka_group == learners[1].kafka_group
    assert learners[0].transactional_id == learners[1].transactional_id
    assert services["lifelong"]["hostname"] != services["lifelong-b"]["hostname"]
    for name in ("lifelong-predict", "lifelong-predict-2"):
        replica = load_settings(environ=services[name]["environment"])
        assert replica.snapshot_topic == learners[0].model_topic
        assert replica.kafka_group == learners[0].kafka_group
        assert replica.kafka_bootstrap == learners[0].kafka_bootstrap
        check_listening(replica, replica.grpc_address)
    published = [p["published"] for s in services.values() for p in s.get("ports", ())]
    assert len(published) == len(set(published))
