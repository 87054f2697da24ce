"""2,000 single-image Predict calls from 32 concurrent callers: no errors, and every caller gets exactly its
own answer, with dynamic batching on and off. A lone caller never waits for company."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serve_harness import ServerProcess, mnist_test_set, reference_probabilities

from mnist_edge.serve.client import ClassifierClient

CALLS, CALLERS = 2000, 32


@pytest.mark.parametrize("mode", [[], ["--no-batching"]], ids=["batching", "no-batching"])
def test_concurrent_callers_each_get_their_own_answer(tmp_path, mode):
    images, _ = mnist_test_set(CALLS)
    expected = reference_probabilities(images)
    with ServerProcess(tmp_path / "log.jsonl", *mode) as server, ClassifierClient(server.target) as client:
        started = time.perf_counter()
        with ThreadPoolExecutor(CALLERS) as pool:
            responses = list(pool.map(lambda image: client.predict(image[None]), images))
        seconds = time.perf_counter() - started
        batches = server.metric("mnist_edge_batch_size_images_count")
        assert server.stop() == 0
    got = np.array([response.predictions[0].probabilities for response in responses])
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    if mode:
        assert batches == CALLS
    else:
        assert batches < CALLS  # concurrent calls really were coalesced
    print(f"{mode or 'batching'}: {CALLS / seconds:.0f} calls/s, {CALLS / batches:.1f} images per run")


def test_a_lone_call_does_not_wait_for_the_batch_delay(tmp_path):
    image = mnist_test_set(1)[0]
    with (
        ServerProcess(tmp_path / "log.jsonl", "--max-batch-delay-ms", "2000") as server,
        ClassifierClient(server.target) as client,
    ):
        client.predict(image)  # the first call sets up the connection
        started = time.perf_counter()
        for _ in range(5):
            client.predict(image)
        assert time.perf_counter() - started < 2.0  # one wait for company would take 2 s
        assert server.stop() == 0
