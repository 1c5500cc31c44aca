"""deploy/k8s, validated offline: `kubectl kustomize` renders it, kubeconform checks every object
against the Kubernetes v1.32.4 OpenAPI schemas (strict: unknown fields fail) and the ServiceMonitor
against the Prometheus Operator's CRD, then against tests/deploy/k8s_policy (what docs/deploy.md
promises: one replica, a checkpoint claim, native gRPC probes, non-root, limits, scrape
annotations). The ConfigMap's settings load with the service's own settings code."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
from deploy_support import ALERTS, K8S, K8S_SCHEMAS_STAMP, POLICY, binary, fetched, missing, run
from lifelong.config import load_settings
from lifelong.serving.tls import check_listening

SCHEMA_LOCATION = "{{ .ResourceKind }}{{ .KindSuffix }}.json"


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        missing("kubectl is not installed (it renders the kustomization offline)")
    return path


@pytest.fixture(scope="module")
def kubeconform() -> Path:
    return binary("kubeconform")


@pytest.fixture(scope="module")
def schemas() -> Path:
    return fetched("k8s-schemas", K8S_SCHEMAS_STAMP).parent


def render(kubectl: str, directory: Path) -> str:
    result = run(kubectl, "kustomize", directory)
    assert result.returncode == 0, result.stderr
    return result.stdout


def validate(kubeconform: Path, manifests: str, location: Path, *extra: str):
    return run(
        kubeconform, "-strict", "-summary", *extra,
        "-schema-location", f"{location}/{SCHEMA_LOCATION}", "-",
        input=manifests,
    )  # fmt: skip


@pytest.fixture(scope="module")
def base(kubectl) -> str:
    return render(kubectl, K8S)


def with_component(kubectl, tmp_path_factory, component: str) -> str:
    """The base rendered with `components: [<component>]` enabled, as the docs say to."""
    copy = tmp_path_factory.mktemp(f"k8s-{component}") / "k8s"
    shutil.copytree(K8S, copy)
    kustomization = copy / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + f"\ncomponents:\n  - {component}\n")
    return render(kubectl, copy)


@pytest.fixture(scope="module")
def with_servicemonitor(kubectl, tmp_path_factory) -> str:
    """The base with `components: [servicemonitor]` enabled, as docs/deploy.md says."""
    return with_component(kubectl, tmp_path_factory, "servicemonitor")


def kinds(manifests: str) -> list[str]:
    return re.findall(r"^kind: (\w+)$", manifests, re.M)


def test_base_renders_the_expected_objects(base):
    assert sorted(kinds(base)) == sorted(
        ["Namespace", "ConfigMap", "ConfigMap", "Service", "Service", "StatefulSet"]
    )
    assert "ServiceMonitor" not in kinds(base)  # optional: needs the operator's CRDs
    assert len(re.findall(r"^  namespace: lifelong$", base, re.M)) == 5  # all but the Namespace


def test_base_is_valid_kubernetes(base, kubeconform, schemas):
    result = validate(kubeconform, base, schemas)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid: 6, Invalid: 0, Errors: 0, Skipped: 0" in result.stdout


def test_servicemonitor_component_is_valid(with_servicemonitor, kubeconform, schemas):
    assert "ServiceMonitor" in kinds(with_servicemonitor)
    result = validate(kubeconform, with_servicemonitor, schemas)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid: 7, Invalid: 0, Errors: 0, Skipped: 0" in result.stdout
    monitor = with_servicemonitor[with_servicemonitor.index("kind: ServiceMonitor") :]
    assert "namespace: lifelong" in monitor and "port: metrics" in monitor


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("readinessProbe:", "readinessProbes:"), "additional properties 'readinessProbes'"),
        (("port: 50051\n", 'port: "50051"\n'), "want integer"),
    ],
    ids=["misspelt-field", "probe-port-as-string"],
)
def test_the_schemas_catch_mistakes(base, kubeconform, schemas, change, complaint):
    broken = base.replace(*change)
    assert broken != base
    result = validate(kubeconform, broken, schemas)
    assert result.returncode != 0
    assert complaint in result.stdout


def test_the_schemas_do_not_check_quantity_syntax(base, kubeconform, schemas):
    """A known limit, pinned so nobody relies on it: a quantity is any string to the OpenAPI
    schema ("lots" passes here); only the API server parses it."""
    result = validate(kubeconform, base.replace("storage: 2Gi", "storage: lots"), schemas)
    assert result.returncode == 0


def test_policy(base, kubeconform):
    """tests/deploy/k8s_policy: the promises of docs/deploy.md, as JSON schemas."""
    result = validate(kubeconform, base, POLICY, "-ignore-missing-schemas")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid: 3, Invalid: 0" in result.stdout  # the StatefulSet and both Services


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("runAsNonRoot: true", "runAsNonRoot: false"), "runAsNonRoot"),
        (("grpc:\n            port: 50051", "tcpSocket:\n            port: 50051"), "grpc"),
        (("replicas: 1", "replicas: 2"), "replicas"),
        (('    prometheus.io/scrape: "true"', '    prometheus.io/scrape: "false"'), "scrape"),
        (("grpc:\n            port: 50052", "tcpSocket:\n            port: 50052"), "grpc"),
        (("medium: Memory", 'medium: ""'), "Memory"),
    ],
    ids=["root", "tcp-probe", "two-replicas", "no-scrape", "replica-tcp-probe", "snapshot-on-disk"],
)
def test_policy_catches_regressions(base, kubeconform, change, complaint):
    """Each change, made to the StatefulSet (the last occurrence in the rendered manifests), is
    caught."""
    old, new = change
    head, found, tail = base.rpartition(old)
    broken = head + new + tail if found else base
    assert broken != base
    result = validate(kubeconform, broken, POLICY, "-ignore-missing-schemas")
    assert result.returncode != 0
    assert complaint in result.stdout


def test_configmap_settings_load_in_the_service():
    """lifelong.toml and the env literals are settings `lifelong serve` accepts, with the
    StatefulSet's own variables on top."""
    kustomization = (K8S / "kustomization.yaml").read_text()
    literals = dict(re.findall(r"^\s*- (LIFELONG_\w+)=(\S*)$", kustomization, re.M))
    assert "LIFELONG_KAFKA_BOOTSTRAP" in literals
    learner = container("lifelong")
    env = container_env(learner)
    assert env["LIFELONG_CONFIG"] == "/etc/lifelong/lifelong.toml"
    assert "mountPath: /etc/lifelong\n" in learner
    environ = {**literals, **{k: v for k, v in env.items() if k != "LIFELONG_CONFIG"}}
    settings = load_settings(environ=environ, config_file=K8S / "lifelong.toml")
    settings.learner_config()  # the [learner] table is valid too
    assert str(settings.checkpoint_dir) == "/var/lib/lifelong"
    assert settings.metrics_port == 9100
    assert settings.grpc_address.endswith(":50051")
    table = tomllib.loads((K8S / "lifelong.toml").read_text())
    assert table["checkpoint_dir"] == "/var/lib/lifelong"


