"""A provider that needs no model: each text maps to a fixed pseudo-random unit vector.

Pipeline-logic tests and benchmarks use it so that vectors are instant yet checkable:
the same text always yields the same vector, different texts almost surely differ.
Never selectable from a spec.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def deterministic_vector(text: str, dimensions: int) -> np.ndarray:
    """The unit vector seeded by sha256(text); the test OpenAI server computes the same."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class DeterministicProvider:
    """Instant, in-process vectors for tests and benchmarks."""

    name = "deterministic"

    def __init__(self, dimensions: int, model: str = "deterministic", *,
                 max_batch_size: int = 2048, max_input_chars: int = 32_000) -> None:
        self.dimensions = dimensions
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_input_chars = max_input_chars
        self.calls = 0  # embed() calls, so tests can assert "no embedding needed"

    async def embed(self, texts: Sequence[str], *, priority: str = "live") -> np.ndarray:
        self.calls += 1
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = deterministic_vector(text[: self.max_input_chars], self.dimensions)
        return out

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"DeterministicProvider(model={self.model!r}, dimensions={self.dimensions})"
