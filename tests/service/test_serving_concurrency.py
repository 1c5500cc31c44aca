"""Predictions from several threads while the model learns at full rate."""

import random
import threading
import time

from lifelong.v1 import lifelong_pb2 as pb
from testsupport import line_sample


def test_concurrent_predictions_while_learning(serve):
    served = serve(grpc_workers=8)
    served.host.refresh_every_samples = 10  # many snapshots during the run
    rng = random.Random(0)
    served.learn(line_sample(rng) for _ in range(20))

    learning_done = threading.Event()
    errors: list[BaseException] = []
    versions: list[list[int]] = [[] for _ in range(4)]

    def predict(seen: list[int], batch: bool) -> None:
        request_rng = random.Random(len(seen))
        try:
            while not learning_done.is_set():
                x, _ = line_sample(request_rng)
                if batch:
                    request = pb.PredictBatchRequest(examples=[pb.Features(named=x)] * 16)
                    response = served.predictions.PredictBatch(request, timeout=10)
                    assert len(response.predictions) == 16
                else:
                    request = pb.PredictRequest(features=pb.Features(named=x))
                    response = served.predictions.Predict(request, timeout=10)
                seen.append(response.model_version)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [
        threading.Thread(target=predict, args=(seen, i % 2 == 1)) for i, seen in enumerate(versions)
    ]
    for thread in threads:
        thread.start()
    start = time.monotonic()
    response = served.learn(line_sample(rng) for _ in range(3000))
    learning_seconds = time.monotonic() - start
    learning_done.set()
    for thread in threads:
        thread.join()

    assert not errors, errors[:3]
    assert response.samples_learned == 3020
    for seen in versions:
        assert seen, "a predicting thread got no answer"
        assert seen == sorted(seen), "model versions went backwards"
    distinct = {v for seen in versions for v in seen}
    assert len(distinct) > 10, f"{len(distinct)} snapshots seen in {learning_seconds:.1f}s"
