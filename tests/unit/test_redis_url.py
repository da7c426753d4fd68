"""The Redis store's own options ride in the URL's query; redis-py's stay there."""

from __future__ import annotations

import pytest

from reprise._exceptions import ConfigError
from reprise._stores.redis import RedisStore, split_url
from reprise._stores.redis_ratelimit import RedisRateLimiter


def test_store_options_are_taken_out_and_the_rest_is_kept() -> None:
    url = (
        "rediss://user:secret@cache.example:6380/2?prefix=app%3A1:&timeout=0.05&ssl_cert_reqs=none"
    )

    rest, options = split_url(url)

    assert rest == "rediss://user:secret@cache.example:6380/2?ssl_cert_reqs=none"
    assert options == {"prefix": "app:1:", "timeout": "0.05"}


def test_url_options_configure_the_store() -> None:
    store = RedisStore("redis://127.0.0.1:1/0?prefix=tenant:&ef_runtime=40", prefix="ignored:")

    assert (store.prefix, store.index_name, store.ef_runtime) == ("tenant:", "tenant:idx", 40)


def test_without_options_the_defaults_hold() -> None:
    store = RedisStore("redis://127.0.0.1:1/0")

    assert (store.prefix, store.index_name) == ("reprise:", "reprise:idx")


@pytest.mark.parametrize("query", ["prefix=", "timeout=soon", "ef_runtime=1.5"])
def test_a_bad_url_option_is_a_config_error(query: str) -> None:
    with pytest.raises(ConfigError):
        RedisStore(f"redis://127.0.0.1:1/0?{query}")


def test_the_rate_limiter_reads_the_same_url_options() -> None:
    assert RedisRateLimiter("redis://127.0.0.1:1/0?prefix=t:").prefix == "t:ratelimit:"
    with pytest.raises(ConfigError):
        RedisRateLimiter("redis://127.0.0.1:1/0?timeout=soon")
