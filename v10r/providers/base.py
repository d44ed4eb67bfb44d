"""The provider interface: texts in, vectors out, in input order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Provider(Protocol):
    name: str  # "local", "openai", "infinity", "custom"
    model: str
    dimensions: int
    max_batch_size: int
    max_input_chars: int

    async def embed(self, texts: Sequence[str], *, priority: str = "live") -> np.ndarray:
        """A float32 array of shape (len(texts), dimensions), rows in input order.

        `priority="backfill"` (catch-up work) waits behind `"live"` work where the
        provider has a client-side rate limit.

        Splits into batches within the provider's limits; retries transient failures;
        raises `v10r.errors.ProviderError` (with `retryable`) when it gives up.
        """

    async def aclose(self) -> None: ...
