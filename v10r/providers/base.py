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

        Splits into batches within the provider's limits; retries transient failures.
        When it gives up it raises, from `v10r.errors`: `ProviderAuthError` (bad
        credentials: no input can succeed), `ProviderUnavailable` (down, overloaded, rate
        limited: retried, never split) or `ProviderError` (these inputs were refused:
        the caller may split the batch to find the bad one). Whether each vector can be
        stored is the caller's to judge, per row.
        """

    async def aclose(self) -> None: ...
