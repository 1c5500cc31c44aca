import json
import math
import random

import pytest
from lifelong.model import prequential
from lifelong.model.prequential import PrequentialMonitor

CLASSES = "abcde"


def classification_stream(n, error_rate, seed):
    """(y_true, y_pred, proba) with wrong predictions at `error_rate`."""
    rng = random.Random(seed)
    for _ in range(n):
        y = rng.choice(CLASSES)
        pred = rng.choice(CLASSES.replace(y, "")) if rng.random() < error_rate else y
        yield y, pred, {pred: 0.7, y: 0.3} if pred != y else {y: 0.9}


def regression_stream(n, scale, noise, seed):
    """(y_true, y_pred) with targets of std `scale` and errors of std `noise` · `scale`."""
    rng = random.Random(seed)
    for _ in range(n):
        y = rng.gauss(0, scale)
        yield y, y + rng.gauss(0, noise * scale)


def feed(monitor, stream):
    """Indices of the samples on which the detector fired."""
    return [i for i, sample in enumerate(stream) if monitor.update(*sample)]


def faded(values, a):
    """Gama et al.'s fading-factor average, written as the weighted mean it is."""
    t = len(values) - 1
    weights = [a ** (t - i) for i in range(len(values))]
    return sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)


def test_before_any_sample_everything_is_zero():
    monitor = PrequentialMonitor("regression")
    assert (monitor.score, monitor.loss, monitor.drifts_detected) == (0.0, 0.0, 0)


def test_accuracy_and_log_loss_are_fading_factor_averages():
    monitor = PrequentialMonitor("classification", fading=0.99)
    hits, losses = [], []
    for y, pred, proba in classification_stream(500, error_rate=0.3, seed=0):
        monitor.update(y, pred, proba)
        hits.append(float(y == pred))
        losses.append(-math.log(proba[y]))
    assert monitor.score == pytest.approx(faded(hits, 0.99), rel=1e-12)
    assert monitor.loss == pytest.approx(faded(losses, 0.99), rel=1e-12)


def test_mae_and_squared_error_are_fading_factor_averages():
    monitor = PrequentialMonitor("regression", fading=0.995)
    errors = []
    for y, pred in regression_stream(500, scale=3.0, noise=0.5, seed=0):
        monitor.update(y, pred)
        errors.append(abs(y - pred))
    assert monitor.score == pytest.approx(faded(errors, 0.995), rel=1e-12)
    assert monitor.loss == pytest.approx(faded([e * e for e in errors], 0.995), rel=1e-12)


@pytest.mark.parametrize(
    ("proba", "expected"),
    [
        ({"a": 1.0}, -math.log1p(-1e-15)),  # certain and right: clipped below 1
        ({"b": 1.0}, -math.log(1e-15)),  # the true label missing: probability 0, clipped
        (None, -math.log(1e-15)),  # no probabilities: certain of the (wrong) prediction
    ],
)
def test_log_loss_is_clipped(proba, expected):
    monitor = PrequentialMonitor("classification")
    monitor.update("a", "b" if proba is None else max(proba, key=proba.get), proba)
    assert monitor.loss == pytest.approx(expected, rel=1e-9)


def test_detects_an_abrupt_rise_of_the_error_rate():
    monitor = PrequentialMonitor("classification")
    stream = [*classification_stream(2000, 0.0, seed=1), *classification_stream(2000, 1.0, seed=2)]
    detections = feed(monitor, stream)
    assert detections
    assert 2000 <= detections[0] < 2100
    assert monitor.drifts_detected == len(detections)


@pytest.mark.parametrize("error_rate", [0.0, 0.3, 0.5])
def test_quiet_on_a_stationary_stream(error_rate):
    monitor = PrequentialMonitor("classification")
    assert feed(monitor, classification_stream(4000, error_rate, seed=3)) == []


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_regression_detection_does_not_depend_on_the_target_scale(scale):
    def detections(scale):
        monitor = PrequentialMonitor("regression")
        stream = [
            *regression_stream(2000, scale, noise=0.1, seed=4),
            *regression_stream(2000, scale, noise=0.4, seed=5),
        ]
        return feed(monitor, stream)

    found = detections(scale)
    assert found
    assert 2000 <= found[0] < 2300
    assert found == detections(1.0)


def test_regression_quiet_on_a_stationary_stream():
    monitor = PrequentialMonitor("regression")
    assert feed(monitor, regression_stream(4000, 1e-3, noise=0.3, seed=6)) == []


def round_trip(monitor):
    restored = PrequentialMonitor(monitor.task, monitor.fading, monitor.delta)
    restored.load_state_dict(json.loads(json.dumps(monitor.state_dict(), allow_nan=False)))
    return restored


def saved(monitor) -> str:
    """The state as the learner saves it: JSON text, where 2744 and 2744.0 differ."""
    return json.dumps(monitor.state_dict(), allow_nan=False, sort_keys=True)


