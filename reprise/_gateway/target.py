"""Which request targets the gateway will act on at all, checked before routing.

A path the client sends is decoded (`%2e%2e` is `..`) and then appended to a
backend's base URL; a `..` or `.` segment there would be resolved by the HTTP
client and could reach a path outside the base (`/v1/../admin`), so such paths
are refused rather than normalised: no client needs them. Methods are the ones
an OpenAI-compatible API uses; anything else (TRACE, CONNECT, an invented
verb) is never forwarded.
"""

from __future__ import annotations

from reprise._gateway.errors import GatewayError

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def check_target(path: str, method: str) -> None:
    """Raise the client's 4xx for a method or a path the gateway never forwards."""
    if method not in METHODS:
        raise GatewayError(
            405,
            f"method {method[:20]!r} is not allowed",
            code="method_not_allowed",
            headers=[(b"allow", ", ".join(sorted(METHODS)).encode())],
        )
    if any(segment in (".", "..") for segment in path.split("/")):
        raise GatewayError(
            400, "the path must not contain '.' or '..' segments", code="invalid_path"
        )
