"""`Settings`: every service setting with its default and doc, in one dataclass.

Sources, strongest first: command-line flags, environment variables `LIFELONG_<NAME>`, a TOML file
(`--config path` or `LIFELONG_CONFIG`), the defaults below. docs/configuration.md is generated from
this module (`lifelong config --markdown`), and a test keeps it in step.

>>> settings = load_settings(environ={"LIFELONG_TASK": "regression"}, flags={"grpc_workers": "4"})
>>> settings.task, settings.grpc_workers, settings.kafka_topic
('regression', 4, 'lifelong.samples')
>>> load_settings(environ={"LIFELONG_TASK": "ranking"})
Traceback (most recent call last):
...
lifelong.config.ConfigError: task: 'ranking' is not one of classification, regression

"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.samples import TASKS

ENV_PREFIX = "LIFELONG_"
# The river state key in the environment (not a setting: `lifelong config` never prints it).
STATE_KEY_ENV = "LIFELONG_STATE_KEY"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and says why."""


def doc(
    help: str, *, choices: tuple = (), minimum: float | None = None, secret: bool = False
) -> dict[str, Any]:
    """A setting's metadata: its documentation, the checks `Settings` applies, and whether its
    value is a secret (no flag, which the process list would show; never printed)."""
    return {"help": help, "choices": choices, "minimum": minimum, "secret": secret}


def secret(help: str) -> Any:
    """A secret setting: None by default, left out of `repr` and of printed settings."""
    return field(default=None, repr=False, metadata=doc(help, secret=True))


