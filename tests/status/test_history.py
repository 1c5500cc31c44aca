"""The status page's ring: bounded, incremental by sequence number, events where counters grow."""

from lifelong.status import History, Rate


def test_keeps_the_newest_capacity_readings():
    history = History(capacity=3)
    for i in range(10):
        history.record({"x": i}, at=float(i))
    kept = history.since(0)
    assert kept["seq"] == 10
    assert kept["time"] == [7.0, 8.0, 9.0]
    assert kept["series"] == {"x": [7, 8, 9]}


def test_since_returns_only_what_followed():
    history = History(capacity=100)
    for i in range(5):
        history.record({"x": i}, at=float(i))
    assert history.since(3)["series"] == {"x": [3, 4]}
    newest = history.since(5)
    assert (newest["seq"], newest["time"], newest["series"]) == (5, [], {})


def test_a_series_missing_from_some_readings_has_gaps():
    history = History(capacity=10)
    history.record({"x": 1}, at=1.0)
    history.record({"x": 2, "y": 5}, at=2.0)
    assert history.since(0)["series"] == {"x": [1, 2], "y": [None, 5]}


def test_events_where_a_marked_counter_grows():
    history = History(capacity=10, markers={"drifts": "drift", "halted": "halted"})
    readings = [(0, 0), (0, 0), (1, 0), (1, 0), (3, 1)]  # (drifts, halted)
    for t, (drifts, halted) in enumerate(readings):
        history.record({"drifts": drifts, "halted": halted, "other": t}, at=float(t))
    events = [(e["time"], e["kind"]) for e in history.since(0)["events"]]
    assert events == [(2.0, "drift"), (4.0, "drift"), (4.0, "halted")]
    assert [e["kind"] for e in history.since(3)["events"]] == ["drift", "halted"]


def test_events_are_bounded_too():
    history = History(capacity=2, markers={"n": "tick"})
    for i in range(50):
        history.record({"n": i}, at=float(i))
    assert [e["time"] for e in history.since(0)["events"]] == [48.0, 49.0]


def test_rate_per_second_between_updates():
    times = iter([10.0, 10.5, 12.5, 12.5])
    rate = Rate(clock=lambda: next(times))
    assert rate.update(100) == 0.0  # nothing to compare with
    assert rate.update(150) == 100.0
    assert rate.update(150) == 0.0
    assert rate.update(170) == 0.0  # no time passed: no rate rather than infinity