def test_the_prediction_replica_serves_the_learners_snapshot_file():
    """The lifelong-predict container's settings (same file and ConfigMap as the learner) load,
    name the file the learner writes, on the shared in-memory volume, and the ports its probes
    and the Service use."""
    kustomization = (K8S / "kustomization.yaml").read_text()
    literals = dict(re.findall(r"^\s*- (LIFELONG_\w+)=(\S*)$", kustomization, re.M))
    settings = {}
    for name in ("lifelong", "lifelong-predict"):
        env = container_env(container(name))
        assert env.pop("LIFELONG_CONFIG") == "/etc/lifelong/lifelong.toml"
        settings[name] = load_settings(
            environ={**literals, **env}, config_file=K8S / "lifelong.toml"
        )
    learner, replica = settings["lifelong"], settings["lifelong-predict"]
    for each in (learner, replica):  # they would refuse to listen otherwise
        check_listening(each, each.grpc_address)
    assert replica.snapshot_file is not None and replica.snapshot_file == learner.snapshot_file
    for name in ("lifelong", "lifelong-predict"):
        assert f"- name: snapshot\n              mountPath: {replica.snapshot_file.parent}\n" in (
            container(name)
        )
    assert 'args: ["serve-predictions"]' in container("lifelong-predict")
    grpc_port = int(replica.grpc_address.rsplit(":", 1)[1])
    assert grpc_port != int(learner.grpc_address.rsplit(":", 1)[1])  # one network namespace
    assert replica.metrics_port != learner.metrics_port
    assert f"containerPort: {grpc_port}\n" in container("lifelong-predict")
    assert f"containerPort: {replica.metrics_port}\n" in container("lifelong-predict")
    service = (K8S / "service.yaml").read_text()
    assert f"port: {grpc_port}\n      targetPort: grpc-predict\n" in service


