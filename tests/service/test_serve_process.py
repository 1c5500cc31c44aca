"""`lifelong serve` as a process: the demo stream, health, JSON logs, SIGTERM, resuming; and
the `predict` and `stats` commands against a server."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lifelong.checkpoint import CheckpointStore
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc
from testsupport import free_port, line_sample

SERVING = health_pb2.HealthCheckResponse.SERVING


def lifelong(*args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELONG_")}
    return subprocess.Popen([sys.executable, "-m", "lifelong", *args], env=env, text=True, **kwargs)


def wait_serving(channel: grpc.Channel, process: subprocess.Popen, timeout: float = 120) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"lifelong serve exited with {process.returncode}"
        try:
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
            if status == SERVING:
                return
        except grpc.RpcError:
            time.sleep(0.2)
    raise TimeoutError("lifelong serve did not become SERVING")


def samples_learned(channel: grpc.Channel) -> int:
    info = pb_grpc.ModelServiceStub(channel).GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
    return info.samples_learned


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_0_then_a_restart_resumes(tmp_path):
    port = free_port()
    args = ["serve", "--demo", "--demo-rate", "2000", "--checkpoint-dir", str(tmp_path)]
    args += ["--grpc-address", f"127.0.0.1:{port}", "--metrics-port", str(free_port())]
    args += ["--log-format", "json", "--learner", '{"hidden": [16]}']
    process = lifelong(*args, stderr=subprocess.PIPE)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_serving(channel, process)
            deadline = time.monotonic() + 60
            while (learned := samples_learned(channel)) < 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert learned >= 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr

    logs = [json.loads(line) for line in stderr.splitlines()]  # every line is a JSON object
    messages = [entry["message"] for entry in logs]
    assert any(f"gRPC listening on 127.0.0.1:{port}" in m for m in messages), messages
    assert any("/metrics" in m for m in messages), messages
    assert any(m.startswith("SIGTERM") for m in messages), messages
    checkpoint = CheckpointStore(tmp_path).load_latest()
    assert checkpoint is not None and checkpoint.samples_learned >= learned

    # A restart resumes from that checkpoint: it reports at least as many samples learned.
    port = free_port()
    args = ["serve", "--checkpoint-dir", str(tmp_path), "--grpc-address", f"127.0.0.1:{port}"]
    process = lifelong(*args, "--metrics-port", "0", stderr=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_serving(channel, process)
            assert samples_learned(channel) == checkpoint.samples_learned
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()


def test_predict_and_stats_commands(serve):
    served = serve()
    target = ["--target", served.target]
    command = [sys.executable, "-m", "lifelong", "predict", *target, "--features", '{"x0": 1}']
    before = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert before.returncode == 1
    assert "FAILED_PRECONDITION" in before.stderr and "learned nothing" in before.stderr

    rng = random.Random(0)
    served.learn(line_sample(rng) for _ in range(20))
    after = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr
    prediction = json.loads(after.stdout)
    assert prediction["model_version"] == 20
    assert prediction["label"] in ("above", "below")

    stats = [sys.executable, "-m", "lifelong", "stats", *target]
    result = subprocess.run(stats, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["samples_learned"] == 20
