"""The learn loop without a broker: a scripted consumer hands over polls and a rebalance the way
librdkafka's would (the real thing: tests/integration)."""

import random
import threading

from confluent_kafka import Message, TopicPartition
from lifelong.config import Settings
from lifelong.host import ModelHost
from lifelong.ingest.codecs import encode_json
from lifelong.ingest.consumer import KafkaSource
from testsupport import line_sample, small_learner


class ScriptedConsumer:
    """`consume` returns the scripted polls in turn, running a rebalance (`on_assign`) where
    the script says "assign"; then it sets `done`."""

    def __init__(self, script: list, done: threading.Event) -> None:
        self.script = script
        self.done = done
        self.source: KafkaSource | None = None
        self.started_at: list[int] = []  # the offset each assignment started partition 0 at

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if not self.script:
            self.done.set()
            return []
        step = self.script.pop(0)
        if step == "assign":
            self.source.on_assign(self, [TopicPartition("t", 0)])
            return []
        return step

    def assign(self, assigned: list[TopicPartition]) -> None:
        self.started_at += [tp.offset for tp in assigned]

    def assignment(self) -> list[TopicPartition]:
        return []  # no lag to report


def records(start: int, stop: int) -> list[Message]:
    rng = random.Random(0)
    samples = [line_sample(rng) for _ in range(stop)]
    return [
        Message(topic="t", partition=0, offset=i, value=encode_json(*samples[i]))
        for i in range(start, stop)
    ]


def test_a_rebalance_resumes_after_what_was_read_and_nothing_is_learned_twice():
    host = ModelHost(small_learner(), offsets={"t:0": 5})
    done = threading.Event()
    # Records 5..9 are read and learned; the partition is assigned again and must resume at
    # 10, yet a fetch in flight still brings 8..12.
    consumer = ScriptedConsumer(["assign", records(5, 10), "assign", records(8, 13)], done)
    source = KafkaSource(host, Settings(kafka_topic="t"), consumer, dead_letters=None)
    consumer.source = source

    while not done.is_set():
        source.step()
    assert consumer.started_at == [5, 10]
    assert host.offsets == {"t:0": 13}
    assert host.samples_learned == 8  # 5..12, each once
