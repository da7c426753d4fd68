"""The YAML of the gateway the app tests and the fuzzing run, and of its APIs."""

from __future__ import annotations

from typing import Any

from reprise.testing.servers import free_port

ONE_QUESTION = 'ignore-system-messages="true" max-message-count="3"'


def lookup_policy(
    threshold: float = 0.15,
    embeddings: str = "local-embed",
    extra: str = ONE_QUESTION,
    vary_by: str = "",
    rate_limit: str = "",
    duration: int = 60,
) -> str:
    """A semantic-cache lookup and store, with `rate_limit` (policy XML) after the lookup."""
    return f"""
      <policies>
        <inbound>
          <base />
          <llm-semantic-cache-lookup score-threshold="{threshold}"
              embeddings-backend-id="{embeddings}" {extra}>{vary_by}
          </llm-semantic-cache-lookup>
          {rate_limit}
        </inbound>
        <outbound>
          <llm-semantic-cache-store duration="{duration}" />
          <base />
        </outbound>
      </policies>"""


def api_yaml(name: str, backend: str = "chat", **policy: Any) -> str:
    """An entry of `apis:` at `/{name}` on `backend`, with `lookup_policy(**policy)`."""
    xml = lookup_policy(**policy).replace("\n", "\n      ")
    return f"""
  - name: {name}
    path: /{name}
    backend: {backend}
    policies: |{xml}
"""


def app_config_yaml(upstream: str, *, subscriptions: bool = False, budget_ms: float = 5000) -> str:
    """The test gateway: one API per behaviour under test.

    The lookup budget is generous: on a loaded CI machine an embedding can take
    longer than the 250 ms default, and a FAILED lookup is not what most tests test.
    """
    dead = free_port()  # nothing listens there: a dead embeddings backend
    by_team = (
        '<rate-limit-by-key calls="1" renewal-period="60" '
        """counter-key='@(context.Request.Headers.GetValueOrDefault("x-team", "none"))' />"""
    )
    subs = (
        """
subscriptions:
  team-a: { key: "key-team-a" }
  team-b: { key: "key-team-b" }
"""
        if subscriptions
        else ""
    )
    apis = [
        api_yaml("chat"),
        api_yaml("keep-system", extra=""),
        api_yaml("rl", rate_limit='<rate-limit calls="2" renewal-period="60" />'),
        api_yaml("rlk", rate_limit=by_team),
        api_yaml("ttl", duration=1),
        api_yaml("ttl2", duration=2),
        api_yaml("dead", embeddings="dead-embed"),
        api_yaml("authed", backend="authed"),
        api_yaml("sub", vary_by="<vary-by>@(context.Subscription.Id)</vary-by>"),
        api_yaml("slow", backend="slow"),
        api_yaml("down", backend="down"),
    ]
    return f"""
backends:
  chat: {{ url: "{upstream}/v1" }}
  authed: {{ url: "{upstream}/v1", headers: {{ Authorization: "Bearer upstream-secret" }} }}
  slow: {{ url: "{upstream}/v1", timeout: 0.3 }}
  down: {{ url: "http://127.0.0.1:{dead}/v1" }}
  local-embed: {{ url: local }}
  dead-embed: {{ url: "http://127.0.0.1:{dead}/v1/embeddings" }}
{subs}
cache: {{ url: ":memory:", lookup-budget-ms: {budget_ms} }}
max-body-bytes: 65536
apis:
  - name: plain
    path: /plain
    backend: chat
{"".join(apis)}
"""
