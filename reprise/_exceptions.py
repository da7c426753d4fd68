"""Every error Reprise raises on purpose.

    RepriseError
    ├── ConfigError            bad settings: names the key or line; raised at load, before serving
    ├── RequestError           the client's request is unusable (becomes a 4xx, OpenAI error shape)
    └── CacheError             the cache could not answer: callers fail open and go to the backend
        ├── EmbedderError      the embedding model or embeddings backend failed
        │   └── EmbedderTimeout
        ├── StoreError         the vector store failed
        │   ├── StoreUnavailable   cannot reach the store (Redis down, disk gone)
        │   └── IndexMismatch      an existing index disagrees with the embedder (dims, metric)
        └── LookupShed         too many semantic lookups waiting: refused before starting

`CacheError` is the one to catch for failing open: nothing below it is the
client's fault, and the backend can always answer instead.
"""

from __future__ import annotations


class RepriseError(Exception):
    """Base class of every error Reprise raises on purpose."""


class ConfigError(RepriseError):
    """Invalid configuration; the message names the offending key or line."""


class RequestError(RepriseError):
    """A client request Reprise cannot serve; maps to an OpenAI-shaped 4xx."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type


class CacheError(RepriseError):
    """The cache could not answer; the request should go to the backend."""


class EmbedderError(CacheError):
    """The embedder failed to produce vectors."""


class EmbedderTimeout(EmbedderError):
    """The embedder did not answer in time."""


class StoreError(CacheError):
    """The vector store failed."""


class StoreUnavailable(StoreError):
    """The vector store cannot be reached."""


class IndexMismatch(StoreError):
    """An existing index was built for other vectors than this embedder makes."""


class LookupShed(CacheError):
    """A semantic lookup refused at admission: it could not finish within the lookup budget."""
