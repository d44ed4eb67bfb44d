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
    """The unit vector of `text`: one row of `deterministic_vectors`."""
    return deterministic_vectors([text], dimensions)[0]


def deterministic_vectors(texts: Sequence[str], dimensions: int) -> np.ndarray:
    """Per text, the unit vector along shake_256(text) read as 16-bit integers; the test
    OpenAI server computes the same. A hash rather than a seeded generator (3× cheaper),
    normalised for the whole batch at once in float64, where sums of squares of 16-bit
    integers are exact: a vector does not depend on the batch it was computed in."""
    size = 2 * dimensions
    raw = b"".join(hashlib.shake_256(t.encode("utf-8", "surrogatepass")).digest(size)
                   for t in texts)
    exact = np.frombuffer(raw, dtype="<i2").astype(np.float64).reshape(len(texts), dimensions)
    norms = np.sqrt(np.einsum("ij,ij->i", exact, exact))
    zero = norms == 0.0  # an all-zero digest: not going to happen, but never divide by it
    if zero.any():
        exact[zero, 0], norms[zero] = 1.0, 1.0
    return (exact / norms[:, None]).astype(np.float32)


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
        return deterministic_vectors([text[: self.max_input_chars] for text in texts],
                                     self.dimensions)

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"DeterministicProvider(model={self.model!r}, dimensions={self.dimensions})"