def container(name: str) -> str:
    """The text of container `name` in the StatefulSet's pod template."""
    statefulset = (K8S / "statefulset.yaml").read_text()
    containers = statefulset.split("\n      containers:\n")[1].split("\n      volumes:\n")[0]
    blocks = re.split(r"^        - name: ", containers, flags=re.M)
    (block,) = [b for b in blocks if b.startswith(name + "\n")]
    return block


def container_env(block: str) -> dict[str, str]:
    return dict(re.findall(r"- name: (LIFELONG_\w+)\n\s+value: \"?([^\"\n]+)\"?", block))


def prometheus_rule() -> str:
    """The PrometheusRule docs/deploy.md builds from alerts.yml (Prometheus Operator)."""
    header = (
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata: {name: lifelong, namespace: lifelong, labels: {release: prometheus}}\n"
        "spec:\n"
    )
    return header + "".join("  " + line for line in ALERTS.read_text().splitlines(True))


def test_alerts_wrapped_as_a_prometheus_rule_are_valid(kubeconform, schemas):
    """The documented one-liner (header + alerts.yml indented under spec) makes a valid
    PrometheusRule for the operator's CRD."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    assert "kind: PrometheusRule" in doc and "sed 's/^/  /' deploy/prometheus/alerts.yml" in doc
    result = validate(kubeconform, prometheus_rule(), schemas)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid: 1, Invalid: 0" in result.stdout
    broken = prometheus_rule().replace("        expr:", "        exprr:", 1)
    assert validate(kubeconform, broken, schemas).returncode != 0


# -- the secure component (docs/security.md) ---------------------------------------------------


@pytest.fixture(scope="module")
def with_secure(kubectl, tmp_path_factory) -> str:
    """The base with `components: [secure]` enabled, as docs/security.md says."""
    return with_component(kubectl, tmp_path_factory, "secure")


def rendered_containers(manifests: str) -> dict[str, str]:
    """The StatefulSet's containers in rendered manifests (keys sorted: each starts at args)."""
    statefulset = manifests[manifests.index("kind: StatefulSet") :]
    pod = statefulset.split("\n      containers:\n", 1)[1].split("\n      volumes:\n", 1)[0]
    blocks = pod.split("      - args:\n")[1:]
    return {re.search(r"^        name: (\S+)$", b, re.M).group(1): b for b in blocks}


def test_the_secure_component_is_valid_and_keeps_the_policy(with_secure, kubeconform, schemas):
    result = validate(kubeconform, with_secure, schemas)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid: 6, Invalid: 0, Errors: 0, Skipped: 0" in result.stdout
    result = validate(kubeconform, with_secure, POLICY, "-ignore-missing-schemas")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_secure_component_turns_tls_and_tokens_on_and_probes_the_health_port(with_secure):
    """Both containers' settings (ConfigMap, file and env, as the kubelet merges them) load with
    TLS and tokens from the mounted Secrets, plaintext and open calls off, the learner's Kafka
    settings SASL_SSL with its password and CA from a mounted Secret, and their probes ask the
    plaintext health-only port."""
    kustomization = (K8S / "kustomization.yaml").read_text()
    literals = dict(re.findall(r"^\s*- (LIFELONG_\w+)=(\S*)$", kustomization, re.M))
    containers = rendered_containers(with_secure)
    assert set(containers) == {"lifelong", "lifelong-predict"}
    volumes = with_secure.split("\n      volumes:\n", 1)[1]
    for secret in ("lifelong-tls", "lifelong-tokens", "lifelong-kafka"):
        assert f"secretName: {secret}" in volumes, secret
    for name, text in containers.items():
        env = {
            k: v.strip("'\"")
            for k, v in re.findall(r"- name: (LIFELONG_\w+)\n\s+value: (.*)", text)
        }
        assert env.pop("LIFELONG_CONFIG") == "/etc/lifelong/lifelong.toml"
        settings = load_settings(environ={**literals, **env}, config_file=K8S / "lifelong.toml")
        assert not settings.grpc_insecure and not settings.auth_disabled
        assert settings.tls_cert_file is not None and settings.auth_tokens_file is not None
        mounts = re.findall(r"- mountPath: (\S+)", text)
        files = [settings.tls_cert_file, settings.tls_key_file, settings.auth_tokens_file]
        if name == "lifelong":  # the learner's Kafka client: SASL over TLS, from the Secret
            assert settings.kafka_security_protocol == "sasl_ssl"
            files += [settings.kafka_sasl_password_file, settings.kafka_tls_ca_file]
        for path in files:
            assert str(path.parent) in mounts, (name, path)
        check_listening(settings, settings.grpc_address)
        health_port = int(settings.grpc_health_address.rsplit(":", 1)[1])
        probes = re.findall(r"Probe:\n(?:.*\n)*?\s+grpc:\n\s+port: (\d+)", text)
        assert len(probes) == 3 and {int(p) for p in probes} == {health_port}, name


