"""A remote, OpenAI-compatible embeddings endpoint (OpenAI, Azure OpenAI, LiteLLM, vLLM...).

    RemoteEmbedder("https://api.openai.com/v1/embeddings",
                   headers={"Authorization": "Bearer sk-..."}, model="text-embedding-3-small")
    RemoteEmbedder("https://x.openai.azure.com/openai/deployments/emb/embeddings"
                   "?api-version=2024-02-01", headers={"api-key": "..."})

`url` is the embeddings URL itself, or a base URL ending in `/v1` (then
`/embeddings` is added). `model` is sent when given (Azure names the model in
the URL instead). `dims` is learned from the first response; pass `dims=` when
something needs it before any text was embedded (`SemanticCache.open` embeds
once, so it does not). Header values never appear in errors or logs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np

from reprise._exceptions import EmbedderError, EmbedderTimeout
from reprise._protocols import Vector


class RemoteEmbedder:
    """Embeds by POSTing `{"input": [...], "model": ...}` to an embeddings endpoint.

    One `httpx.AsyncClient` (one connection pool) serves every call. A call
    taking longer than `timeout` seconds in all raises `EmbedderTimeout`;
    transport errors, HTTP errors and malformed payloads raise `EmbedderError`.
    Inputs beyond `max_batch` texts are sent as several concurrent requests.
    Returned vectors are L2-normalised whatever the endpoint sends.
    `max_input_tokens` is the model's input window (512 unless known larger:
    OpenAI's text-embedding-3 models take 8191); see `fits`.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        model: str | None = None,
        dims: int | None = None,
        timeout: float = 10.0,
        max_batch: int = 256,
        max_input_tokens: int = 512,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = embeddings_url(url)
        self.model = model
        self.timeout = timeout
        self.max_batch = max_batch
        self.max_input_tokens = max_input_tokens
        self._dims = dims
        # Header values and their words ("Bearer sk-...": the key alone) are redacted.
        values = list((headers or {}).values())
        words = [w for v in values for w in v.split()]
        self._secrets = sorted({s for s in values + words if len(s) >= 8}, key=len, reverse=True)
        parts = urlsplit(self.url)
        # Query strings may carry keys (?key=...): errors name the endpoint without it.
        self._where = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self._client = httpx.AsyncClient(
            headers=dict(headers or {}), timeout=timeout, transport=transport
        )

    @property
    def dims(self) -> int:
        if self._dims is None:
            raise EmbedderError(
                f"the dimensions of {self._where} are not known before its first answer; "
                "embed once or pass dims="
            )
        return self._dims

    def fits(self, text: str) -> bool:
        """Whether `text` surely fits `max_input_tokens`: a conservative estimate.

        The endpoint's tokenizer is unknown here, but byte-level BPE and word
        pieces alike spend at least one byte per token, so a text of at most
        that many UTF-8 bytes (and two special tokens) always fits.
        """
        return len(text.encode()) + 2 <= self.max_input_tokens

    async def embed(self, texts: Sequence[str]) -> Vector:
        """Vectors `(len(texts), dims)`, float32, L2-normalised, in input order."""
        if not texts:
            return np.empty((0, self._dims or 0), dtype=np.float32)
        chunks = [texts[i : i + self.max_batch] for i in range(0, len(texts), self.max_batch)]
        try:
            async with asyncio.timeout(self.timeout):
                parts = await asyncio.gather(*(self._post(chunk) for chunk in chunks))
        except TimeoutError:
            raise EmbedderTimeout(
                f"{self._where} did not answer within {self.timeout:g} s"
            ) from None
        return np.vstack(parts)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, texts: Sequence[str]) -> Vector:
        # OpenAI rejects empty strings; a space embeds to the same "no content".
        body: dict[str, Any] = {"input": [t or " " for t in texts]}
        if self.model is not None:
            body["model"] = self.model
        try:
            response = await self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise EmbedderTimeout(
                f"{self._where} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise EmbedderError(
                f"cannot reach {self._where}: {self._redact(str(exc)) or type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            raise EmbedderError(
                f"{self._where} answered HTTP {response.status_code}: "
                f"{self._redact(_error_message(response))}"
            )
        vectors = self._parse(response, len(texts))
        return vectors

    def _parse(self, response: httpx.Response, count: int) -> Vector:
        try:
            items = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.array([_vector(item["embedding"]) for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise EmbedderError(
                f"{self._where} sent a malformed embeddings payload: {exc!r}"
            ) from None
        if vectors.ndim != 2 or len(vectors) != count or vectors.shape[1] == 0:
            raise EmbedderError(f"{self._where} sent {vectors.shape} vectors for {count} texts")
        if self._dims is None:
            self._dims = int(vectors.shape[1])
        elif vectors.shape[1] != self._dims:
            raise EmbedderError(
                f"{self._where} sent {vectors.shape[1]}-dimensional vectors, expected {self._dims}"
            )
        if not np.isfinite(vectors).all():
            raise EmbedderError(f"{self._where} sent non-finite numbers")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalized: Vector = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalized

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def embeddings_url(url: str) -> str:
    """The URL to POST to: `url` itself, or `url + "/embeddings"` for a `/v1` base URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EmbedderError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/embeddings"):
        path += "/embeddings"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _vector(embedding: Any) -> Any:
    """A list of floats, or base64 little-endian float32 (`encoding_format: base64`)."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4")
    if not isinstance(embedding, list):
        raise TypeError(f"embedding is a {type(embedding).__name__}")
    return embedding


def _error_message(response: httpx.Response) -> str:
    """The OpenAI-shaped error message if there is one, else the body's start."""
    try:
        error = response.json()["error"]
        return str(error["message"] if isinstance(error, dict) else error)[:300]
    except (ValueError, KeyError, TypeError):
        return response.text[:300]
