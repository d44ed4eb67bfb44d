"""The provider's HTTP transport against servers that break HTTP itself: a compressed
body that inflates without end, a connection cut mid-body, bytes that are not HTTP, a
body dripped one byte at a time, a redirect, and the proxy the environment names.
Each ends in a clear provider error (retryable where waiting can help), in bounded time
and memory, never a traceback."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import shutil
import ssl
import subprocess
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.services.openai_server import OpenAIServer
from v10r.errors import ProviderError, ProviderUnavailable
from v10r.providers.openai import OpenAICompatibleProvider

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


@asynccontextmanager
async def raw_server(handler: Handler, tls: ssl.SSLContext | None = None
                     ) -> AsyncIterator[str]:
    """A TCP (or TLS) server that reads one request and answers with what `handler` writes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1"
    finally:
        server.close()


def provider(url: str, **options) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(**{"name": "custom", "model": "m", "dimensions": 8,
                                       "base_url": url, "max_retries": 0, "timeout_s": 3.0,
                                       **options})


async def embed(url: str, **options) -> ProviderError:
    client = provider(url, **options)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.embed(["a", "b"])
    finally:
        await client.aclose()
    return caught.value


async def test_a_compressed_body_that_inflates_without_end_is_cut_off_at_the_bound():
    bomb = gzip.compress(b"[" + b"0.125, " * 40_000_000, compresslevel=9)  # 280 MB inflated

    async def answer(reader, writer):
        writer.write(OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
                     % len(bomb) + bomb)
        await writer.drain()

    async with raw_server(answer) as url:
        tracemalloc.start()
        try:
            error = await embed(url)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "response is larger than" in error.message and not error.retryable
    assert peak < 30_000_000  # inflated in bounded steps, never whole


async def test_a_connection_cut_mid_body_is_retryable():
    async def answer(reader, writer):
        writer.write(OK_HEAD + b"Content-Length: 60000\r\n\r\n" + b'{"data": [' * 10)
        await writer.drain()

    async with raw_server(answer) as url:
        error = await embed(url)
    assert isinstance(error, ProviderUnavailable) and "cannot connect" in error.message


async def test_bytes_that_are_not_http_are_a_retryable_error():
    async def answer(reader, writer):
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 not http at all\r\n\r\n")
        await writer.drain()

    async with raw_server(answer) as url:
        error = await embed(url)
    assert isinstance(error, ProviderUnavailable)


async def test_a_body_dripped_byte_by_byte_times_out_as_a_whole():
    async def answer(reader, writer):
        writer.write(OK_HEAD + b"Content-Length: 60000\r\n\r\n")
        for _ in range(200):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with raw_server(answer) as url:
        started = asyncio.get_running_loop().time()
        error = await embed(url, timeout_s=0.5)
        elapsed = asyncio.get_running_loop().time() - started
    assert "timed out" in error.message and error.retryable
    assert elapsed < 5  # the whole request is bounded, not each read


async def test_a_redirect_is_not_followed():
    async def answer(reader, writer):
        writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/\r\n"
                     b"Content-Length: 0\r\n\r\n")
        await writer.drain()

    async with raw_server(answer) as url:
        error = await embed(url, api_key="sk-test-redirect")
    assert "HTTP 307" in error.message and not error.retryable


async def test_the_proxy_the_environment_names_is_used_unless_no_proxy_says_otherwise(
        monkeypatch):
    with OpenAIServer(dimensions=8) as server:
        monkeypatch.setenv("HTTP_PROXY", "http://user:pw@127.0.0.1:9")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        error = await embed(server.url)
        assert isinstance(error, ProviderUnavailable) and not server.requests
        assert "pw" not in str(error)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = provider(server.url)
        try:
            assert (await direct.embed(["a"])).shape == (1, 8)
        finally:
            await direct.aclose()


def test_one_provider_serves_one_event_loop_after_another():
    with OpenAIServer(dimensions=8) as server:
        client = provider(server.url)
        for _ in range(2):
            assert asyncio.run(client.embed(["a"])).shape == (1, 8)
        asyncio.run(client.aclose())


def test_a_proxy_variable_that_is_not_a_url_is_a_clear_error_that_hides_its_password(
        monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://user:hunter2@[not-a-host")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ProviderError, match="proxy named by the environment") as caught:
        provider("https://api.example.com/v1")
    assert "hunter2" not in str(caught.value) and "HTTPS_PROXY" in caught.value.hint


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 that no CA store trusts, and the server's context."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


async def answer_two_vectors(reader, writer):
    vector = base64.b64encode(b"\x00\x00\x80\x3f" * 8).decode()  # eight 1.0s
    body = json.dumps({"data": [{"index": i, "embedding": vector} for i in range(2)]}).encode()
    writer.write(OK_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()


async def test_a_certificate_no_ca_trusts_is_a_retryable_tls_error_with_the_fix(self_signed):
    _, server_tls = self_signed
    async with raw_server(answer_two_vectors, server_tls) as url:
        error = await embed(url, api_key="sk-never-sent-0123")
    assert isinstance(error, ProviderUnavailable)
    assert "TLS failed" in error.message and "certificate" in error.message
    assert "SSL_CERT_FILE" in error.hint and "sk-never-sent" not in str(error)


async def test_a_server_whose_ca_ssl_cert_file_names_is_trusted(self_signed, monkeypatch):
    cert, server_tls = self_signed
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    async with raw_server(answer_two_vectors, server_tls) as url:
        client = provider(url)
        try:
            vectors = await client.embed(["a", "b"])
        finally:
            await client.aclose()
    assert vectors.shape == (2, 8) and (vectors == 1.0).all()