# -- the scale-out component (docs/deploy.md, "Scale-out") -------------------------------------


@pytest.fixture(scope="module")
def with_scale_out(kubectl, tmp_path_factory) -> str:
    """The base with `components: [scale-out]` enabled, as docs/deploy.md says."""
    return with_component(kubectl, tmp_path_factory, "scale-out")


def rendered(manifests: str, kind: str, name: str) -> str:
    """One object of the rendered manifests, by kind and name."""
    for doc in manifests.split("\n---\n"):
        if re.search(rf"^kind: {kind}$", doc, re.M) and re.search(rf"^  name: {name}$", doc, re.M):
            return doc
    raise AssertionError(f"no {kind} {name}")


def test_the_scale_out_component_is_valid_kubernetes(with_scale_out, kubeconform, schemas):
    result = validate(kubeconform, with_scale_out, schemas)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid: 10, Invalid: 0, Errors: 0, Skipped: 0" in result.stdout


def test_the_scale_out_component_runs_two_learners_and_autoscaled_predictions(with_scale_out):
    """Two learners with standbys on and a budget that keeps one; a predictions Deployment whose
    settings load and follow the learners' snapshot topic, scaled on CPU (its requests set)."""
    kustomization = (K8S / "kustomization.yaml").read_text()
    literals = dict(re.findall(r"^\s*- (LIFELONG_\w+)=(\S*)$", kustomization, re.M))

    def settings_of(text: str):
        pairs = re.findall(r"- name: (LIFELONG_\w+)\n\s+value: (.*)", text)
        env = {k: v.strip("'\"") for k, v in pairs}
        assert env.pop("LIFELONG_CONFIG") == "/etc/lifelong/lifelong.toml"
        return load_settings(environ={**literals, **env}, config_file=K8S / "lifelong.toml")

    statefulset = rendered(with_scale_out, "StatefulSet", "lifelong")
    assert re.search(r"^  replicas: 2$", statefulset, re.M)
    containers = rendered_containers(with_scale_out)
    learner = settings_of(containers["lifelong"])
    learner.check_learning()
    assert learner.kafka_standby and learner.kafka_group_instance_id is None  # <group>-<pod>
    assert settings_of(containers["lifelong-predict"]).snapshot_topic == learner.model_topic

    pdb = rendered(with_scale_out, "PodDisruptionBudget", "lifelong")
    assert "minAvailable: 1" in pdb and "app.kubernetes.io/component: server" in pdb

    deployment = rendered(with_scale_out, "Deployment", "lifelong-predictions")
    replica = settings_of(deployment)
    assert replica.snapshot_topic == learner.model_topic
    assert replica.kafka_bootstrap == learner.kafka_bootstrap
    assert replica.kafka_group == learner.kafka_group and replica.task == learner.task
    check_listening(replica, replica.grpc_address)
    assert 'args: ["serve-predictions"]' in deployment or "- serve-predictions" in deployment
    assert re.search(r"requests:\n\s+cpu: 500m", deployment)
    port = replica.grpc_address.rsplit(":", 1)[1]
    assert re.findall(r"grpc:\n\s+port: (\d+)", deployment) == [port] * 3

    hpa = rendered(with_scale_out, "HorizontalPodAutoscaler", "lifelong-predictions")
    assert "kind: Deployment" in hpa and "name: lifelong-predictions" in hpa
    assert "name: cpu" in hpa and "minReplicas: 2" in hpa
    service = rendered(with_scale_out, "Service", "lifelong-predictions")
    assert "app.kubernetes.io/component: predictions" in service
