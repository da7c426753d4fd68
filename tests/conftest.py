"""Shared fixtures. Fixtures that start servers live in their own modules, loaded here."""

from __future__ import annotations

pytest_plugins: list[str] = ["tests.gateway_fixtures", "tests.redis_server"]
