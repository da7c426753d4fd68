"""The policy expressions Reprise compiles, and the ones it refuses by name."""

from __future__ import annotations

import pytest

from reprise._exceptions import ConfigError
from reprise._gateway.expressions import RequestContext, compile_expression

CTX = RequestContext(
    subscription_id="team-a",
    subscription_key="secret-key-a",
    headers={"x-tenant": "contoso", "x-empty": ""},
    api_id="my-api",
    ip_address="10.0.0.7",
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("@(context.Subscription.Id)", "team-a"),
        ("@(context.Subscription.Key)", "secret-key-a"),
        ("@(context.Api.Id)", "my-api"),
        ("@(context.Request.IpAddress)", "10.0.0.7"),
        ("  @( context.Subscription .Id )  ", "team-a"),
        ("@(context.Subscription?.Id)", "team-a"),
        ('@(context.Request?.Headers?.GetValueOrDefault("x-tenant"))', "contoso"),
        ('@(context.Request.Headers.GetValueOrDefault("x-missing", "why?. so"))', "why?. so"),
        ('@(context.Request.Headers.GetValueOrDefault("X-Tenant", "none"))', "contoso"),
        ('@(context.Request.Headers.GetValueOrDefault("X-Missing", "none"))', "none"),
        ('@(context.Request.Headers.GetValueOrDefault("x-tenant"))', "contoso"),
        ('@(context.Request.Headers.GetValueOrDefault("x-missing"))', ""),
        ('@(context.Request.Headers.GetValueOrDefault("x-empty", "d"))', ""),
        ('@( context.Request.Headers.GetValueOrDefault( "X-Tenant" , "" ) )', "contoso"),
        ('@(context.Request.Headers.GetValueOrDefault("x-missing", "say \\"hi\\""))', 'say "hi"'),
        ("plain-literal", "plain-literal"),
        ("with spaces kept", "with spaces kept"),
    ],
)
def test_supported_expressions_evaluate(source: str, expected: str) -> None:
    assert compile_expression(source).evaluate(CTX) == expected


def test_source_is_kept_for_messages_and_traces() -> None:
    expr = compile_expression("@(context.Api.Id)")
    assert expr.source == "@(context.Api.Id)"


def test_headers_are_looked_up_case_insensitively_with_starlette_headers() -> None:
    from starlette.datastructures import Headers

    ctx = RequestContext(headers=Headers({"X-Tenant": "fabrikam"}))
    expr = compile_expression('@(context.Request.Headers.GetValueOrDefault("x-TENANT", ""))')
    assert expr.evaluate(ctx) == "fabrikam"


def test_missing_facts_are_empty_strings() -> None:
    assert compile_expression("@(context.Subscription.Id)").evaluate(RequestContext()) == ""


@pytest.mark.parametrize(
    "source",
    [
        "@(context.Subscription.Name)",
        "@(context.User.Email)",
        '@(context.Request.Headers["x"])',
        '@(context.Request.Headers.GetValueOrDefault("a", "b", "c"))',
        "@(DateTime.Now.ToString())",
        '@{ return "x"; }',
        "tenant-@(context.Api.Id)",
        "@(context.Api.Id)@(context.Api.Id)",
    ],
)
def test_unsupported_expressions_are_config_errors_naming_them(source: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_expression(source)
    assert source.strip() in str(info.value)


def test_request_context_repr_never_shows_the_key() -> None:
    assert "secret-key-a" not in repr(CTX)
    assert "team-a" in repr(CTX)
