from confluent_kafka import Message
from lifelong.ingest.deadletter import MAX_MESSAGE_CHARS, error_headers
from lifelong.samples import InvalidSample


def test_error_headers_keep_the_originals_and_replace_stale_errors():
    record = Message(
        topic="samples", partition=3, offset=42, key=b"k", value=b"v",
        headers=[("content-type", b"application/json"), ("lifelong-error-reason", b"old")],
    )  # fmt: skip
    headers = error_headers(record, InvalidSample("non_finite", "x" * 5000))
    assert headers[0] == ("content-type", b"application/json")
    named = dict(headers)
    assert named["lifelong-error-reason"] == b"non_finite"
    assert len(named["lifelong-error-message"]) == MAX_MESSAGE_CHARS
    assert named["lifelong-source-topic"] == b"samples"
    assert named["lifelong-source-partition"] == b"3"
    assert named["lifelong-source-offset"] == b"42"
    assert [k for k, _ in headers].count("lifelong-error-reason") == 1
