"""A 2xx response is trusted only when it holds exactly the vectors asked for."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from v10r.providers.response import InvalidResponse, decode_embeddings, max_response_bytes

pytestmark = pytest.mark.unit


def body(vectors, *, as_base64=False, indices=None):
    data = []
    for i, v in enumerate(vectors):
        emb = (base64.b64encode(np.asarray(v, "<f4").tobytes()).decode() if as_base64
               else list(map(float, v)))
        data.append({"index": (indices or range(len(vectors)))[i], "embedding": emb})
    return json.dumps({"data": data}).encode()


@pytest.mark.parametrize("as_base64", [False, True])
def test_decodes_floats_and_base64_alike(as_base64):
    vectors, was_base64 = decode_embeddings(body([[1, 2], [3, 4]], as_base64=as_base64),
                                            count=2, dimensions=2)
    assert vectors.tolist() == [[1, 2], [3, 4]] and vectors.dtype == np.float32
    assert was_base64 is as_base64


def test_rows_are_placed_by_index():
    vectors, _ = decode_embeddings(body([[3, 3], [1, 1]], indices=[1, 0]), count=2, dimensions=2)
    assert vectors.tolist() == [[1, 1], [3, 3]]


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"data": [{"embedding": [1', "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b'{"object": "list"}', "no `data`"),
    (body([[1, 2]]), "asked for 2 embeddings, got 1"),
    (body([[1, 2], [1, 2], [1, 2]]), "asked for 2 embeddings, got 3"),
    (body([[1, 2, 3], [1, 2, 3]]), "has 3 dimensions, expected 2"),
    (body([[1, 2, 3], [1, 2, 3]], as_base64=True), "has 3 dimensions, expected 2"),
    (body([[1, 2], [1, 2]], indices=[0, 0]), "indices repeat"),
    (body([[1, 2], [1, 2]], indices=[0, 5]), "out of range"),
    (body([[1, 2], [1, 2]], indices=[0, -1]), "out of range"),
    (b'{"data": [{"index": 0, "embedding": [1, 2]}, {"index": true, "embedding": [1, 2]}]}',
     "out of range"),
    (b'{"data": [{"index": 0, "embedding": [1, 2]}, {"index": "1", "embedding": [1, 2]}]}',
     "out of range"),
    (b'{"data": [{"embedding": [[1, 2]]}, {"embedding": [1, 2]}]}', "dimensions"),
    (b'[1, 2]', "no `data`"),
    (b'{"data": [{"embedding": "!!notbase64"}, {"embedding": [1, 2]}]}', "not valid base64"),
    (b'{"data": [{"embedding": null}, {"embedding": [1, 2]}]}', "embedding 0 is missing"),
    (b'{"data": [{"embedding": ["a", 2]}, {"embedding": [1, 2]}]}', "not a list of numbers"),
])
def test_incomplete_or_broken_responses_are_rejected(raw, message):
    with pytest.raises(InvalidResponse, match=message):
        decode_embeddings(raw, count=2, dimensions=2)


GOOD = "AACAPwAAAEA="  # [1.0, 2.0] as float32, base64


@pytest.mark.parametrize("embedding", [
    "AACAPwAAAEA",  # padding missing
    "AACAPwAAAEA==",  # padding beyond the end
    "AACAPwAA\nAEA=",  # a line break inside
    "AACAPwAAAEA=AAAA",  # data after the padding
    "AACAPwAAAEÄ=",  # not ASCII
    "AACA PwAAAEA=",  # a space inside
    "AACAPw-_AEA=",  # the URL-safe alphabet
    "=AACAPwAAAEA",  # padding first
])
def test_base64_that_is_not_strictly_valid_is_rejected(embedding):
    raw = json.dumps({"data": [{"embedding": embedding}, {"embedding": GOOD}]}).encode()
    with pytest.raises(InvalidResponse, match="embedding 0 is not valid base64"):
        decode_embeddings(raw, count=2, dimensions=2)
    vectors, was_base64 = decode_embeddings(
        json.dumps({"data": [{"embedding": GOOD}] * 2}).encode(), count=2, dimensions=2)
    assert was_base64 and vectors.tolist() == [[1.0, 2.0], [1.0, 2.0]]


def test_nonfinite_and_zero_vectors_are_decoded_for_the_core_to_judge_per_row():
    vectors, _ = decode_embeddings(body([[1, 2], [float("nan"), 1], [0, 0]]), count=3,
                                   dimensions=2)
    assert vectors.shape == (3, 2) and np.isnan(vectors[1, 0]) and not vectors[2].any()


@pytest.mark.parametrize(("count", "dimensions"), [(1, 3), (64, 1536), (2048, 384)])
def test_the_response_bound_fits_any_honest_float_json_answer(count, dimensions):
    honest = body([[-1.2345678901234567e-05] * dimensions] * count)
    assert len(honest) < max_response_bytes(count, dimensions) < 40 * len(honest) + 70_000