@dataclass(frozen=True)
class Settings:
    """Every setting of a `lifelong serve` process (and of a `lifelong serve-predictions` replica,
    which uses those of gRPC, metrics, logs and the snapshot file)."""

    # -- the model
    task: str = field(
        default="classification",
        metadata=doc("What the model learns: class labels or numbers.", choices=TASKS),
    )
    learner: dict[str, Any] = field(
        default_factory=dict,
        metadata=doc(
            "Learner hyper-parameters overriding `LearnerConfig`'s defaults (see below): a "
            '`[learner]` table in TOML, JSON in the environment and flags (`{"hidden": [64]}`).',
        ),
    )
    challenger: bool = field(
        default=False,
        metadata=doc(
            "Start a fresh challenger beside the serving model after a drift, a drop of the "
            "prequential score or a plasticity alarm; it replaces the serving model when better "
            "(`lifelong.model.challenger`, benchmarks/recovery). While one learns, each sample "
            "is learned twice. Built-in MLP only.",
        ),
    )
    challenger_settings: dict[str, Any] = field(
        default_factory=dict,
        metadata=doc(
            "With `challenger`: `ChallengerConfig` fields overriding its defaults (window, "
            "margin, max_age, keep_deposed, ...): a `[challenger_settings]` table in TOML, JSON "
            "in the environment and flags.",
        ),
    )
    remediations: dict[str, Any] = field(
        default_factory=dict,
        metadata=doc(
            "Actions on sustained plasticity symptoms (`lifelong.model.remediation`), the "
            "built-in MLP's: a table per symptom (`dead_fraction`, `tau_dormant_fraction`, "
            "`rank_fraction`) of `threshold`, `windows` (telemetry windows in a row), `action` "
            "(`redo`: reset the dormant units; `challenger`: start one, with `challenger`) and "
            "`redo_threshold`. TOML `[remediations.dead_fraction]`; JSON in the environment and "
            "flags. Counted in `lifelong_remediations_total{action}`. Empty: none.",
        ),
    )
    model: str | None = field(
        default=None,
        metadata=doc(
            "The model, by import path: a torch module factory (`mypkg.models:build`, called "
            "with the task and `model_args`), a river estimator class "
            "(`river.linear_model:LogisticRegression`, called with `model_args`) or a factory "
            "of a river pipeline. None: the built-in MLP. `learner` then holds the torch "
            "module's settings (`TorchModuleConfig`), or nothing for river (docs/models.md).",
        ),
    )
    model_args: dict[str, Any] = field(
        default_factory=dict,
        metadata=doc(
            "Arguments of `model`'s factory or class: a `[model_args]` table in TOML, JSON in "
            "the environment and flags.",
        ),
    )
    state_key_file: Path | None = field(
        default=None,
        metadata=doc(
            "File holding the secret key (at least 16 bytes) that authenticates a river model's "
            "checkpoints and snapshot files (HMAC-SHA256 around pickle); or the environment "
            "variable `LIFELONG_STATE_KEY`. A river model with `checkpoint_dir` or "
            "`snapshot_file` refuses to start without one (docs/models.md).",
        ),
    )
    # -- gRPC
    grpc_address: str = field(
        default="localhost:50051",
        metadata=doc(
            "Address the gRPC server listens on. Any address but loopback (`[::]:50051`, a pod's) "
            "needs TLS (`tls_cert_file`) or `grpc_insecure`, and tokens (`auth_tokens_file`) or "
            "`auth_disabled`: the server refuses to start otherwise (docs/security.md)."
        ),
    )
    grpc_workers: int = field(default=8, metadata=doc("Threads serving gRPC calls.", minimum=1))
    switch_interval_ms: float = field(
        default=0.5,
        metadata=doc(
            "Python's GIL switch interval (`sys.setswitchinterval`), in milliseconds: how long "
            "the learning thread's Python may keep the GIL from a waiting gRPC thread. A unary "
            "call needs the GIL several times, so Python's default of 5 ms can add that much, "
            "more than once, to a call while the service learns.",
            minimum=0.01,
        ),
    )
    grpc_reflection: bool = field(
        default=True,
        metadata=doc(
            "Serve gRPC reflection (`grpcurl list` without the .proto files); open to anyone who "
            "can connect, like health. It describes the API, nothing of the model."
        ),
    )
    grpc_health_address: str | None = field(
        default=None,
        metadata=doc(
            "A second gRPC address serving only health (`grpc.health.v1`), in plaintext and "
            "without tokens, for Kubernetes' gRPC probes and Docker's HEALTHCHECK, which can "
            "do neither TLS nor tokens; it tells whether the server is serving, nothing else. "
            "None: no such port."
        ),
    )
    # -- gRPC security (docs/security.md)
    tls_cert_file: Path | None = field(
        default=None,
        metadata=doc(
            "PEM certificate chain of the gRPC server; with `tls_key_file` the port speaks TLS "
            "only. Both files are read again at a new connection when they changed (cert-manager, "
            "a Secret volume): no restart."
        ),
    )
    tls_key_file: Path | None = field(
        default=None, metadata=doc("PEM private key of `tls_cert_file`.")
    )
    tls_client_ca_file: Path | None = field(
        default=None,
        metadata=doc(
            "PEM CA certificate(s) for mutual TLS: every client must present a certificate "
            "signed by one of them. None: clients are not asked for a certificate."
        ),
    )
    grpc_insecure: bool = field(
        default=False,
        metadata=doc(
            "Accept plaintext gRPC on an address other than loopback. Off: a server without "
            "TLS refuses to listen anywhere but localhost."
        ),
    )
    auth_tokens_file: Path | None = field(
        default=None,
        metadata=doc(
            "Bearer tokens and their roles, one `ROLES SHA256HEX` line each (roles among "
            "`predict`, `learn`, `admin`, comma-separated; the SHA-256 of the token, never the "
            "token: `lifelong token --roles predict` makes one). Set: every call but health and "
            "reflection needs a token with the method's role (docs/security.md)."
        ),
    )
    auth_tokens: str | None = field(
        default=None,
        metadata=doc(
            "`auth_tokens_file`'s lines in a setting, entries separated by `;` (e.g. "
            "`LIFELONG_AUTH_TOKENS` from a Secret); both may be set."
        ),
    )
    auth_open_predict: bool = field(
        default=False,
        metadata=doc(
            "With tokens: let calls without a token predict (PredictionService, ModelService's "
            "reads); learning and admin still need theirs."
        ),
    )
    auth_disabled: bool = field(
        default=False,
        metadata=doc(
            "No tokens on an address other than loopback: anyone who reaches the port may "
            "predict, learn and checkpoint. Off: such a server refuses to start without tokens."
        ),
    )
    max_request_bytes: int = field(
        default=4 * 1024 * 1024,
        metadata=doc(
            "Largest gRPC request (larger ones fail with RESOURCE_EXHAUSTED).",
            minimum=1024,
        ),
    )
    max_record_bytes: int = field(
        default=1024 * 1024,
        metadata=doc(
            "Largest Kafka record value the service decodes; larger ones go to the dead-letter "
            "topic as `oversized`, unparsed: parsing takes many times a record's size in memory "
            "for a moment (deeply nested JSON the most). Kafka's own default limit is 1 MB.",
            minimum=1024,
        ),
    )
    max_features: int = field(
        default=10_000,
        metadata=doc(
            "Most features one sample or prediction input may carry (`too_many_features` beyond).",
            minimum=1,
        ),
    )
    max_model_features: int = field(
        default=10_000,
        metadata=doc(
            "Most features the model may grow to: a sample whose new feature names (or longer "
            "dense vector) would take it beyond is rejected as `too_many_features`, so clients "
            "cannot grow the input layer, its memory and its learning time, forever.",
            minimum=1,
        ),
    )
    max_new_features_per_sample: int = field(
        default=1_000,
        metadata=doc(
            "Most new features (names the model lacks, or dense values beyond its features) one "
            "sample may bring; more: `too_many_new_features`. The first sample of a fresh model "
            "too: a wider schema needs this (and `feature_growth_burst`) raised.",
            minimum=1,
        ),
    )
    feature_growth_burst: int = field(
        default=1_000,
        metadata=doc(
            "Features the model may have before it learned anything; it may then grow by "
            "`feature_growth_per_1000_samples` per 1000 samples learned (up to "
            "`max_model_features`). A sample beyond is refused as `feature_growth_limited`. "
            "Counted in samples learned, not time, so a replay from a checkpoint refuses the same.",
            minimum=1,
        ),
    )
    feature_growth_per_1000_samples: int = field(
        default=10,
        metadata=doc(
            "New features the model may gain per 1000 samples learned beyond "
            "`feature_growth_burst` (0: none).",
            minimum=0,
        ),
    )
    max_classes: int = field(
        default=1_000,
        metadata=doc(
            "Most classes a classifier may have: a sample of a new class beyond is refused as "
            "`too_many_classes` (each class is an output unit, learned and predicted on every "
            "sample, and listed in every prediction).",
            minimum=1,
        ),
    )
    max_label_length: int = field(
        default=256,
        metadata=doc(
            "Longest text label of a new class, in characters (`label_too_long` beyond).",
            minimum=1,
        ),
    )
    max_batch_rows: int = field(
        default=10_000,
        metadata=doc(
            "Most rows one PredictBatch request or PredictStream message may ask for, as "
            "`examples` or `matrix` (RESOURCE_EXHAUSTED `too_many_rows` beyond): a row costs "
            "the server a row of every feature and an answer listing every class, far more "
            "than the few bytes it takes in the request.",
            minimum=1,
        ),
    )
    # -- serving snapshot
    refresh_every_samples: int = field(
        default=100,
        metadata=doc(
            "Publish a new serving snapshot after this many learned samples...",
            minimum=1,
        ),
    )
    refresh_every_seconds: float = field(
        default=1.0,
        metadata=doc(
            "...or when learned samples have waited this long, whichever comes first.", minimum=0
        ),
    )
    snapshot_file: Path | None = field(
        default=None,
        metadata=doc(
            "`serve`: also write the serving snapshot to this file, replaced atomically at most "
            "every `refresh_every_seconds`, for prediction replicas (`lifelong serve-predictions`) "
            "to read; put it on a tmpfs (/dev/shm, a memory emptyDir). `serve-predictions`: the "
            "file to serve from. None: no file.",
        ),
    )
    snapshot_topic: str | None = field(
        default=None,
        metadata=doc(
            "`serve` with Kafka: also publish each snapshot written for replicas (at most every "
            "`refresh_every_seconds`) to this compacted topic, created if missing; None: "
            "`<kafka_topic>.model`; empty: none. `serve-predictions`: follow this topic (with "
            "`kafka_bootstrap`; `kafka_group` and `task` must be the learner's) instead of a "
            'file (docs/kafka.md, "Snapshots through Kafka").',
        ),
    )
    snapshot_chunk_bytes: int = field(
        default=512 * 1024,
        metadata=doc(
            "Snapshots larger than this go to the snapshot topic in chunks of this size, with "
            "a manifest and a SHA-256 digest; keep it below the broker's message limit "
            "(`message.max.bytes`, 1 MiB by default).",
            minimum=1024,
        ),
    )
    snapshot_poll_seconds: float = field(
        default=0.01,
        metadata=doc(
            "`serve-predictions`: how often the replica looks for a newer snapshot file (one "
            "stat). Its predictions lag the learner by up to this plus `refresh_every_seconds`.",
            minimum=0.001,
        ),
    )
    # -- metrics
    metrics_port: int = field(
        default=9100,
        metadata=doc("Port of the Prometheus endpoint `/metrics`; 0 turns it off.", minimum=0),
    )
    metrics_address: str = field(
        default="0.0.0.0",
        metadata=doc(
            "Address the HTTP ports (`/metrics`, the status page) listen on (`127.0.0.1`: this "
            "machine only; `::`: IPv6 too)."
        ),
    )
    metrics_tls_cert_file: Path | None = field(
        default=None,
        metadata=doc(
            "PEM certificate chain of the HTTP ports (`/metrics`, the status page); with "
            "`metrics_tls_key_file` they serve HTTPS only (Prometheus: `scheme: https`, "
            "`tls_config`). Read at start."
        ),
    )
    metrics_tls_key_file: Path | None = field(
        default=None, metadata=doc("PEM private key of `metrics_tls_cert_file`.")
    )
    metrics_tls_client_ca_file: Path | None = field(
        default=None,
        metadata=doc(
            "PEM CA certificate(s): scrapers must present a certificate signed by one "
            "(Prometheus: `tls_config: {cert_file, key_file}`)."
        ),
    )
    metrics_auth_file: Path | None = field(
        default=None,
        metadata=doc(
            "HTTP basic auth for the HTTP ports (`/metrics`, the status page): `USER SHA256HEX` "
            "lines, the SHA-256 of each user's "
            "password (Prometheus: `basic_auth: {username, password_file}`). Use it with TLS: "
            "basic auth sends the password in clear otherwise."
        ),
    )
    status_port: int | None = field(
        default=None,
        metadata=doc(
            "Port of the status page (`/`, its JSON at `/api/v1/status`): None serves it on "
            "`metrics_port` beside `/metrics`; 0 turns it off.",
            minimum=0,
        ),
    )
    status_interval_seconds: float = field(
        default=1.0,
        metadata=doc(
            "How often the status page's telemetry aggregates (never samples) are recorded.",
            minimum=0.05,
        ),
    )
    status_horizon_seconds: float = field(
        default=600.0,
        metadata=doc(
            "How far back the status page's charts reach: its ring keeps this divided by "
            "`status_interval_seconds` readings.",
            minimum=1,
        ),
    )
    # -- checkpoints
    checkpoint_dir: Path | None = field(
        default=None,
        metadata=doc(
            "Directory of checkpoint files (learner state and Kafka offsets); the newest valid one "
            "is loaded at start. None keeps nothing: each start is a fresh model. Kafka needs it.",
        ),
    )
    checkpoint_every_samples: int = field(
        default=10_000,
        metadata=doc("Write a checkpoint after this many learned samples...", minimum=1),
    )
    checkpoint_every_seconds: float = field(
        default=60.0,
        metadata=doc(
            "...or this many seconds, whichever comes first (and at shutdown).", minimum=0
        ),
    )
    checkpoint_keep: int = field(
        default=3, metadata=doc("Checkpoint files kept; older ones are deleted.", minimum=1)
    )
    # -- Kafka
    kafka_bootstrap: str | None = field(
        default=None,
        metadata=doc("Kafka bootstrap servers (`host:port,...`). None: learn over gRPC only."),
    )
    kafka_topic: str = field(default="lifelong.samples", metadata=doc("Topic of labelled samples."))
    kafka_group: str = field(
        default="lifelong", metadata=doc("Consumer group (offsets are committed for lag only).")
    )
    kafka_group_instance_id: str | None = field(
        default=None,
        metadata=doc(
            "Static group membership (`group.instance.id`): a restarted learner with the same id "
            "gets its partitions back at once instead of after the session timeout. None: "
            "`<kafka_group>-<host name>` (a pod's name: stable in a StatefulSet); empty: "
            "dynamic membership. Two running processes must never share one: the broker fences "
            "the older (it stops with an error)."
        ),
    )
    kafka_session_timeout_seconds: float = field(
        default=10.0,
        metadata=doc(
            "Consumer group session timeout (`session.timeout.ms`): how long the group waits "
            "for a silent member (killed, its machine lost) before its partitions go to another "
            "member or a restart under another instance id. Heartbeats come from librdkafka's "
            "own thread, so learning never delays them. The broker bounds it "
            "(`group.min.session.timeout.ms`, 6 s by default).",
            minimum=1,
        ),
    )
    kafka_standby: bool = field(
        default=False,
        metadata=doc(
            "Several `serve` processes for one model (same `kafka_group`): one active, the "
            "others standbys, elected through the group `<kafka_group>.leader` on the topic "
            "`<kafka_topic>.leader`; checkpoints go to `checkpoint_topic` in Kafka transactions "
            "with the group's offsets, and a learner that was replaced (a zombie) is fenced "
            '(docs/kafka.md, "Standbys and fencing"). `checkpoint_dir` is not used.',
        ),
    )
    checkpoint_topic: str | None = field(
        default=None,
        metadata=doc(
            "With `kafka_standby`: the compacted topic of checkpoints (state and offsets). "
            "None: `<kafka_topic>.checkpoints`."
        ),
    )
    kafka_transactional_id: str | None = field(
        default=None,
        metadata=doc(
            "With `kafka_standby`: the active learner's `transactional.id`, the same for every "
            "process of the model (that is what fences a zombie). None: `lifelong-<kafka_group>`."
        ),
    )
    dead_letter_topic: str | None = field(
        default=None, metadata=doc("Topic invalid records go to. None: `<kafka_topic>.dlq`.")
    )
    value_format: str = field(
        default="json",
        metadata=doc(
            "Encoding of record values; a record's `content-type` header overrides it "
            "(`application/json`, `application/x-protobuf`).",
            choices=("json", "protobuf"),
        ),
    )
    kafka_poll_max_records: int = field(
        default=500,
        metadata=doc("Most records per poll, learned as one batch under the lock.", minimum=1),
    )
    # -- Kafka security (docs/security.md): the consumer's and every producer's
    kafka_security_protocol: str = field(
        default="plaintext",
        metadata=doc(
            "How the service's Kafka clients reach the brokers (librdkafka's "
            "`security.protocol`): `sasl_ssl` authenticates with a user and password over TLS; "
            "`ssl` is TLS alone (with `kafka_tls_cert_file`: a client certificate); "
            "`sasl_plaintext` sends the password unencrypted.",
            choices=("plaintext", "ssl", "sasl_plaintext", "sasl_ssl"),
        ),
    )
    kafka_sasl_mechanism: str | None = field(
        default=None,
        metadata=doc(
            "SASL mechanism of the `sasl_*` protocols; PLAIN sends the password itself (to a "
            "broker proven by TLS), SCRAM a proof of it.",
            choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        ),
    )
    kafka_sasl_username: str | None = field(
        default=None, metadata=doc("SASL user name of the `sasl_*` protocols.")
    )
    kafka_sasl_password: str | None = secret(
        "SASL password of `kafka_sasl_username`, or `kafka_sasl_password_file`. From the "
        "environment or the TOML file only (no flag: `ps` would show it); never printed."
    )
    kafka_sasl_password_file: Path | None = field(
        default=None,
        metadata=doc(
            "A file holding the SASL password (a mounted Secret; one trailing newline is "
            "ignored), read at start."
        ),
    )
    kafka_tls_ca_file: Path | None = field(
        default=None,
        metadata=doc(
            "PEM CA certificate(s) the brokers' certificates must be signed by (`ssl`, "
            "`sasl_ssl`). None: the system's CAs."
        ),
    )
    kafka_tls_cert_file: Path | None = field(
        default=None,
        metadata=doc(
            "PEM client certificate for brokers that ask for one (`ssl.client.auth`), with "
            "`kafka_tls_key_file`."
        ),
    )
    kafka_tls_key_file: Path | None = field(
        default=None, metadata=doc("PEM private key of `kafka_tls_cert_file`.")
    )
    kafka_tls_key_password: str | None = secret(
        "Password of an encrypted `kafka_tls_key_file`. From the environment or the TOML file "
        "only (no flag: `ps` would show it); never printed."
    )
    kafka_tls_verify_hostname: bool = field(
        default=True,
        metadata=doc(
            "Check that a broker's certificate names the host the client connected to, as "
            "well as its CA. Off only for brokers whose certificates lack their names."
        ),
    )
    # -- demo
    demo: bool = field(
        default=False,
        metadata=doc(
            "Learn an embedded concept-drifting synthetic stream (no broker needed): a first run.",
        ),
    )
    demo_rate: float = field(
        default=200.0,
        metadata=doc("Samples per second the demo stream learns; 0: as fast as it can.", minimum=0),
    )
    # -- logs
    log_level: str = field(
        default="INFO",
        metadata=doc("Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    )
    log_format: str = field(
        default="text",
        metadata=doc(
            "`text` for people, `json` for one JSON object per line.", choices=("text", "json")
        ),
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices, minimum = f.metadata["choices"], f.metadata["minimum"]
            if choices and value not in choices and value is not None:
                raise ConfigError(
                    f"{f.name}: {value!r} is not one of {', '.join(map(str, choices))}"
                )
            if minimum is None or value is None:  # None: an optional setting left unset
                continue
            if not (value >= minimum and math.isfinite(value)):
                raise ConfigError(f"{f.name}: {value!r} is below the minimum {minimum}")
        if self.model_args and self.model is None:
            raise ConfigError("model_args are the arguments of a model: set model too")
        if not self.snapshot_topic:  # else a replica's settings may be meant (App checks)
            self.check_learning()
        if self.kafka_bootstrap and self.demo:
            raise ConfigError("demo and kafka_bootstrap exclude each other: pick one stream")
        if self.demo and self.task != "classification":
            raise ConfigError("the demo stream is a classification stream: leave task unset")
        for prefix in ("tls", "metrics_tls"):
            cert, key = getattr(self, f"{prefix}_cert_file"), getattr(self, f"{prefix}_key_file")
            if (cert is None) != (key is None):
                raise ConfigError(f"{prefix}_cert_file and {prefix}_key_file go together: set both")
            if cert is None and getattr(self, f"{prefix}_client_ca_file") is not None:
                raise ConfigError(
                    f"{prefix}_client_ca_file asks clients for certificates over TLS: set "
                    f"{prefix}_cert_file and {prefix}_key_file too"
                )
        self._check_kafka_security()
        if self.auth_disabled and self.auth_enabled:
            raise ConfigError("auth_disabled and auth tokens exclude each other: pick one")
        if self.auth_open_predict and not self.auth_enabled:
            raise ConfigError(
                "auth_open_predict opens predictions among token-protected calls: without "
                "auth_tokens_file or auth_tokens every call is open already"
            )

    def _check_kafka_security(self) -> None:
        protocol = self.kafka_security_protocol
        sasl = {
            "kafka_sasl_mechanism": self.kafka_sasl_mechanism,
            "kafka_sasl_username": self.kafka_sasl_username,
            "kafka_sasl_password or kafka_sasl_password_file": self.kafka_sasl_password
            or self.kafka_sasl_password_file,
        }
        if protocol.startswith("sasl_"):
            missing = [name for name, value in sasl.items() if value is None]
            if missing:
                raise ConfigError(f"kafka_security_protocol {protocol} needs {', '.join(missing)}")
        elif any(value is not None for value in sasl.values()):
            raise ConfigError(
                "kafka_sasl_* settings are used with kafka_security_protocol sasl_ssl or "
                f"sasl_plaintext, not {protocol}"
            )
        if self.kafka_sasl_password is not None and self.kafka_sasl_password_file is not None:
            raise ConfigError("kafka_sasl_password and kafka_sasl_password_file: set one")
        tls = ("kafka_tls_ca_file", "kafka_tls_cert_file", "kafka_tls_key_file")
        if protocol not in ("ssl", "sasl_ssl") and any(getattr(self, n) for n in tls):
            raise ConfigError(
                f"kafka_tls_* settings are used with kafka_security_protocol ssl or sasl_ssl, "
                f"not {protocol}"
            )
        if (self.kafka_tls_cert_file is None) != (self.kafka_tls_key_file is None):
            raise ConfigError("kafka_tls_cert_file and kafka_tls_key_file go together: set both")
        if self.kafka_tls_key_password is not None and self.kafka_tls_key_file is None:
            raise ConfigError("kafka_tls_key_password goes with kafka_tls_key_file: set it")

    def check_learning(self) -> None:
        """What learning from Kafka needs (`serve`)."""
        if self.kafka_standby and not self.kafka_bootstrap:
            raise ConfigError("kafka_standby needs kafka_bootstrap: standbys wait on Kafka")
        if self.kafka_bootstrap and self.checkpoint_dir is None and not self.kafka_standby:
            raise ConfigError(
                "kafka_bootstrap is set but checkpoint_dir is not: set a checkpoint directory so "
                "a restart resumes where the model stopped, learning each record once"
            )

    @property
    def auth_enabled(self) -> bool:
        """Whether tokens are configured (calls need them)."""
        return self.auth_tokens_file is not None or self.auth_tokens is not None

    @property
    def status_page_port(self) -> int:
        """The port the status page is served on (0: none)."""
        return self.metrics_port if self.status_port is None else self.status_port

    @property
    def dead_letter(self) -> str:
        """The dead-letter topic, default applied."""
        return self.dead_letter_topic or f"{self.kafka_topic}.dlq"

    def state_key(self, environ: Mapping[str, str] | None = None) -> bytes | None:
        """The river state key: `state_key_file`'s contents, else `LIFELONG_STATE_KEY`."""
        if self.state_key_file is not None:
            try:
                return self.state_key_file.read_bytes().strip()
            except OSError as e:
                raise ConfigError(f"state_key_file: {e}") from None
        key = (os.environ if environ is None else environ).get(STATE_KEY_ENV)
        return key.encode("utf-8") if key else None

    @property
    def group_instance_id(self) -> str | None:
        """`kafka_group_instance_id`, default applied (None: dynamic membership)."""
        if self.kafka_group_instance_id is None:
            return f"{self.kafka_group}-{socket.gethostname()}"
        return self.kafka_group_instance_id or None

    @property
    def leader_group(self) -> str:
        return f"{self.kafka_group}.leader"

    @property
    def leader_topic(self) -> str:
        return f"{self.kafka_topic}.leader"

    @property
    def checkpoints_topic(self) -> str:
        return self.checkpoint_topic or f"{self.kafka_topic}.checkpoints"

    @property
    def transactional_id(self) -> str:
        return self.kafka_transactional_id or f"lifelong-{self.kafka_group}"

    @property
    def model_topic(self) -> str | None:
        """Where `serve` publishes snapshots (None: nowhere): `snapshot_topic`, default
        applied, when learning from Kafka."""
        if not self.kafka_bootstrap:
            return None
        if self.snapshot_topic is None:
            return f"{self.kafka_topic}.model"
        return self.snapshot_topic or None

    def learner_config(self):
        """A `LearnerConfig` with this file's `learner` overrides."""
        from lifelong.model.config import LearnerConfig

        known = {f.name: f for f in dataclasses.fields(LearnerConfig)}
        unknown = sorted(set(self.learner) - set(known))
        if unknown:
            raise ConfigError(
                f"learner: unknown hyper-parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(known)}"
            )
        try:
            return LearnerConfig(**self.learner)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"learner: {e}") from None


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
TYPES = typing.get_type_hints(Settings)


def base_type(name: str) -> tuple[type, bool]:
    """The type of setting `name` without `| None`, and whether None is allowed."""
    hint = TYPES[name]
    if isinstance(hint, types.UnionType):
        (base,) = (a for a in typing.get_args(hint) if a is not type(None))
        return base, True
    return typing.get_origin(hint) or hint, False


def parse_text(name: str, text: str) -> Any:
    """A setting's value from text (an environment variable or a flag)."""
    base, optional = base_type(name)
    if optional and text.strip().lower() in ("", "none", "null"):
        return None
    try:
        if base is bool:
            lowered = text.strip().lower()
            if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(f"{text!r} is not a boolean (true/false)")
            return lowered in ("1", "true", "yes", "on")
        if base is dict:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
        return base(text)
    except ValueError as e:
        raise ConfigError(f"{name}: cannot read {text!r}: {e}") from None
    except RecursionError:  # JSON nested deeper than Python's stack
        raise ConfigError(f"{name}: cannot read {text[:40]!r}...: nested too deeply") from None


def _coerce(name: str, value: Any) -> Any:
    """Check a TOML value's type; widen ints to floats and strings to paths."""
    base, optional = base_type(name)
    if value is None and optional:
        return None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is Path and isinstance(value, str):
        return Path(value)
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        raise ConfigError(f"{name}: expected {base.__name__}, got {value!r}")
    return value


def load_settings(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | str | None = None,
) -> Settings:
    """Settings from flags (text or typed values; None means not given), the environment, a TOML
    file and the defaults, strongest first."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        try:
            with open(config_file, "rb") as file:
                table = tomllib.load(file)
        except (OSError, ValueError) as e:  # TOMLDecodeError, not UTF-8, a NUL in the path
            raise ConfigError(f"config file {config_file}: {e}") from None
        except RecursionError:
            raise ConfigError(f"config file {config_file}: nested too deeply") from None
        unknown = sorted(set(table) - set(FIELDS))
        if unknown:
            raise ConfigError(f"config file {config_file}: unknown setting(s) {', '.join(unknown)}")
        values.update({k: _coerce(k, v) for k, v in table.items()})
    for name in FIELDS:
        text = environ.get(ENV_PREFIX + name.upper())
        if text is not None:
            values[name] = parse_text(name, text)
    for name, value in (flags or {}).items():
        if name not in FIELDS:
            raise ConfigError(f"unknown setting {name}")
        if value is not None:
            values[name] = parse_text(name, value) if isinstance(value, str) else value
    return Settings(**values)


def to_toml(settings: Settings) -> str:
    """`settings` as a TOML file `load_settings` reads back (None settings commented out)."""
    lines, tables = [], []
    for name in FIELDS:
        value = getattr(settings, name)
        if FIELDS[name].metadata["secret"] and value is not None:
            lines.append(f"# {name} = (set, not shown)")
        elif isinstance(value, dict):
            tables.append(f"\n[{name}]")
            tables += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
        elif value is None:
            lines.append(f"# {name} =")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # JSON strings and numbers are valid TOML


def shown_default(default: Any) -> str:
    """A setting's default as the docs and `--help` show it (TOML; `none` for None)."""
    if default is None:
        return "none"
    return "{}" if isinstance(default, dict) else _toml_value(default)


def markdown() -> str:
    """docs/configuration.md."""
    out = [
        "# Configuration",
        "",
        "<!-- Generated by `lifelong config --markdown` from service/lifelong/config.py; "
        "do not edit. -->",
        "",
        "Every setting has a default. Sources, strongest first: command-line flags "
        "(`lifelong serve --grpc-workers 4`), environment variables (`LIFELONG_GRPC_WORKERS=4`), "
        "a TOML file (`lifelong serve --config lifelong.toml`, or `LIFELONG_CONFIG`), defaults. "
        "`lifelong config` prints the effective settings as TOML.",
        "",
        "| setting | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    defaults = Settings()
    for name, f in FIELDS.items():
        help = f.metadata["help"]
        if f.metadata["choices"]:
            help += " One of " + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + "."
        default = getattr(defaults, name)
        shown = "none" if default is None else f"`{shown_default(default)}`"
        out.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {shown} | {help} |")
    out += [
        "",
        "## Learner hyper-parameters",
        "",
        "Keys of `learner` (from `lifelong.model.LearnerConfig`). A model resumed from a "
        "checkpoint keeps the hyper-parameters it was created with.",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    out += [f"| {names} | {defaults} | {help} |" for names, defaults, help in learner_parameters()]
    return "\n".join(out) + "\n"


def learner_parameters() -> list[tuple[str, str, str]]:
    """(keys, defaults, meaning) rows from `LearnerConfig`'s numpydoc "Parameters" section."""
    from lifelong.model.config import LearnerConfig

    defaults = LearnerConfig().to_dict()
    section = inspect.getdoc(LearnerConfig).split("----------\n", 1)[1]
    rows: list[tuple[str, str, str]] = []
    for line in section.splitlines():
        if line and not line.startswith(" "):  # "name, name": the keys one description covers
            names = [n.strip() for n in line.split(",")]
            rows.append((names, []))
        elif line.strip() and rows:
            rows[-1][1].append(line.strip())
    return [
        (
            ", ".join(f"`{n}`" for n in names),
            ", ".join(f"`{_toml_value(defaults[n])}`" for n in names),
            " ".join(text).replace("|", "\\|"),  # a table cell
        )
        for names, text in rows
    ]
