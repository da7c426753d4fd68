"""Errors in OpenAI's shape, so that SDKs raise their usual exception types.

    {"error": {"message": "...", "type": "...", "param": null, "code": null}}

The OpenAI SDKs map the status to an exception class (400 BadRequestError,
401 AuthenticationError, 429 RateLimitError, ...) and read `error.message`.
"""

from __future__ import annotations

import json
import math

from reprise._exceptions import RequestError

JSON_HEADERS: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    error = {"message": message, "type": type, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


class GatewayError(RequestError):
    """A request the gateway answers itself: an OpenAI-shaped error with this status.

    `headers` carries extras such as `Retry-After`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message, status=status, param=param, code=code, type=type)
        self.headers = headers or []

    def body(self) -> bytes:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def from_request_error(exc: RequestError) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    return GatewayError(exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code)


def bad_gateway(message: str) -> GatewayError:
    return GatewayError(502, message, type="server_error", code="bad_gateway")


def gateway_timeout(message: str) -> GatewayError:
    return GatewayError(504, message, type="server_error", code="gateway_timeout")


def not_found(path: str) -> GatewayError:
    return GatewayError(404, f"no API is configured for path {path!r}", code="not_found")


def unauthorized() -> GatewayError:
    return GatewayError(
        401,
        "Access denied due to missing or invalid subscription key. Send a valid key "
        "as 'api-key', 'Authorization: Bearer' or 'Ocp-Apim-Subscription-Key'.",
        type="authentication_error",
        code="invalid_subscription_key",
    )


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"request body is larger than {limit} bytes", code="request_too_large")


def rate_limited(retry_after: float, *, header: str = "Retry-After") -> GatewayError:
    seconds = max(1, math.ceil(retry_after))
    return GatewayError(
        429,
        f"Rate limit is exceeded. Try again in {seconds} seconds.",
        type="requests",
        code="rate_limit_exceeded",
        headers=[(header.lower().encode("latin-1"), str(seconds).encode())],
    )
