"""Roles on a real server (over TLS, with real certificates): every method with a token of each
role, without a token and with an unknown one, and what the refusals say; health and reflection
without a token; open predictions; the prediction replica under the same rules."""

from __future__ import annotations

import random
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from lifelong.auth import token_hash
from lifelong.checkpoint import CheckpointStore
from lifelong.config import ConfigError, Settings
from lifelong.host import ModelHost
from lifelong.replica import Replica
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc
from testsupport import CertificateAuthority, Served, line_sample, sample_proto, small_learner

TOKENS = {"predict": "p-token", "learn": "l-token", "admin": "a-token"}
EVERY_ROLE = "all-token"
FEATURES = pb.Features(named={"x0": 0.2, "x1": 0.7})
UNAUTHENTICATED, PERMISSION_DENIED = (
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
)

# method -> (the role it needs, a call of it on `Served` with metadata)
CALLS: dict[str, tuple[str, Callable]] = {
    "PredictionService/Predict": (
        "predict",
        lambda s, md: s.predictions.Predict(pb.PredictRequest(features=FEATURES), metadata=md),
    ),
    "PredictionService/PredictBatch": (
        "predict",
        lambda s, md: s.predictions.PredictBatch(
            pb.PredictBatchRequest(examples=[FEATURES]), metadata=md
        ),
    ),
    "PredictionService/PredictStream": (
        "predict",
        lambda s, md: list(
            s.predictions.PredictStream(
                iter([pb.PredictStreamRequest(request_id=1, examples=[FEATURES])]), metadata=md
            )
        ),
    ),
    "ModelService/GetModelInfo": (
        "predict",
        lambda s, md: s.model.GetModelInfo(pb.GetModelInfoRequest(), metadata=md),
    ),
    "ModelService/GetPlasticityStats": (
        "predict",
        lambda s, md: s.model.GetPlasticityStats(pb.GetPlasticityStatsRequest(), metadata=md),
    ),
    "LearningService/Learn": (
        "learn",
        lambda s, md: s.learning.Learn(
            pb.LearnRequest(sample=sample_proto({"x0": 0.1, "x1": 0.1}, "above")), metadata=md
        ),
    ),
    "LearningService/LearnStream": (
        "learn",
        lambda s, md: s.learning.LearnStream(
            iter([pb.LearnStreamRequest(sample=sample_proto({"x0": 0.1, "x1": -0.9}, "below"))]),
            metadata=md,
        ),
    ),
    "AdminService/Checkpoint": (
        "admin",
        lambda s, md: s.admin.Checkpoint(pb.CheckpointRequest(), metadata=md),
    ),
    "AdminService/ListCheckpoints": (
        "admin",
        lambda s, md: s.admin.ListCheckpoints(pb.ListCheckpointsRequest(), metadata=md),
    ),
    # Last, paused then resumed: the calls above learn.
    "AdminService/PauseLearning": (
        "admin",
        lambda s, md: s.admin.PauseLearning(pb.PauseLearningRequest(), metadata=md),
    ),
    "AdminService/ResumeLearning": (
        "admin",
        lambda s, md: s.admin.ResumeLearning(pb.ResumeLearningRequest(), metadata=md),
    ),
}


def test_every_method_of_the_api_has_a_role():
    from lifelong.auth import METHOD_ROLES

    methods = {
        f"/{service.full_name}/{method.name}"
        for service in pb.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert methods == set(METHOD_ROLES)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def token_file(path, extra: str = "") -> str:
    lines = [f"{role} {token_hash(token)}" for role, token in TOKENS.items()]
    lines.append(f"predict,learn,admin {token_hash(EVERY_ROLE)}  # operators")
    path.write_text("# roles  sha256 of the token\n" + "\n".join(lines) + "\n" + extra)
    return path


@pytest.fixture
def tls(tmp_path) -> tuple[CertificateAuthority, dict]:
    ca = CertificateAuthority(tmp_path)
    cert, key = ca.issue("localhost")
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_file.read_bytes())
    return ca, {"credentials": credentials, "tls_cert_file": cert, "tls_key_file": key}


@pytest.fixture
def served(serve, tls, tmp_path) -> Served:
    """A TLS server with tokens, a checkpoint directory and a model that has learned."""
    host = ModelHost(
        small_learner(), checkpoints=CheckpointStore(tmp_path / "ckpt"), refresh_every_samples=1
    )
    served = serve(host, auth_tokens_file=token_file(tmp_path / "tokens"), **tls[1])
    rng = random.Random(0)
    for x, y in (line_sample(rng) for _ in range(20)):
        served.learning.Learn(
            pb.LearnRequest(sample=sample_proto(x, y)), metadata=bearer("l-token")
        )
    return served


def code_of(call: Callable, served: Served, metadata) -> tuple[grpc.StatusCode, str]:
    try:
        call(served, metadata)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("role", [*TOKENS, "every role"])
def test_each_role_calls_its_methods_and_is_refused_the_others(served, role):
    token = TOKENS.get(role, EVERY_ROLE)
    for method, (needs, call) in CALLS.items():
        code, details = code_of(call, served, bearer(token))
        if role in (needs, "every role"):
            assert code == grpc.StatusCode.OK, (method, details)
        else:
            assert code == PERMISSION_DENIED, method
            assert (
                details == f"lifelong.v1.{method} needs the role '{needs}'; this token has: {role}"
            )


