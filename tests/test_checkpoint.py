import logging

import pytest
from lifelong.checkpoint import HEADER, CheckpointStore


@pytest.fixture
def store(tmp_path):
    return CheckpointStore(tmp_path, keep=3)


def test_round_trip(store):
    state = bytes(range(256)) * 10
    path = store.save(state, {"samples:0": 10, "samples:1": 7}, samples_learned=17)
    checkpoint = store.load_latest()
    assert checkpoint.path == path
    assert checkpoint.learner_state == state
    assert checkpoint.offsets == {"samples:0": 10, "samples:1": 7}
    assert checkpoint.samples_learned == 17
    assert checkpoint.created > 0


def test_empty_directory_has_no_checkpoint(store):
    assert store.load_latest() is None


def test_newest_wins(store):
    for n in range(1, 4):
        store.save(b"state %d" % n, {"t:0": n}, samples_learned=n)
    assert store.load_latest().samples_learned == 3


def test_sequence_survives_a_new_store(tmp_path):
    CheckpointStore(tmp_path).save(b"a", {}, samples_learned=1)
    CheckpointStore(tmp_path).save(b"b", {}, samples_learned=2)
    assert CheckpointStore(tmp_path).load_latest().learner_state == b"b"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) - 5], id="truncated payload"),
        pytest.param(lambda data: data[: HEADER.size - 1], id="truncated header"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 1]), id="flipped payload bit"),
        pytest.param(
            lambda data: data[: HEADER.size + 2] + b"X" + data[HEADER.size + 3 :],
            id="altered metadata",
        ),
        pytest.param(lambda data: b"NOTMAGIC" + data[8:], id="bad magic"),
        pytest.param(lambda data: data + b"extra", id="trailing bytes"),
    ],
)
def test_damaged_newest_falls_back_to_the_previous(store, damage, caplog):
    store.save(b"good", {"t:0": 1}, samples_learned=1)
    newest = store.save(b"newer", {"t:0": 2}, samples_learned=2)
    newest.write_bytes(damage(newest.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="lifelong.checkpoint"):
        checkpoint = store.load_latest()
    assert checkpoint.learner_state == b"good"
    assert newest.name in caplog.text


def test_unsupported_version_is_skipped(store):
    store.save(b"good", {}, samples_learned=1)
    newest = store.save(b"newer", {}, samples_learned=2)
    data = bytearray(newest.read_bytes())
    data[8:10] = (99).to_bytes(2, "big")
    newest.write_bytes(bytes(data))
    assert store.load_latest().learner_state == b"good"


def test_all_damaged_means_none(store):
    store.save(b"state", {}, samples_learned=1).write_bytes(b"garbage")
    assert store.load_latest() is None


def test_partial_temp_files_are_ignored_then_cleaned(store, tmp_path):
    store.save(b"good", {"t:0": 5}, samples_learned=5)
    leftover = tmp_path / ".checkpoint-abc.tmp"
    leftover.write_bytes(b"LLCKPT\r\n half written")  # a writer killed mid-write
    assert store.load_latest().learner_state == b"good"
    store.save(b"next", {"t:0": 6}, samples_learned=6)
    assert not leftover.exists()
    assert store.load_latest().learner_state == b"next"


def test_unrelated_files_are_ignored(store, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "checkpoint-1.ckpt").write_bytes(b"not ours")
    assert store.load_latest() is None
    store.save(b"state", {}, samples_learned=1)
    assert store.load_latest().learner_state == b"state"
    assert (tmp_path / "notes.txt").exists()


def test_retention_keeps_the_newest(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    paths = [store.save(b"s%d" % n, {}, samples_learned=n) for n in range(5)]
    assert sorted(tmp_path.iterdir()) == paths[-2:]
    assert store.load_latest().samples_learned == 4


def test_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        CheckpointStore(tmp_path, keep=0)
