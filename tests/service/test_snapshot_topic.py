"""The snapshot topic's format without a broker: chunks, manifest, digest, refusals (the
broker: tests/integration/test_snapshot_topic.py)."""

import json

import pytest
from lifelong.snapshot_topic import MANIFEST_HEADER, Assembler, Refused, encode


def records(payload: bytes, chunk_bytes: int = 4, **fields):
    fields = {"model": "m", "task": "classification", "version": 7, **fields}
    return encode(payload, chunk_bytes=chunk_bytes, **fields)


def assemble(assembler: Assembler, rs):
    out = [assembler.add(*r) for r in rs]
    assert all(o is None for o in out[:-1])
    return out[-1]


def test_small_snapshots_are_one_record_and_large_ones_chunks_in_order():
    (single,) = records(b"abc", chunk_bytes=8)
    assert single[0] == b"manifest" and single[1] == b"abc"
    rs = records(bytes(range(10)), chunk_bytes=4)
    assert [len(value) for _, value, _ in rs] == [4, 4, 2, 0]
    assembled = assemble(Assembler(model="m", task="classification"), rs)
    assert assembled.payload == bytes(range(10)) and assembled.manifest.version == 7


def test_a_chunk_of_another_publication_or_a_wrong_digest_is_refused_and_the_next_is_taken():
    assembler = Assembler(model="m", task="classification")
    first, second = records(b"x" * 10), records(b"y" * 10)
    for r in first[:-1]:
        assembler.add(*r)
    assembler.add(*second[1])  # chunk 1 replaced by the next publication's
    with pytest.raises(Refused) as refused:
        assembler.add(*first[-1])
    assert refused.value.reason == "incomplete"

    key, value, [(name, header)] = records(b"z" * 3, chunk_bytes=8)[0]
    tampered = json.loads(header) | {"sha256": "0" * 64}
    with pytest.raises(Refused, match="SHA-256") as refused:
        assembler.add(key, value, [(name, json.dumps(tampered).encode())])
    assert refused.value.reason == "digest"
    assert assemble(assembler, second).payload == b"y" * 10  # still takes the next


@pytest.mark.parametrize(
    ("fields", "reason"),
    [({"model": "other"}, "foreign"), ({"task": "regression"}, "foreign")],
)
def test_a_foreign_snapshot_is_refused(fields, reason):
    with pytest.raises(Refused) as refused:
        assemble(Assembler(model="m", task="classification"), records(b"abc", **fields))
    assert refused.value.reason == reason


def test_a_manifest_that_is_not_one_is_refused():
    assembler = Assembler(model="m", task="classification")
    with pytest.raises(Refused) as refused:
        assembler.add(b"manifest", b"", [(MANIFEST_HEADER, b"{not json")])
    assert refused.value.reason == "malformed"
    assert assembler.add(b"something-else", b"", []) is None  # not the topic's: ignored
