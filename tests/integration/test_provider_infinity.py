"""Provider kind `infinity` against a real Infinity server running the same model as `local`."""

# ruff: noqa: F811 - fixtures imported from tests.fixtures.providers
from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.providers import infinity_server, local_provider  # noqa: F401 - fixtures
from tests.services.infinity import SERVED_MODEL
from v10r.providers.factory import create_provider
from v10r.spec.model import Embedding

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEXTS = [
    "Keep embeddings in sync with the rows they describe.",
    "A slow worker must never overwrite a newer vector.",
    "Where is my order?",
    "Tokyo is the capital of Japan.",
    "unicode: café, naïve, 東京",
]


async def test_infinity_embeds_like_the_local_model(infinity_server, local_provider):
    spec = Embedding(provider="infinity", base_url=infinity_server.url, model=SERVED_MODEL,
                     dimensions=384, batch_size=2)
    provider = create_provider(spec, pipeline="infinity_test")
    try:
        remote = await provider.embed(TEXTS)
        assert provider.encoding == "base64"  # Infinity speaks base64: no float JSON parsing
    finally:
        await provider.aclose()
    local = await local_provider.embed(TEXTS)
    assert remote.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(remote, axis=1), 1.0, rtol=1e-4)
    cosines = (remote * local).sum(axis=1)
    assert cosines.min() >= 0.99, cosines.round(4).tolist()
