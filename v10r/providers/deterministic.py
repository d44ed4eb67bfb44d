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
    """The unit vector along shake_256(text) read as 16-bit integers; the test OpenAI
    server computes the same. A hash rather than a seeded generator: 3× cheaper, and
    benchmarks make one per row."""
    raw = hashlib.shake_256(text.encode("utf-8")).digest(2 * dimensions)
    vector = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    norm = float(np.dot(vector, vector)) ** 0.5
    if norm == 0.0:  # all-zero digest: not going to happen, but never divide by it
        vector[0] = norm = 1.0
    vector *= 1.0 / norm
    return vector


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