def test_no_token_or_an_unknown_one_is_unauthenticated(served):
    for method, (needs, call) in CALLS.items():
        code, details = code_of(call, served, None)
        assert code == UNAUTHENTICATED, method
        assert details == (
            f"lifelong.v1.{method} needs a bearer token with the role '{needs}': send the "
            "metadata 'authorization: Bearer <token>' (lifelong CLI: --token or LIFELONG_TOKEN)"
        )
        code, details = code_of(call, served, bearer("guessed"))
        assert code == UNAUTHENTICATED
        assert details == f"lifelong.v1.{method}: the bearer token is not one this server knows"
        # a token in another scheme is no bearer token
        code, _ = code_of(call, served, (("authorization", "Basic " + TOKENS[needs]),))
        assert code == UNAUTHENTICATED


def test_refused_calls_change_nothing(served):
    before = served.host.samples_learned
    for token in (None, "guessed", "p-token", "a-token"):
        code, _ = code_of(CALLS["LearningService/LearnStream"][1], served, token and bearer(token))
        assert code in (UNAUTHENTICATED, PERMISSION_DENIED)
    assert served.host.samples_learned == before
    assert served.host.checkpoints.load_latest() is None  # nobody but admin checkpointed


def test_health_and_reflection_need_no_token(served):
    check = served.health.Check(health_pb2.HealthCheckRequest())
    assert check.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (answer,) = list(stub.ServerReflectionInfo(iter([request])))
    names = {s.name for s in answer.list_services_response.service}
    assert "lifelong.v1.LearningService" in names


def test_reflection_can_be_switched_off(serve):
    served = serve(grpc_reflection=False)
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with pytest.raises(grpc.RpcError) as failure:
        list(stub.ServerReflectionInfo(iter([request])))
    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_open_predictions_leave_learning_and_admin_closed(serve, tls, tmp_path):
    served = serve(
        auth_tokens=f"learn {token_hash('l-token')}; admin {token_hash('a-token')}",
        auth_open_predict=True,
        **tls[1],
    )
    served.learning.Learn(
        pb.LearnRequest(sample=sample_proto({"x0": 0.5, "x1": 0.5}, "above")),
        metadata=bearer("l-token"),
    )
    for method, (needs, call) in CALLS.items():
        code, details = code_of(call, served, None)
        if needs == "predict":
            assert code == grpc.StatusCode.OK, (method, details)
        else:
            assert code == UNAUTHENTICATED, method
    # the learn token predicts too: predictions are open to all
    assert code_of(CALLS["PredictionService/Predict"][1], served, bearer("l-token"))[0] == (
        grpc.StatusCode.OK
    )


def test_bad_token_tables_fail_at_start_saying_what_is_wrong(serve, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown role\(s\) superuser"):
        serve(auth_tokens=f"superuser {token_hash('x')}")
    with pytest.raises(ConfigError, match=r"is not a SHA-256 hex digest .* never tokens"):
        serve(auth_tokens="predict my-plain-token")
    with pytest.raises(ConfigError, match=r"auth_tokens_file: .*No such file"):
        serve(auth_tokens_file=tmp_path / "absent")
    with pytest.raises(ConfigError, match="auth_open_predict opens predictions"):
        Settings(auth_open_predict=True)
    with pytest.raises(ConfigError, match="exclude each other"):
        Settings(auth_disabled=True, auth_tokens=f"predict {token_hash('x')}")


def test_the_prediction_replica_has_the_same_tls_and_roles(tls, tmp_path):
    from lifelong import snapshot_file

    learner = small_learner()
    rng = random.Random(1)
    for x, y in (line_sample(rng) for _ in range(20)):
        learner.learn_one(x, y)
    path = tmp_path / "snapshot.safetensors"
    snapshot_file.write(path, learner.snapshot())
    credentials, tls_settings = (
        tls[1]["credentials"],
        {k: v for k, v in tls[1].items() if k != "credentials"},
    )
    settings = Settings(
        grpc_address="127.0.0.1:0",
        metrics_port=0,
        snapshot_file=path,
        auth_tokens_file=token_file(tmp_path / "tokens"),
        **tls_settings,
    )
    replica = Replica(settings)
    replica.start()
    try:
        target = f"127.0.0.1:{replica.grpc.port}"
        with grpc.secure_channel(target, credentials) as channel:
            stub = pb_grpc.PredictionServiceStub(channel)
            request = pb.PredictRequest(features=FEATURES)
            answer = stub.Predict(request, metadata=bearer("p-token"))
            assert answer.model_version == 20
            with pytest.raises(grpc.RpcError) as failure:
                stub.Predict(request, metadata=bearer("l-token"))
            assert failure.value.code() == PERMISSION_DENIED
            with pytest.raises(grpc.RpcError) as failure:
                stub.Predict(request)
            assert failure.value.code() == UNAUTHENTICATED
        with grpc.insecure_channel(target) as plaintext:
            with pytest.raises(grpc.RpcError) as failure:
                pb_grpc.PredictionServiceStub(plaintext).Predict(request, timeout=10)
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        replica.stop(0)


@pytest.mark.parametrize("method", ["FreezeSubmodules", "UnfreezeSubmodules"])
def test_freezing_submodules_needs_admin(served, method):
    request = getattr(pb, f"{method}Request")(names=["0"])
    call = getattr(served.admin, method)
    for role in ("predict", "learn"):
        code, details = code_of(
            lambda s, md: call(request, metadata=md), served, bearer(TOKENS[role])
        )
        assert code == PERMISSION_DENIED
        assert (
            details
            == f"lifelong.v1.AdminService/{method} needs the role 'admin'; this token has: {role}"
        )
    # admin passes the check and reaches the servicer, which says this model has no submodules
    code, details = code_of(lambda s, md: call(request, metadata=md), served, bearer("a-token"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "only a torch module's submodules" in details
