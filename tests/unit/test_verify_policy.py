"""The verifier's strictness as a lookup-policy attribute (a Reprise extension to APIM's)."""

from __future__ import annotations

import pytest

from reprise._exceptions import ConfigError
from reprise._gateway.policies import SemanticCacheLookup, parse_policies


def _lookup(attrs: str) -> SemanticCacheLookup:
    xml = (
        "<policies><inbound>"
        f'<llm-semantic-cache-lookup score-threshold="0.15" embeddings-backend-id="emb" {attrs}/>'
        '</inbound><outbound><llm-semantic-cache-store duration="60"/></outbound></policies>'
    )
    (lookup,) = parse_policies(xml, backends=("emb",), where="test").inbound
    assert isinstance(lookup, SemanticCacheLookup)
    return lookup


def test_target_precision_is_read_and_defaults_to_the_cache() -> None:
    assert _lookup('target-precision="0.95"').target_precision == 0.95
    assert _lookup("").target_precision is None


@pytest.mark.parametrize("value", ["1", "0", "1.5", "high"])
def test_a_target_precision_outside_zero_to_one_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="target-precision"):
        _lookup(f'target-precision="{value}"')