def test_restored_classification_monitor_continues_identically():
    stream = [
        *classification_stream(3000, 0.1, seed=7),
        *classification_stream(3000, 0.6, seed=8),
    ]
    monitor = PrequentialMonitor("classification")
    feed(monitor, stream[:2500])
    restored = round_trip(monitor)
    assert feed(restored, stream[2500:]) == feed(monitor, stream[2500:]) != []
    assert saved(restored) == saved(monitor)
    assert (restored.score, restored.loss) == (monitor.score, monitor.loss)


def test_restored_regression_monitor_continues_identically():
    stream = [
        *regression_stream(3000, 2.0, noise=0.2, seed=9),
        *regression_stream(3000, 2.0, noise=0.5, seed=10),
    ]
    monitor = PrequentialMonitor("regression")
    feed(monitor, stream[:2500])
    restored = round_trip(monitor)
    assert feed(restored, stream[2500:]) == feed(monitor, stream[2500:]) != []
    assert saved(restored) == saved(monitor)


def test_restored_right_after_a_detection_continues_identically():
    stream = [*classification_stream(2000, 0.0, seed=11), *classification_stream(3000, 1.0, 12)]
    monitor = PrequentialMonitor("classification")
    first = feed(monitor, stream)[0]
    monitor = PrequentialMonitor("classification")
    feed(monitor, stream[: first + 1])
    restored = round_trip(monitor)
    assert feed(restored, stream[first + 1 :]) == feed(monitor, stream[first + 1 :])
    assert saved(restored) == saved(monitor)


def test_detector_from_another_river_version_starts_afresh():
    monitor = PrequentialMonitor("classification")
    feed(monitor, classification_stream(3000, 0.2, seed=13))
    state = monitor.state_dict()
    state["detector"]["river"] = "0.0.0"
    restored = PrequentialMonitor("classification")
    with pytest.warns(RuntimeWarning, match="starts afresh"):
        restored.load_state_dict(state)
    assert (restored.score, restored.loss) == (monitor.score, monitor.loss)
    assert (
        restored.state_dict()["detector"]
        == PrequentialMonitor("classification").state_dict()["detector"]
    )


def test_load_state_dict_rejects_other_settings():
    state = PrequentialMonitor("classification").state_dict()
    with pytest.raises(ValueError, match="task"):
        PrequentialMonitor("regression").load_state_dict(state)
    with pytest.raises(ValueError, match="fading"):
        PrequentialMonitor("classification", fading=0.99).load_state_dict(state)


def test_unknown_task_is_rejected():
    with pytest.raises(ValueError, match="task"):
        PrequentialMonitor("ranking")


def test_a_fall_of_the_error_is_not_a_drift():
    """ADWIN fires on a change of the mean either way; only a rise counts."""
    stream = [*classification_stream(2000, 1.0, seed=14), *classification_stream(2000, 0.0, 15)]
    adwin = prequential.drift.ADWIN(delta=0.002)
    fired = 0
    for y, pred, _ in stream:
        adwin.update(float(pred != y))
        fired += adwin.drift_detected
    assert fired > 0  # the detector does see the fall
    monitor = PrequentialMonitor("classification")
    assert feed(monitor, stream) == [] and monitor.drifts_detected == 0


def test_a_rise_after_a_fall_is_a_drift():
    stream = [
        *classification_stream(2000, 1.0, seed=16),
        *classification_stream(2000, 0.0, seed=17),
        *classification_stream(2000, 0.8, seed=18),
    ]
    monitor = PrequentialMonitor("classification")
    detections = feed(monitor, stream)
    assert detections and all(i >= 4000 for i in detections)
    assert 4000 <= detections[0] < 4100


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_update_many_is_update_for_each(task):
    if task == "classification":
        stream = [*classification_stream(3000, 0.1, seed=19), *classification_stream(3000, 0.7, 20)]
        rows = [(y, pred, proba.get(y, 0.0)) for y, pred, proba in stream]
    else:
        stream = [
            *regression_stream(3000, 2.0, 0.2, seed=21),
            *regression_stream(3000, 2.0, 0.6, 22),
        ]
        rows = stream
    one = PrequentialMonitor(task)
    expected = feed(one, stream)
    many = PrequentialMonitor(task)
    found = []
    for start in range(0, len(rows), 700):  # batches straddle the detections
        columns = list(zip(*rows[start : start + 700], strict=True))
        found += [start + i for i in many.update_many(*columns)]
    assert found == expected != []
    assert many.state_dict() == one.state_dict()


def test_update_many_without_probabilities_is_certain_of_the_prediction():
    one, many = PrequentialMonitor("classification"), PrequentialMonitor("classification")
    for y, pred in [("a", "a"), ("a", "b")]:
        one.update(y, pred)
    many.update_many(["a", "a"], ["a", "b"])
    assert many.state_dict() == one.state_dict()
