"""Each client method against the server double: what goes on the wire, what comes back."""

import itertools
import math

import grpc
import numpy as np
import pytest
from lifelong.client import (
    BatchPrediction,
    CheckpointResult,
    LearnStreamResult,
    LifelongClient,
    Prediction,
    ProtocolError,
)


def sigmoid(score: float) -> float:
    return 1 / (1 + math.exp(-score))


def test_predict_sends_named_features_and_decodes_the_answer(client, fake):
    prediction = client.predict({"x1": 2.0, "x2": -0.5})

    (request,) = fake.received
    assert dict(request.features.named) == {"x1": 2.0, "x2": -0.5}
    assert list(request.features.dense) == []
    p = sigmoid(1.5)
    assert prediction == Prediction(
        label="pos", probabilities={"pos": p, "neg": 1 - p}, model_version=42
    )
    assert list(prediction.probabilities) == ["pos", "neg"]


def test_predict_sends_dense_features(client, fake):
    prediction = client.predict(np.array([-1.0, -2.0]))

    (request,) = fake.received
    assert list(request.features.dense) == [-1.0, -2.0]
    assert dict(request.features.named) == {}
    assert prediction.label == "neg"
    assert list(prediction.probabilities) == ["neg", "pos"]


def test_predict_batch_keeps_row_order_and_mixes_named_and_dense_rows(client, fake):
    rows = [{"x1": 3.0}, [-1.0, -1.0], (0.5,)]
    batch = client.predict_batch(rows)

    (request,) = fake.received
    assert [dict(e.named) or list(e.dense) for e in request.examples] == [
        {"x1": 3.0},
        [-1.0, -1.0],
        [0.5],
    ]
    assert isinstance(batch, BatchPrediction)
    assert batch.model_version == 42
    assert [p.label for p in batch.predictions] == ["pos", "neg", "pos"]
    assert [p.probabilities["pos"] for p in batch.predictions] == [
        sigmoid(3.0),
        sigmoid(-2.0),
        sigmoid(0.5),
    ]
    assert {p.model_version for p in batch.predictions} == {42}


def test_predict_batch_rejects_an_answer_with_the_wrong_number_of_predictions(client, fake):
    fake.tamper = lambda response: response.predictions.pop()
    with pytest.raises(ProtocolError, match="1 predictions for 2 rows") as caught:
        client.predict_batch([[1.0], [2.0]])
    assert caught.value.code == grpc.StatusCode.INTERNAL


def test_predict_stream_numbers_requests_and_matches_answers(client, fake):
    batches = [[[1.0]], [{"x1": -1.0}, [2.0]], [[-3.0], [0.0], [4.0]]]
    answers = list(client.predict_stream(batches))

    assert [r.request_id for r in fake.received] == [1, 2, 3]
    assert [len(r.examples) for r in fake.received] == [1, 2, 3]
    assert [a.model_version for a in answers] == [43, 44, 45]  # the double learns in between
    assert [[p.label for p in a.predictions] for a in answers] == [
        ["pos"],
        ["neg", "pos"],
        ["neg", "pos", "pos"],  # score 0: P(pos) = 0.5 ranks first
    ]
    assert answers[2].predictions[0].probabilities["neg"] == 1 - sigmoid(-3.0)


def test_predict_stream_is_lazy_and_stopping_early_ends_the_call(client, fake):
    endless = itertools.repeat([[1.0]])
    stream = client.predict_stream(endless)
    assert fake.calls["PredictStream"] == 0  # nothing happens until iterated

    first_three = list(itertools.islice(stream, 3))
    stream.close()

    assert [a.model_version for a in first_three] == [43, 44, 45]
    assert fake.stream_closed.wait(timeout=5)


def test_predict_stream_detects_an_answer_to_another_request(client, fake):
    def shift_id(response):
        response.request_id += 1

    fake.tamper = shift_id
    with pytest.raises(ProtocolError, match="request_id 2, expected 1") as caught:
        list(client.predict_stream(itertools.repeat([[1.0]])))
    # The call is cancelled even while the caller holds the error (whose traceback keeps the
    # stream alive), instead of sending the endless batches on.
    assert fake.stream_closed.wait(timeout=5)
    assert caught.value.code == grpc.StatusCode.INTERNAL


