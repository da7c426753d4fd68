"""APIM policy XML: what is accepted, what it becomes, and how refusals name the line."""

from __future__ import annotations

import pytest

from reprise._exceptions import ConfigError
from reprise._gateway.expressions import RequestContext
from reprise._gateway.policies import (
    Policies,
    RateLimit,
    RateLimitByKey,
    SemanticCacheLookup,
    SemanticCacheStore,
    parse_policies,
)

BACKENDS = ("embeddings-backend", "chat-backend")


def parse(xml: str) -> Policies:
    return parse_policies(xml, backends=BACKENDS, where="apis[0].policies")


def doc(inbound: str = "", outbound: str = "", extra: str = "") -> str:
    return (
        f"<policies><inbound>{inbound}</inbound><outbound>{outbound}</outbound>{extra}</policies>"
    )


LOOKUP = (
    '<llm-semantic-cache-lookup score-threshold="0.1" embeddings-backend-id="embeddings-backend"/>'
)
STORE = '<llm-semantic-cache-store duration="60"/>'


def error(xml: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(xml)
    return str(info.value)


def test_issue_example_policies() -> None:
    xml = """<policies>
  <inbound>
    <base />
    <llm-semantic-cache-lookup score-threshold="0.15" embeddings-backend-id="embeddings-backend"
        embeddings-backend-auth="system-assigned" ignore-system-messages="true"
        max-message-count="10">
      <vary-by>@(context.Subscription.Id)</vary-by>
    </llm-semantic-cache-lookup>
    <rate-limit calls="10" renewal-period="60" />
  </inbound>
  <outbound>
    <llm-semantic-cache-store duration="60" />
    <base />
  </outbound>
</policies>"""
    policies = parse(xml)
    lookup, rate = policies.inbound
    assert isinstance(lookup, SemanticCacheLookup)
    assert lookup.score_threshold == 0.15
    assert lookup.embeddings_backend_id == "embeddings-backend"
    assert not hasattr(lookup, "embeddings_backend_auth")  # accepted, and nothing to keep
    assert lookup.ignore_system_messages is True
    assert lookup.max_message_count == 10
    assert lookup.family == "llm"
    assert lookup.line == 4
    assert lookup.vary_by_values(RequestContext(subscription_id="team-a")) == ("team-a",)
    assert rate == RateLimit(calls=10, renewal_period=60)
    assert policies.outbound == (SemanticCacheStore(duration=60),)
    assert (rate.line, policies.outbound[0].line) == (9, 12)
    assert policies.lookup is lookup
    assert policies.store == policies.outbound[0]


def test_azure_openai_family_is_accepted_and_recorded() -> None:
    policies = parse(
        doc(
            '<azure-openai-semantic-cache-lookup score-threshold="0" '
            'embeddings-backend-id="embeddings-backend"/>',
            '<azure-openai-semantic-cache-store duration="5" cache-response="true"/>',
        )
    )
    assert policies.lookup is not None
    assert policies.store is not None
    assert policies.lookup.family == "azure-openai"
    assert policies.lookup.score_threshold == 0.0  # 0 is valid: exact repeats only
    assert policies.store.family == "azure-openai"
    assert policies.store.cache_response is True


def test_lookup_defaults() -> None:
    lookup = parse(doc(LOOKUP, STORE)).lookup
    assert lookup is not None
    assert lookup.ignore_system_messages is False
    assert lookup.max_message_count is None
    assert lookup.vary_by == ()


def test_store_caches_200_only_unless_cache_response() -> None:
    assert SemanticCacheStore(duration=1).cacheable_statuses == {200}
    wide = SemanticCacheStore(duration=1, cache_response=True).cacheable_statuses
    assert {200, 201, 204} <= wide
    assert not {404, 429, 500} & wide


def test_vary_by_values_keep_document_order() -> None:
    lookup_xml = (
        '<llm-semantic-cache-lookup score-threshold="0.1" '
        'embeddings-backend-id="embeddings-backend">'
        "<vary-by>@(context.Api.Id)</vary-by>"
        '<vary-by>@(context.Request.Headers.GetValueOrDefault("x-tenant", "-"))</vary-by>'
        "<vary-by>v2</vary-by>"
        "</llm-semantic-cache-lookup>"
    )
    lookup = parse(doc(lookup_xml, STORE)).lookup
    assert lookup is not None
    ctx = RequestContext(api_id="my-api", headers={"x-tenant": "contoso"})
    assert lookup.vary_by_values(ctx) == ("my-api", "contoso", "v2")
    assert "".join(lookup.vary_by_values(ctx)) == "my-apicontosov2"  # APIM's concatenation


def test_rate_limit_by_key() -> None:
    xml = doc(
        '<rate-limit-by-key calls="3" renewal-period="10" increment-count="2" '
        'counter-key="@(context.Request.IpAddress)" retry-after-header-name="X-Retry"/>'
    )
    (policy,) = parse(xml).inbound
    assert isinstance(policy, RateLimitByKey)
    assert (policy.calls, policy.renewal_period, policy.increment_count) == (3, 10, 2)
    assert policy.counter_key.evaluate(RequestContext(ip_address="1.2.3.4")) == "1.2.3.4"
    assert policy.retry_after_header_name == "X-Retry"


def test_policy_order_is_kept() -> None:
    rate = '<rate-limit calls="1" renewal-period="1"/>'
    by_key = '<rate-limit-by-key calls="1" renewal-period="1" counter-key="k"/>'
    policies = parse(doc(rate + LOOKUP + by_key, STORE))
    kinds = [type(p) for p in policies.inbound]
    assert kinds == [RateLimit, SemanticCacheLookup, RateLimitByKey]


def test_backend_and_on_error_sections_may_say_base() -> None:
    extra = "<backend><forward-request /></backend><on-error><base/></on-error>"
    assert parse(doc(LOOKUP, STORE, extra)).lookup is not None
    assert parse("<policies/>") == Policies()


def test_set_backend_service_and_forward_request_are_resolved_at_load() -> None:
    policies = parse(
        doc(
            '<set-backend-service backend-id="chat-backend" />' + LOOKUP,
            STORE,
            '<backend><forward-request timeout="120" buffer-response="false" /></backend>',
        )
    )
    assert policies.backend_id == "chat-backend"
    assert policies.forward_timeout == 120
    assert [type(p) for p in policies.inbound] == [SemanticCacheLookup]
    assert parse(doc(LOOKUP, STORE)).forward_timeout is None


def test_comments_and_xml_declaration_are_fine() -> None:
    xml = '<?xml version="1.0" encoding="utf-8"?>\n<!-- exported from APIM -->\n' + doc(
        "<!-- cache first -->" + LOOKUP, "<!-- then store -->" + STORE
    )
    assert parse(xml).lookup is not None


def test_line_offset_counts_from_the_config_file() -> None:
    xml = (
        "<policies>\n<inbound>\n"
        + LOOKUP
        + "\n</inbound><outbound>"
        + STORE
        + "</outbound></policies>"
    )
    policies = parse_policies(xml, backends=BACKENDS, line_offset=20)
    assert policies.lookup is not None
    assert policies.lookup.line == 23


@pytest.mark.parametrize(
    ("xml", "fragments"),
    [
        (
            doc('<rate-limit calls="0" renewal-period="60"/>'),
            ["<rate-limit>", "line 1", "'calls' must be a positive integer"],
        ),
        (
            doc('<rate-limit calls="ten" renewal-period="60"/>'),
            ["'calls' must be a positive integer"],
        ),
        (doc('<rate-limit calls="10"/>'), ["<rate-limit>", "'renewal-period' is required"]),
        (
            doc(
                '<rate-limit calls="1" renewal-period="1"/>'
                '<rate-limit calls="1" renewal-period="1"/>'
            ),
            ["<rate-limit>", "only once"],
        ),
        (
            doc('<rate-limit calls="1" renewal-period="1" retry-after-variable-name="v"/>'),
            ["retry-after-variable-name", "not supported"],
        ),
        (
            doc('<rate-limit calls="1" renewal-period="1" remaining-calls-header-name="R"/>'),
            ["remaining-calls-header-name", "not supported"],
        ),
        (
            doc(
                '<rate-limit-by-key calls="1" renewal-period="1" counter-key="k" '
                'total-calls-header-name="T"/>'
            ),
            ["<rate-limit-by-key>", "total-calls-header-name", "not supported"],
        ),
        (
            doc('<rate-limit calls="1" renewal-period="1" counter-key="x"/>'),
            ["unknown attribute 'counter-key'"],
        ),
        (doc('<rate-limit calls="@(1+1)" renewal-period="1"/>'), ["'calls' must be a constant"]),
        (doc('<rate-limit-by-key calls="1" renewal-period="1"/>'), ["'counter-key' is required"]),
        (
            doc(
                '<rate-limit-by-key calls="1" renewal-period="1" counter-key="k" '
                'increment-condition="@(context.Response.StatusCode == 200)"/>'
            ),
            ["<rate-limit-by-key>", "increment-condition", "not supported"],
        ),
        (
            doc(
                '<rate-limit-by-key calls="1" renewal-period="1" counter-key="@(context.User.Id)"/>'
            ),
            ["<rate-limit-by-key>", "'counter-key'", "@(context.User.Id)"],
        ),
        (doc(LOOKUP.replace("0.1", "1.5"), STORE), ["'score-threshold' must be a cosine distance"]),
        (doc(LOOKUP.replace("0.1", "-0.1"), STORE), ["'score-threshold'"]),
        (
            doc(LOOKUP.replace('score-threshold="0.1"', ""), STORE),
            ["'score-threshold' is required"],
        ),
        (
            doc(LOOKUP.replace('embeddings-backend"', 'nowhere"'), STORE),
            ["embeddings-backend-id 'nowhere' is not a configured backend", "embeddings-backend"],
        ),
        (
            doc(LOOKUP.replace("/>", ' embeddings-backend-auth="user-assigned"/>'), STORE),
            ["embeddings-backend-auth", "system-assigned"],
        ),
        (
            doc(LOOKUP.replace("/>", ' ignore-system-messages="yes"/>'), STORE),
            ['\'ignore-system-messages\' must be "true" or "false"'],
        ),
        (doc(LOOKUP.replace("/>", ' max-message-count="-2"/>'), STORE), ["'max-message-count'"]),
        (
            doc(
                LOOKUP.replace(
                    "/>", "><vary-by>@(context.Deployment.Id)</vary-by></llm-semantic-cache-lookup>"
                ),
                STORE,
            ),
            ["<vary-by>", "@(context.Deployment.Id)"],
        ),
        (
            doc(LOOKUP.replace("/>", "><vary-by/></llm-semantic-cache-lookup>"), STORE),
            ["<vary-by> is empty"],
        ),
        (
            doc(LOOKUP.replace("/>", "><cache-key/></llm-semantic-cache-lookup>"), STORE),
            ["unsupported element <cache-key>"],
        ),
        (doc(LOOKUP + LOOKUP, STORE), ["only once"]),
        (doc(LOOKUP), ["<llm-semantic-cache-lookup>", "no semantic-cache-store"]),
        (doc("", STORE), ["<llm-semantic-cache-store>", "no semantic-cache-lookup"]),
        (doc(LOOKUP, "<llm-semantic-cache-store/>"), ["'duration' is required"]),
        (
            doc(LOOKUP, '<llm-semantic-cache-store duration="1.5"/>'),
            ["'duration' must be a positive integer"],
        ),
        (
            doc(LOOKUP, '<llm-semantic-cache-store duration="5" cache-response="maybe"/>'),
            ["'cache-response'"],
        ),
        (doc(LOOKUP, STORE + STORE), ["only once"]),
        (doc(STORE, LOOKUP), ["belongs in <outbound>, not <inbound>"]),
        (
            doc('<set-header name="x" exists-action="override"><value>y</value></set-header>'),
            ["<set-header>", "unsupported element in <inbound>"],
        ),
        (doc("", "<find-and-replace from='a' to='b'/>"), ["<find-and-replace>", "<outbound>"]),
        (doc("<base x='1'/>"), ["<base>", "unknown attribute 'x'"]),
        (
            doc(LOOKUP.replace("score-threshold", "score-treshold"), STORE),
            ["unknown attribute 'score-treshold' (did you mean 'score-threshold'?"],
        ),
        (doc(extra="<backend><retry/></backend>"), ["<retry>", "<backend>"]),
        (
            doc(extra='<backend><forward-request buffer-response="true"/></backend>'),
            ["<forward-request>", "'buffer-response' must be \"false\""],
        ),
        (
            doc(extra='<backend><forward-request timeout="0"/></backend>'),
            ["<forward-request>", "'timeout' must be a positive integer"],
        ),
        (
            doc(extra='<backend><forward-request follow-redirects="true"/></backend>'),
            ["<forward-request>", "unknown attribute 'follow-redirects'"],
        ),
        (
            doc('<set-backend-service backend-id="nowhere"/>'),
            ["<set-backend-service>", "backend-id 'nowhere' is not a configured backend"],
        ),
        (
            doc('<set-backend-service base-url="https://x"/>'),
            ["<set-backend-service>", "base-url", "name it with backend-id"],
        ),
        (
            doc(
                '<authentication-managed-identity resource="https://cognitiveservices.azure.com"/>'
            ),
            ["<authentication-managed-identity>", "backends.<id>.headers"],
        ),
        (
            doc('<azure-openai-token-limit tokens-per-minute="500"/>'),
            ["<azure-openai-token-limit>", "use rate-limit"],
        ),
        (doc("", "<llm-emit-token-metric/>"), ["<llm-emit-token-metric>", "/metrics"]),
        (doc(extra="<on-error><return-response/></on-error>"), ["<return-response>", "<on-error>"]),
        (doc(extra="<inbound/>"), ["<inbound>", "twice"]),
        ("<policies><outgoing/></policies>", ["<outgoing>", "unknown section"]),
        (doc("rate-limit calls=1"), ["<inbound>", "unexpected text 'rate-limit calls=1'"]),
        (doc('<rate-limit calls="1" renewal-period="1">x</rate-limit>'), ["unexpected text"]),
        (doc(LOOKUP.replace("/>", ">x</llm-semantic-cache-lookup>"), STORE), ["unexpected text"]),
        ("<policy/>", ["<policy>", "root element must be <policies>"]),
        ("<policies><inbound></policies>", ["not well-formed XML"]),
        ("", ["not well-formed XML"]),
        ('<!DOCTYPE p [<!ENTITY e "x">]><policies/>', ["DOCTYPE is not allowed"]),
    ],
)
def test_errors_name_the_element_and_reason(xml: str, fragments: list[str]) -> None:
    message = error(xml)
    assert message.startswith("apis[0].policies: ")
    for fragment in fragments:
        assert fragment in message


def test_error_line_is_the_elements_line_plus_offset() -> None:
    xml = (
        "<policies>\n  <inbound>\n    <rate-limit calls='x' renewal-period='1'/>\n"
        "  </inbound>\n</policies>"
    )
    with pytest.raises(ConfigError) as info:
        parse_policies(xml, backends=(), where="apis[0].policies", line_offset=10)
    assert str(info.value) == (
        "apis[0].policies: <rate-limit> line 13: attribute 'calls' must be a positive integer"
    )
