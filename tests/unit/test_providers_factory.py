"""From a spec's `embedding:` block to a provider: secrets expanded late, never shown."""

from __future__ import annotations

import numpy as np
import pytest

from v10r.errors import EnvError, ProviderError
from v10r.providers.deterministic import DeterministicProvider, deterministic_vector
from v10r.providers.factory import create_provider
from v10r.providers.local import LocalProvider
from v10r.providers.openai import OpenAICompatibleProvider
from v10r.spec.model import Embedding

pytestmark = pytest.mark.unit


async def test_openai_provider_takes_its_key_from_the_environment_and_hides_it(monkeypatch):
    monkeypatch.setenv("V10R_TEST_KEY", "sk-live-abcdef123456")
    monkeypatch.setenv("V10R_TEST_ORG", "org-hidden-42")
    spec = Embedding(provider="openai", api_key="${V10R_TEST_KEY}",
                     headers={"OpenAI-Organization": "${V10R_TEST_ORG}"},
                     requests_per_minute=100, batch_size=16, timeout_s=3, max_retries=2)
    provider = create_provider(spec, pipeline="docs")
    try:
        assert isinstance(provider, OpenAICompatibleProvider)
        assert (provider.name, provider.model, provider.dimensions) == (
            "openai", "text-embedding-3-small", 1536)
        assert provider.max_batch_size == 16 and provider.max_retries == 2
        assert "sk-live" not in repr(provider) and "org-hidden" not in repr(provider)
    finally:
        await provider.aclose()


def test_an_unset_key_variable_names_the_variable_and_pipeline(monkeypatch):
    monkeypatch.delenv("V10R_TEST_MISSING", raising=False)
    spec = Embedding(provider="openai", api_key="${V10R_TEST_MISSING}")
    with pytest.raises(EnvError) as caught:
        create_provider(spec, pipeline="docs")
    assert "V10R_TEST_MISSING" in str(caught.value) and "docs" in str(caught.value)


def test_local_is_all_minilm():
    provider = create_provider(Embedding(provider="local", batch_size=8), pipeline="p")
    assert isinstance(provider, LocalProvider)
    assert (provider.model, provider.dimensions, provider.max_batch_size) == (
        "all-MiniLM-L6-v2", 384, 8)


def test_local_refuses_another_model_with_a_hint():
    with pytest.raises(ProviderError, match="runs all-MiniLM-L6-v2") as caught:
        create_provider(Embedding(provider="local", model="bge-m3", dimensions=1024), pipeline="p")
    assert "infinity" in caught.value.hint


@pytest.mark.parametrize("dimensions", [1, 16, 4000])
async def test_deterministic_vectors_are_unit_length_stable_and_distinct(dimensions):
    provider = DeterministicProvider(dimensions=dimensions)
    first = await provider.embed(["a", "b", "a", ""])
    assert first.shape == (4, dimensions) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(first[0], first[2])
    assert not np.allclose(first[0], first[1]) or dimensions == 1
    np.testing.assert_array_equal(first[1], deterministic_vector("b", dimensions))


@pytest.mark.parametrize("value", ["sk-live-abc\n", "sk-live-abc\r\nX-Evil: 1", "a\x7fb",
                                   "\x1b[31m", "x" * 8193],
                         ids=["newline", "injected-header", "delete", "escape", "too-long"])
@pytest.mark.parametrize("field", ["api_key", "header"])
def test_a_variable_that_cannot_travel_in_a_header_is_refused_without_showing_it(
        monkeypatch, field, value):
    monkeypatch.setenv("V10R_TEST_VALUE", value)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    spec = Embedding(provider="openai", **(
        {"api_key": "${V10R_TEST_VALUE}"} if field == "api_key"
        else {"headers": {"X-Org": "${V10R_TEST_VALUE}"}}))
    with pytest.raises(ProviderError, match="control character") as caught:
        create_provider(spec, pipeline="docs")
    shown = f"{caught.value} {caught.value.hint}"
    assert "sk-live" not in shown and "Evil" not in shown and "\x1b" not in shown
    assert ("api_key" if field == "api_key" else "headers.X-Org") in shown


async def test_a_tab_and_non_ascii_text_are_fine_in_a_header_value(monkeypatch):
    monkeypatch.setenv("V10R_TEST_VALUE", "team\tünïcode")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    provider = create_provider(Embedding(provider="openai", headers={
        "X-Team": "${V10R_TEST_VALUE}"}), pipeline="docs")
    await provider.aclose()