def test_predict_stream_yields_earlier_answers_then_raises_a_bad_batch_error(client, fake):
    stream = client.predict_stream([[[1.0]], [["oops"]], [[2.0]]])

    assert next(stream).predictions[0].label == "pos"
    with pytest.raises(TypeError, match="feature 0 is 'oops', not a number"):
        next(stream)
    assert [r.request_id for r in fake.received] == [1]  # nothing after the bad batch was sent


def test_learn_encodes_the_label_type_and_returns_samples_learned(client, fake):
    assert client.learn({"x1": 1.0}, "spam") == 1
    assert client.learn([1.0, 2.0], 3) == 2
    assert client.learn([1.0, 2.0], True) == 3
    assert client.learn({"x1": 0.5}, 2.75) == 4

    assert [r.sample.label.WhichOneof("value") for r in fake.received] == [
        "text",
        "integer",
        "boolean",  # True is not 1: the server keeps them apart
        "number",
    ]
    assert fake.received[1].sample.label.integer == 3 and fake.received[2].sample.label.boolean
    assert dict(fake.received[0].sample.features.named) == {"x1": 1.0}
    assert list(fake.received[1].sample.features.dense) == [1.0, 2.0]


def test_learn_stream_sends_samples_in_order(client, fake):
    fake.samples_learned = 100
    samples = ((np.array([float(i), 1.0]), f"c{i % 3}") for i in range(5))

    result = client.learn_stream(samples)

    assert result == LearnStreamResult(samples_accepted=5, samples_learned=105)
    assert [r.sample.label.text for r in fake.received] == ["c0", "c1", "c2", "c0", "c1"]
    assert [r.sample.features.dense[0] for r in fake.received] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_learn_stream_stops_at_a_bad_sample_and_says_how_many_were_learned(client, fake):
    samples = [([1.0], "a"), ([2.0], "b"), ([3.0], None), ([4.0], "d")]

    with pytest.raises(TypeError, match="a label is a str") as caught:
        client.learn_stream(samples)

    assert caught.value.__notes__ == ["LearnStream: the 2 samples before it were learned"]
    assert [r.sample.label.text for r in fake.received] == ["a", "b"]


def test_model_info(client, fake):
    fake.samples_learned = 10
    info = client.model_info()
    assert info.task == "classification"
    assert info.feature_names == ("x1", "x2")
    assert info.classes == ("pos", "neg")
    assert (info.samples_learned, info.model_version) == (10, 42)
    assert info.config == {"hidden": [64, 64], "optimizer": "adam"}


def test_stats(client):
    stats = client.stats()
    assert [layer.layer for layer in stats.layers] == [0, 1]
    assert [layer.dead_fraction for layer in stats.layers] == [0.125, 0.25]
    assert [layer.effective_rank for layer in stats.layers] == [40.5, 39.5]
    assert [layer.units_replaced for layer in stats.layers] == [7, 8]
    assert stats.layers[1].width == 64
    assert (stats.gradient_norm, stats.mean_abs_weight) == (1.5, 0.03125)
    assert (stats.prequential_score, stats.prequential_loss) == (0.875, 0.375)
    assert stats.drifts_detected == 3


def test_checkpoint(client, fake):
    fake.samples_learned = 7
    assert client.checkpoint() == CheckpointResult(
        path="/var/lib/lifelong/ckpt-7.bin", samples_learned=7
    )


def test_client_leaves_a_channel_it_was_given_open(address):
    with grpc.insecure_channel(address) as channel:
        with LifelongClient(address, channel=channel) as client:
            client.predict([1.0])
        # Still usable after the client closed.
        assert LifelongClient(address, channel=channel).predict([1.0]).label == "pos"


def test_client_closes_the_channel_it_opened(address):
    with LifelongClient(address) as client:
        client.predict([1.0])
    with pytest.raises(ValueError, match="closed channel"):
        client.predict([1.0])


def test_channel_and_credentials_are_exclusive(address):
    with grpc.insecure_channel(address) as channel, pytest.raises(ValueError, match="not both"):
        LifelongClient(address, channel=channel, credentials=grpc.ssl_channel_credentials())
