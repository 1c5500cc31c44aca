"""Standbys and fencing on the real broker: `lifelong serve --kafka-standby` processes of one
model, the test learner `recording:RecordingLearner` recording every sample's id.

- An active learner SIGKILLed (several times, alternately) while records are produced and 3
  prediction replicas follow the snapshot topic, asked by a client throughout: a standby takes
  over, the replicas never fail a call, and the model ends with every sample learned exactly
  once (no loss, no duplicate); each takeover's time is printed (benchmarks/kafka/README.md).
- A zombie: the active learner SIGSTOPped until a standby took over, then SIGCONTed: it commits
  nothing more (fenced, or told by the group first), steps down, and the final state is the new
  active's.

The bounds asserted follow from the configured session timeout; nothing else depends on timing.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
import time

import grpc
import pytest
from confluent_kafka import Producer
from lifelong.checkpoint_topic import TopicCheckpoints
from lifelong.client import LifelongError
from lifelong.config import Settings
from lifelong.ingest.codecs import encode_json
from lifelong.model import load
from testsupport import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 3
REPLICAS = 3
# SIGKILLs of the active learner (issue 15 asks for 10; each restart of a process costs tens of
# seconds on the shared 2-core machine, so fewer by default).
KILLS = int(os.environ.get("LIFELONG_TAKEOVER_KILLS", "4"))
SESSION = 6.0  # the broker's smallest (group.min.session.timeout.ms)


class Predictions:
    """A client asking the replicas in turn, in a thread, until `stop()`: (answered, errors)."""

    def __init__(self, replicas) -> None:
        self.replicas, self.answered, self.errors = replicas, 0, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for r in itertools.cycle(self.replicas):
            if self.done.wait(0.02):
                return
            try:
                r.client.predict({"id": 0.0, "x": 0.5})
                self.answered += 1
            except LifelongError as e:
                self.errors.append(str(e))
            except ValueError:  # its channel closed: the test ended
                return

    def stop(self) -> tuple[int, list[str]]:
        self.done.set()
        self.thread.join()
        return self.answered, self.errors


class Stream:
    """Records with unique ids, spread over the partitions, produced on demand."""

    def __init__(self, bootstrap: str, topic: str, n: int) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        self.topic, self.n, self.produced = topic, n, 0
        self.rng = random.Random(4)

    def feed(self, k: int) -> None:
        for i in range(self.produced, min(self.n, self.produced + k)):
            value = encode_json({"id": i, "x": self.rng.uniform(-1, 1)}, self.rng.choice("ab"))
            self.producer.produce(self.topic, value, partition=i % PARTITIONS)
        self.produced = min(self.n, self.produced + k)
        self.producer.flush(10)


def learners(service, topic: str, **settings):
    common = {
        "model": "recording:RecordingLearner",
        "kafka_standby": True,
        "kafka_session_timeout_seconds": SESSION,
        "checkpoint_every_samples": 100,
        "kafka_poll_max_records": 40,
        **settings,
    }
    return [
        service(topic, name=name, kafka_group_instance_id=name, checkpoint_dir=None, **common)
        for name in ("a", "b")
    ]


def roles(pair) -> tuple | None:
    """(active, standby) once one learns and the other waits, else None."""
    waiting = [s.metric("lifelong_learning_waiting") for s in pair]
    for leader, standby, w in ((pair[0], pair[1], waiting[1]), (pair[1], pair[0], waiting[0])):
        if active(leader) and w == 1 and not active(standby):
            return leader, standby
    return None


def active(svc) -> bool:
    return svc.process.poll() is None and svc.metric("lifelong_learner_active") == 1


def final_ids(bootstrap: str, topic: str, group: str) -> tuple[list[int], dict]:
    import recording  # noqa: F401  (registers its kinds)

    settings = Settings(kafka_bootstrap=bootstrap, kafka_topic=topic, kafka_group=group,
                        kafka_standby=True)  # fmt: skip
    checkpoint = TopicCheckpoints(settings, settings.checkpoints_topic).load_latest()
    return load(checkpoint.learner_state).ids, checkpoint.offsets


def assert_exactly_once(ids: list[int], n: int) -> None:
    assert len(ids) == n and sorted(ids) == list(range(n)), (
        f"lost {sorted(set(range(n)) - set(ids))[:10]}, {len(ids) - len(set(ids))} duplicates"
    )
    for p in range(PARTITIONS):
        mine = [i for i in ids if i % PARTITIONS == p]
        assert mine == sorted(mine)


def test_a_standby_takes_over_after_sigkill_and_every_sample_is_learned_once(
    kafka_bootstrap, kafka_topic, service
):
    n = 1000 + 600 * KILLS
    topic = kafka_topic(partitions=PARTITIONS)
    stream = Stream(kafka_bootstrap, topic, n)
    pair = learners(service, topic)
    replicas = [
        service(topic, command="serve-predictions", name=f"replica{i}",
                snapshot_topic=f"{topic}.model", model="recording:RecordingLearner")
        for i in range(REPLICAS)
    ]  # fmt: skip
    for svc in pair + replicas:
        svc.start()
    stream.feed(100)  # something to learn and publish; the rest while killing
    wait_for(lambda: all(r.metric("lifelong_model_version") for r in replicas),
             "the replicas to serve")  # fmt: skip
    client = Predictions(replicas)
    takeovers = []
    for _ in range(KILLS):
        leader, standby = wait_for(lambda: roles(pair), "one active learner, one standby")
        before = leader.samples_learned()
        wait_for(lambda s=leader, b=before: stream.feed(20) or s.samples_learned() > b + 300,
                 "learning")  # fmt: skip
        killed_at = time.monotonic()
        leader.kill()
        wait_for(lambda s=standby: active(s) and s.metric(
            "lifelong_samples_learned_total", source="kafka"), "the standby to learn")  # fmt: skip
        takeovers.append(time.monotonic() - killed_at)
        leader.start()  # back, as a standby
        wait_for(lambda s=leader: s.metric("lifelong_learning_waiting") == 1, "a new standby")
    stream.feed(n)
    (leader,) = [s for s in pair if active(s)]
    leader.wait_learned(n)
    # An operator's checkpoint would bypass the transaction: refused, saying what instead.
    with pytest.raises(LifelongError) as refused:
        leader.client.checkpoint()
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "kafka_standby" in refused.value.details
    for r in replicas:
        wait_for(lambda r=r: r.metric("lifelong_model_version") == n, "replicas at the end")
    answered, errors = client.stop()
    # The replicas never stopped answering while the learners were killed and took over.
    assert answered > 0 and errors == [], errors[:5]
    for svc in pair + replicas:
        assert svc.stop() == 0  # the active one commits a last checkpoint
    ids, offsets = final_ids(kafka_bootstrap, topic, leader.settings["kafka_group"])
    assert_exactly_once(ids, n)
    assert offsets == {f"{topic}:{p}": len(range(p, n, PARTITIONS)) for p in range(PARTITIONS)}
    print(f"\ntakeovers after SIGKILL (kill -> the standby learning): "
          f"{[round(t, 1) for t in takeovers]} s; session timeout {SESSION} s; "
          f"{answered} predictions by {REPLICAS} replicas meanwhile, no error")  # fmt: skip
    # A standby is elected once the dead member's session expires; loading and starting to
    # learn is quick: well within twice the session (the target is 10 s).
    assert max(takeovers) < 2 * SESSION + 10, takeovers


def test_a_zombie_is_fenced_and_steps_down(kafka_bootstrap, kafka_topic, service):
    n = 3000
    topic = kafka_topic(partitions=PARTITIONS)
    stream = Stream(kafka_bootstrap, topic, n)
    # Checkpoints often, so that the zombie, once running again, tries to commit one.
    pair = learners(service, topic, checkpoint_every_samples=20, checkpoint_every_seconds=0.2)
    for svc in pair:
        svc.start()
    zombie, standby = wait_for(lambda: roles(pair), "one active learner, one standby")
    wait_for(lambda: stream.feed(20) or zombie.samples_learned() > 500, "learning")
    zombie.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: stream.feed(10) or active(standby), "the standby to take over")
        wait_for(lambda: stream.feed(10) or standby.samples_learned() > 1500, "it learns")
    finally:
        zombie.process.send_signal(signal.SIGCONT)
    wait_for(lambda: zombie.metric("lifelong_learner_active") == 0, "the zombie to step down")
    log = zombie.log.read_text()
    fenced = zombie.metric("lifelong_fenced_total")
    assert fenced == 1 or "leadership lost" in log, "it stepped down for no reason given"
    stream.feed(n)
    standby.wait_learned(n)
    assert active(standby) and not active(zombie)
    for svc in (standby, zombie):
        assert svc.stop() == 0
    ids, _ = final_ids(kafka_bootstrap, topic, standby.settings["kafka_group"])
    assert_exactly_once(ids, n)  # the new active's state: nothing from the zombie after it
    how = "told by the group" if "leadership lost" in log else "by its transaction"
    print(f"\nzombie: fenced {fenced:.0f} time(s); stepped down {how}")
