"""AdminService through the real client and server: pause and resume, checkpoints listed, roll
back, reset, freeze and unfreeze a torch module's submodules; each logged with who asked and
counted. (Roll back on a real broker:
tests/integration/test_admin_kafka.py.)"""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path

import grpc
import pytest
import torch
from lifelong.checkpoint import CheckpointStore
from lifelong.client import LifelongClient, LifelongError
from lifelong.host import ModelHost
from lifelong.model import load, torch_module_learner
from lifelong.samples import Sample
from lifelong.v1 import lifelong_pb2 as pb
from testsupport import line_sample, small_learner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))


def samples(n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    return [Sample(x, None, y) for x, y in (line_sample(rng) for _ in range(n))]


@pytest.fixture
def admin(serve, tmp_path):
    store = CheckpointStore(tmp_path / "ckpt", keep=5)
    host = ModelHost(
        small_learner(), checkpoints=store, refresh_every_samples=1, fresh=small_learner
    )
    served = serve(host)
    with LifelongClient(served.target) as client:
        client.target = served.target  # for the CLI test
        yield host, client


def action_count(host: ModelHost, action: str) -> float:
    labels = {"action": action}
    return host.metrics.registry.get_sample_value("lifelong_admin_actions_total", labels)


def test_pause_stops_learning_not_predictions_and_resume_brings_it_back(admin, caplog):
    host, client = admin
    host.learn(samples(20), source="grpc")
    with caplog.at_level(logging.WARNING, logger="lifelong.serving.model"):
        state = client.pause_learning()
    assert state.paused and state.samples_learned == 20
    assert "learning paused by from ipv4:127.0.0.1" in caplog.text
    assert host.metrics.registry.get_sample_value("lifelong_learning_paused") == 1
    with pytest.raises(LifelongError) as refused:
        client.learn({"x0": 1.0, "x1": 0.0}, "above")
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "paused by an operator" in str(refused.value)
    assert client.predict({"x0": 1.0}).model_version == 20  # predictions go on
    assert not client.resume_learning().paused
    client.learn({"x0": 1.0, "x1": 0.0}, "above")
    assert host.samples_learned == 21
    assert (action_count(host, "pause"), action_count(host, "resume")) == (1, 1)


def test_checkpoints_are_listed_newest_first(admin):
    host, client = admin
    host.learn(samples(10), source="kafka", offsets={"t:0": 10})
    client.checkpoint()
    host.learn(samples(5, seed=1), source="kafka", offsets={"t:0": 15})
    client.checkpoint()
    listed = client.list_checkpoints()
    assert [(c.sequence, c.samples_learned, c.offsets) for c in listed] == [
        (2, 15, {"t:0": 15}),
        (1, 10, {"t:0": 10}),
    ]
    assert listed[0].created >= listed[1].created > 0
    assert action_count(host, "checkpoint") == 2


def test_roll_back_serves_the_checkpoints_model_and_saves_it_as_the_newest(admin):
    host, client = admin
    host.learn(samples(10), source="kafka", offsets={"t:0": 10})
    first = host.checkpoint()
    host.learn(samples(30, seed=1), source="kafka", offsets={"t:0": 40})
    host.checkpoint()
    replaced = client.roll_back(first.sequence)
    assert replaced.samples_learned == 10 and host.offsets == {"t:0": 10}
    assert client.predict({"x0": 0.5, "x1": 0.5}).model_version == 10
    newest = host.checkpoints.load_latest()  # what a restart resumes from
    assert replaced.checkpoint.sequence == newest.sequence == 3
    assert newest.offsets == {"t:0": 10}
    assert newest.learner_state == host.checkpoints.load(first.sequence).learner_state
    assert load(newest.learner_state).samples_learned == 10
    assert action_count(host, "roll_back") == 1


def test_an_unknown_checkpoint_is_not_found_and_says_which_exist(admin):
    host, client = admin
    host.learn(samples(3), source="grpc")
    host.checkpoint()
    with pytest.raises(LifelongError) as refused:
        client.roll_back(7)
    assert refused.value.code == grpc.StatusCode.NOT_FOUND
    assert "no intact checkpoint 7; the server has [1]" in str(refused.value)


def test_reset_starts_a_fresh_model_where_the_streams_are(admin):
    host, client = admin
    host.learn(samples(25), source="kafka", offsets={"t:0": 25})
    replaced = client.reset_model()
    assert replaced.samples_learned == 0 and host.samples_learned == 0
    assert host.offsets == {"t:0": 25}  # the stream goes on from where it was
    assert load(host.checkpoints.load_latest().learner_state).samples_learned == 0
    with pytest.raises(LifelongError) as not_ready:
        client.predict({"x0": 1.0})
    assert not_ready.value.code == grpc.StatusCode.FAILED_PRECONDITION
    host.learn(samples(5), source="grpc")
    assert client.predict({"x0": 1.0}).model_version == 5


def test_a_batch_read_before_a_replacement_is_not_learned(admin):
    host, _ = admin
    epoch = host.learning.epoch
    host.reset()
    assert host.learn(samples(5), source="kafka", offsets={"t:0": 5}, epoch=epoch) == 0
    assert host.offsets == {} and host.samples_learned == 0


def test_the_cli_speaks_for_the_operator(admin, capsys):
    from lifelong import cli

    host, client = admin
    with pytest.raises(SystemExit) as done:
        cli.main(["admin", "pause", "--target", client.target])
    assert done.value.code == 0 and host.paused
    assert '"paused": true' in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        cli.main(["admin", "rollback", "--target", client.target])
    assert "rollback needs the checkpoint's sequence" in str(done.value.code)


def torch_learner():
    """The examples' MLP as a torch module learner: submodules "0" (first Linear), "2", "4"."""
    config = {"features": ("x0", "x1"), "optimizer": "adam", "lr": 0.01}
    return torch_module_learner(
        "torch_models:mlp", "classification", config, {"n_inputs": 2, "n_outputs": 2,
                                                        "hidden": (8, 8)}
    )  # fmt: skip


def weights(host: ModelHost, name: str):
    return host.learning.read(lambda learner: learner.module.get_submodule(name).weight.clone())


def test_freeze_and_unfreeze_a_torch_modules_submodules_at_run_time(serve, tmp_path, caplog):
    store = CheckpointStore(tmp_path / "ckpt", keep=5)
    host = ModelHost(torch_learner(), checkpoints=store, refresh_every_samples=1)
    with LifelongClient(serve(host).target) as client:
        host.learn(samples(20), source="kafka", offsets={"t:0": 20})
        with caplog.at_level(logging.WARNING, logger="lifelong.serving.model"):
            answer = client.freeze_submodules(["0", "2"])
        assert answer.frozen == ("0", "2") and answer.samples_learned == 20
        assert "freeze 0, 2 by from ipv4:127.0.0.1" in caplog.text
        # saved at once: a restart resumes from this checkpoint, frozen as it was
        newest = store.load_latest()
        assert answer.checkpoint.sequence == newest.sequence and newest.offsets == {"t:0": 20}
        restarted = load(newest.learner_state)
        assert restarted.frozen == ("0", "2")
        assert (
            not restarted.module[0].weight.requires_grad
            and restarted.module[4].weight.requires_grad
        )
        first, last = weights(host, "0"), weights(host, "4")
        host.learn(samples(30, seed=1), source="grpc")
        assert torch.equal(weights(host, "0"), first)  # frozen: not learned
        assert not torch.equal(weights(host, "4"), last)  # the head learns
        answer = client.unfreeze_submodules(["0"])
        assert answer.frozen == ("2",) and answer.samples_learned == 50
        assert load(store.load_latest().learner_state).frozen == ("2",)
        host.learn(samples(30, seed=2), source="grpc")
        assert not torch.equal(weights(host, "0"), first)  # learns again
    assert (action_count(host, "freeze"), action_count(host, "unfreeze")) == (1, 1)


def test_freezing_an_unknown_name_changes_nothing(serve, tmp_path):
    host = ModelHost(torch_learner(), checkpoints=CheckpointStore(tmp_path / "ckpt"))
    served = serve(host)
    with LifelongClient(served.target) as client:
        with pytest.raises(LifelongError) as refused:
            client.freeze_submodules(["0", "backbone"])
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "the module has no submodule or parameter named 'backbone'" in str(refused.value)
        assert host.learning.read(lambda learner: learner.frozen) == ()  # "0" was not frozen
        assert host.checkpoints.load_latest() is None and action_count(host, "freeze") == 0
        with pytest.raises(grpc.RpcError) as empty:  # the stub: past the client's own check
            served.admin.FreezeSubmodules(pb.FreezeSubmodulesRequest())
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert empty.value.details() == "name the submodules to freeze"
        with pytest.raises(ValueError, match="non-empty list"):
            client.freeze_submodules("0")


def test_only_a_torch_module_has_submodules_to_freeze(admin):
    _, client = admin
    with pytest.raises(LifelongError) as refused:
        client.unfreeze_submodules(["0"])
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        "only a torch module's submodules can be frozen or unfrozen; this server's model is a "
        "LifelongClassifier" in str(refused.value)
    )


def test_the_cli_freezes_and_unfreezes(serve, tmp_path, capsys):
    from lifelong import cli

    host = ModelHost(torch_learner())
    target = serve(host).target
    with pytest.raises(SystemExit) as done:
        cli.main(["admin", "freeze", "0", "2", "--target", target])
    assert done.value.code == 0 and host.learning.read(lambda learner: learner.frozen) == ("0", "2")
    assert '"frozen": [' in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        cli.main(["admin", "unfreeze", "--target", target])
    assert "unfreeze needs the submodules' names" in str(done.value.code)
    with pytest.raises(SystemExit) as done:
        cli.main(["admin", "pause", "0", "--target", target])
    assert "pause takes no arguments" in str(done.value.code)
