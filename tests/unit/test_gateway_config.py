"""The gateway's YAML config: the issue's example verbatim, env expansion, and every refusal."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from reprise._exceptions import ConfigError
from reprise._gateway.config import (
    Backend,
    CacheSettings,
    GatewayConfig,
    Subscription,
    load_config,
    parse_config,
)
from reprise._gateway.expressions import RequestContext
from reprise._gateway.policies import RateLimit, SemanticCacheLookup, SemanticCacheStore

EXAMPLE = Path(__file__).parents[2] / "examples" / "gateway.yaml"

MINIMAL = """\
backends:
  chat: { url: "http://upstream:9000/v1/" }
  emb: { url: local }
apis:
  - name: a
    path: /a/
    backend: chat
"""

POLICIES = """\
    policies: |
      <policies>
        <inbound>
          <llm-semantic-cache-lookup score-threshold="0.1" embeddings-backend-id="emb" />
          <rate-limit calls="10" renewal-period="60" />
        </inbound>
        <outbound>
          <llm-semantic-cache-store duration="60" />
        </outbound>
      </policies>
"""


def error(text: str, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), source="gw.yaml")
    return str(info.value)


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-upstream")
    monkeypatch.setenv("TEAM_A_KEY", "key-for-team-a")


@pytest.mark.usefixtures("example_env")
def test_issue_example_loads_verbatim() -> None:
    config = load_config(EXAMPLE)
    chat, emb = config.backends["chat-backend"], config.backends["embeddings-backend"]
    assert chat.url == "http://127.0.0.1:9000/v1"
    assert dict(chat.headers) == {"Authorization": "Bearer sk-upstream"}
    assert not chat.is_local
    assert emb.is_local
    assert config.subscriptions == (
        Subscription("team-a", "key-for-team-a"),
        Subscription("team-b", "key-for-team-b"),
    )
    assert config.cache == CacheSettings(url="./reprise-data")
    (api,) = config.apis
    assert (api.name, api.path, api.backend) == ("my-api", "/my-api", chat)
    assert api.embeddings == emb
    lookup = api.lookup
    assert isinstance(lookup, SemanticCacheLookup)
    assert lookup.score_threshold == 0.15
    assert lookup.ignore_system_messages is True
    assert lookup.max_message_count == 10
    assert lookup.vary_by_values(RequestContext(subscription_id="team-b")) == ("team-b",)
    assert isinstance(api.inbound[1], RateLimit)
    assert api.store == SemanticCacheStore(duration=60)
    assert api.store.line == 27
    assert lookup.line == 20  # lines count from the top of the YAML file
    assert config.embeddings_backends == (emb,)
    assert config.source == str(EXAMPLE)


@pytest.mark.usefixtures("example_env")
def test_config_is_frozen_and_never_shows_secrets() -> None:
    config = load_config(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_body_bytes = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.backends["x"] = config.backends["chat-backend"]  # type: ignore[index]
    assert {config.apis[0]: 1}[config.apis[0]] == 1  # an Api can key a dict
    text = repr(config)
    assert "sk-upstream" not in text
    assert "key-for-team-a" not in text
    assert "key-for-team-b" not in text


def test_minimal_config_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.backends["chat"].url == "http://upstream:9000/v1"  # trailing slash dropped
    assert config.backends["chat"].timeout == 300.0
    assert config.subscriptions == ()
    assert config.cache == CacheSettings()
    assert config.cache.lookup_budget_ms == 250
    assert config.max_body_bytes == 16 * 1024 * 1024
    (api,) = config.apis
    assert api.path == "/a"
    assert api.inbound == api.outbound == ()
    assert api.lookup is None
    assert not api.cached
    assert config.embeddings_backends == ()


def test_all_settings() -> None:
    text = """\
    backends:
      chat:
        url: https://example.openai.azure.com
        headers: { api-key: abc, X-Version: 2 }
        timeout: 12.5
      emb: { url: "https://emb.example/v1/embeddings", model: text-embedding-3-small }
      model: { url: local, threads: 2 }
    subscriptions:
      s1: { key: k1 }
    cache:
      url: redis://localhost:6379
      lookup-budget-ms: 100
      share-across-credentials: true
      candidates: 3
      max-lookups-in-flight: 16
      max-lookups-queued: 40
    max-body-bytes: 1000
    apis:
      - { name: a, path: /a, backend: chat }
    """
    config = parse_config(textwrap.dedent(text))
    chat = config.backends["chat"]
    assert dict(chat.headers) == {"api-key": "abc", "X-Version": "2"}
    assert chat.timeout == 12.5
    assert config.backends["emb"] == Backend(
        "emb", "https://emb.example/v1/embeddings", model="text-embedding-3-small"
    )
    assert config.backends["model"] == Backend("model", "local", threads=2)
    assert config.cache == CacheSettings("redis://localhost:6379", 100.0, True, 3, 16, 40)
    assert config.max_body_bytes == 1000


# --- environment variables -------------------------------------------------------------


def test_env_expansion_defaults_escapes_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGET", "75")
    monkeypatch.setenv("SHARE", "true")
    monkeypatch.delenv("UNSET_HOST", raising=False)
    text = """\
    # ${NOT_EXPANDED_IN_COMMENTS}
    backends:
      chat: { url: "http://${UNSET_HOST:-localhost}:9000", headers: { X-Lit: "$${HOME}" } }
    cache:  # block style: an unquoted ${VAR} cannot sit inside { } flow style
      lookup-budget-ms: ${BUDGET}
      share-across-credentials: ${SHARE}
      url: "${BUDGET}"
    apis: [{ name: a, path: /a, backend: chat }]
    """
    config = parse_config(textwrap.dedent(text))
    assert config.backends["chat"].url == "http://localhost:9000"
    assert config.backends["chat"].headers["X-Lit"] == "${HOME}"
    assert config.cache.lookup_budget_ms == 75.0  # a plain ${VAR} is typed after expansion
    assert config.cache.share_across_credentials is True
    assert config.cache.url == "75"  # a quoted one stays a string


def test_env_expansion_reaches_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRESHOLD", "0.05")
    config = parse_config(MINIMAL + POLICIES.replace('"0.1"', '"${THRESHOLD}"'))
    lookup = config.apis[0].lookup
    assert lookup is not None
    assert lookup.score_threshold == 0.05


def test_missing_env_var_names_it_and_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    text = MINIMAL.replace('"http://upstream:9000/v1/"', '"http://${NO_SUCH_VAR}/v1"')
    message = error(text)
    assert message.startswith("gw.yaml: backends.chat.url: line 2: ")
    assert "NO_SUCH_VAR is not set" in message


def test_missing_env_var_inside_policies_names_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    message = error(MINIMAL + POLICIES.replace('duration="60"', 'duration="${NO_SUCH_VAR}"'))
    assert "apis[0].policies: line 15: " in message
    assert "NO_SUCH_VAR" in message


# --- helpers for the app ---------------------------------------------------------------


def test_subscription_for_key() -> None:
    config = GatewayConfig(
        backends={},
        apis=(),
        subscriptions=(Subscription("a", "key-a"), Subscription("b", "key-b")),
    )
    assert config.subscription_for_key("key-b") == Subscription("b", "key-b")
    assert config.subscription_for_key("key-a") == Subscription("a", "key-a")
    assert config.subscription_for_key("key-c") is None
    assert config.subscription_for_key("") is None
    assert config.subscription_for_key("kéy-ä") is None  # non-ASCII must not raise


def test_partition_by_credential_rule() -> None:
    subs = (Subscription("a", "k"),)
    assert GatewayConfig(backends={}, apis=()).partition_by_credential
    shared = CacheSettings(share_across_credentials=True)
    assert not GatewayConfig(backends={}, apis=(), cache=shared).partition_by_credential
    assert not GatewayConfig(backends={}, apis=(), subscriptions=subs).partition_by_credential


def test_match_api_prefers_the_longest_prefix_on_segment_boundaries() -> None:
    text = """\
    backends: { chat: { url: "http://u" } }
    apis:
      - { name: outer, path: /v, backend: chat }
      - { name: inner, path: /v/deep, backend: chat }
      - { name: root, path: /, backend: chat }
    """
    config = parse_config(textwrap.dedent(text))

    def match(path: str) -> tuple[str, str] | None:
        found = config.match_api(path)
        return None if found is None else (found[0].name, found[1])

    assert match("/v/chat/completions") == ("outer", "/chat/completions")
    assert match("/v/deep/chat/completions") == ("inner", "/chat/completions")
    assert match("/v") == ("outer", "")
    assert match("/vx/chat") == ("root", "/vx/chat")
    single = parse_config(MINIMAL)
    assert single.match_api("/ab/x") is None
    assert single.match_api("/b") is None


# --- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "gw.yaml: line 1: missing required key 'backends'"),
        ("- a\n", "gw.yaml: line 1: the config must be a mapping"),
        ("backends: {a: [}\n", "gw.yaml: line 1: invalid YAML"),
        (MINIMAL + "bogus: 1\n", "gw.yaml: bogus: line 8: unknown key"),
        (
            MINIMAL.replace("apis:", "backends: {}\napis:"),
            "gw.yaml: backends: line 4: duplicate key",
        ),
        ("backends: {}\napis: []\n", "gw.yaml: backends: line 1: configure at least one backend"),
        ("backends: []\napis: []\n", "gw.yaml: backends: line 1: must be a mapping"),
        (
            MINIMAL.replace('"http://upstream:9000/v1/"', "ftp://x"),
            "gw.yaml: backends.chat.url: line 2: must be an http(s):// URL or 'local'",
        ),
        (
            MINIMAL.replace("url: local", "url: local, tls: true"),
            "gw.yaml: backends.emb.tls: line 3: unknown key",
        ),
        (
            MINIMAL.replace("url: local", "headers: {}"),
            "gw.yaml: backends.emb: line 3: missing required key 'url'",
        ),
        (
            MINIMAL.replace("url: local", "url: local, timeout: -1"),
            "gw.yaml: backends.emb.timeout: line 3: must be a positive number",
        ),
        (
            MINIMAL.replace("url: local", "url: local, headers: {X: [1]}"),
            "gw.yaml: backends.emb.headers.X: line 3: must be a non-empty string",
        ),
        (
            MINIMAL + "subscriptions: {s: {key: k}, t: {key: k}}\n",
            "gw.yaml: subscriptions.t.key: line 8: same key as 's'",
        ),
        (
            MINIMAL + "subscriptions: {s: {}}\n",
            "subscriptions.s: line 8: missing required key 'key'",
        ),
        (MINIMAL + "subscriptions: {s: k}\n", "subscriptions.s: line 8: must be a mapping"),
        (
            MINIMAL + "cache: {lookup-budget-ms: fast}\n",
            "gw.yaml: cache.lookup-budget-ms: line 8: must be a positive number",
        ),
        (
            MINIMAL + "cache: {share-across-credentials: 'no'}\n",
            "cache.share-across-credentials: line 8: must be true or false",
        ),
        (MINIMAL + "cache: {ttl: 3}\n", "gw.yaml: cache.ttl: line 8: unknown key (allowed"),
        (
            MINIMAL + "cache: {lookup-budget: 3}\n",
            "cache.lookup-budget: line 8: unknown key (did you mean 'lookup-budget-ms'?",
        ),
        (
            MINIMAL + "cache: {max-lookups-queued: 0}\n",
            "gw.yaml: cache.max-lookups-queued: line 8: must be a positive integer",
        ),
        (
            MINIMAL + "max-body-bytes: 0\n",
            "gw.yaml: max-body-bytes: line 8: must be a positive integer",
        ),
        (
            "backends: {c: {url: 'http://u'}}\napis: {}\n",
            "gw.yaml: apis: line 2: must be a non-empty list",
        ),
        (
            MINIMAL.replace("backend: chat", "backend: nope"),
            "apis[0].backend: line 7: unknown backend 'nope'",
        ),
        (
            MINIMAL.replace("backend: chat", "backend: emb"),
            "apis[0].backend: line 7: backend 'emb' is the local embedding model",
        ),
        (MINIMAL.replace("path: /a/", "path: a"), "apis[0].path: line 6: must be a URL path"),
        (
            MINIMAL.replace("path: /a/", "path: /metrics/"),
            "apis[0].path: line 6: '/metrics/' is the gateway's own endpoint",
        ),
        (MINIMAL.replace("    path: /a/\n", ""), "apis[0]: line 5: missing required key 'path'"),
        (
            MINIMAL + "  - { name: a, path: /b, backend: chat }\n",
            "gw.yaml: apis[1].name: line 8: same name as apis[0]",
        ),
        (
            MINIMAL + "  - { name: b, path: /a, backend: chat }\n",
            "gw.yaml: apis[1].path: line 8: same path as apis[0]",
        ),
        (
            MINIMAL + "    policies: 3\n",
            "apis[0].policies: line 8: must be the policy XML as a string",
        ),
        (
            MINIMAL + POLICIES.replace('calls="10"', 'calls="0"'),
            "gw.yaml: apis[0].policies: <rate-limit> line 12: attribute 'calls' must be a positive",
        ),
        (
            MINIMAL + POLICIES.replace('"emb"', '"chat2"'),
            "apis[0].policies: <llm-semantic-cache-lookup> line 11: embeddings-backend-id 'chat2'",
        ),
        (
            MINIMAL + POLICIES.replace("<inbound>", "<inbound><ip-filter action='allow'/>"),
            "gw.yaml: apis[0].policies: <ip-filter> line 10: unsupported element",
        ),
        (
            MINIMAL + "    policies: <policies><inbound><quota calls='1'/></inbound></policies>\n",
            "gw.yaml: apis[0].policies: <quota> line 8: unsupported element",
        ),
        (
            MINIMAL + "    policies: '<p/>'\n    policies-file: p.xml\n",
            "apis[0].policies-file: line 9: give policies or policies-file, not both",
        ),
        (
            MINIMAL + "    policies-file: does-not-exist.xml\n",
            "apis[0].policies-file: line 8: cannot read",
        ),
        (
            MINIMAL.replace("emb: { url: local }", "emb: { url: local, threads: 0 }"),
            "gw.yaml: backends.emb.threads: line 3: must be a positive integer",
        ),
        (
            MINIMAL.replace('v1/" }', 'v1/", threads: 2 }'),
            "gw.yaml: backends.chat.threads: line 2: only for url: local",
        ),
    ],
)
def test_errors_name_the_key_and_line(text: str, expected: str) -> None:
    assert expected in error(text)


def test_policies_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "p.xml").write_text(
        "<policies>\n<inbound>\n<rate-limit calls='2' renewal-period='5'/>\n</inbound>\n</policies>"
    )
    (tmp_path / "gw.yaml").write_text(MINIMAL + "    policies-file: p.xml\n")
    config = load_config(tmp_path / "gw.yaml")
    assert config.apis[0].inbound == (RateLimit(calls=2, renewal_period=5),)
    assert config.apis[0].inbound[0].line == 3


def test_policies_file_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "p.xml").write_text(
        "<policies>\n<inbound>\n<send-request/>\n</inbound>\n</policies>"
    )
    (tmp_path / "gw.yaml").write_text(MINIMAL + "    policies-file: p.xml\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "gw.yaml")
    message = str(info.value)
    assert "apis[0].policies-file" in message
    assert "p.xml" in message
    assert "<send-request> line 3: unsupported element" in message


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = """\
    backends:
      base: &base { url: "http://b", timeout: 5 }
      chat: { <<: *base, url: "http://u" }
    apis: [{ name: a, path: /a, backend: chat }]
    """
    config = parse_config(textwrap.dedent(text))
    assert config.backends["chat"].timeout == 5.0
    assert config.backends["chat"].url == "http://u"


def test_unknown_top_level_keys_are_refused_even_anchor_holders() -> None:
    text = """\
    x-defaults: &defaults { timeout: 5 }
    backends: { chat: { <<: *defaults, url: "http://u" } }
    apis: [{ name: a, path: /a, backend: chat }]
    """
    assert "gw.yaml: x-defaults: line 1: unknown key" in error(text)


def test_chat_backend_url_must_not_carry_a_query() -> None:
    text = MINIMAL.replace('"http://upstream:9000/v1/"', '"http://u/v1?api-version=1"')
    assert "apis[0].backend: line 7: backend 'chat' serves an API" in error(text)
    # An embeddings endpoint may need one (Azure's api-version).
    ok = MINIMAL.replace("url: local", 'url: "https://e/embeddings?api-version=1"')
    assert parse_config(ok).backends["emb"].url == "https://e/embeddings?api-version=1"


SUBS = "subscriptions: { s: { key: k } }\n"


def test_warns_when_subscriptions_share_a_cache() -> None:
    config = parse_config(MINIMAL + POLICIES + SUBS, source="gw.yaml")
    (warning,) = config.warnings
    assert warning.startswith("gw.yaml: apis[0].policies line 11: all subscriptions share")
    keyed = POLICIES.replace(
        'embeddings-backend-id="emb" />',
        'embeddings-backend-id="emb"><vary-by>@(context.Subscription?.Id)</vary-by>'
        "</llm-semantic-cache-lookup>",
    )
    assert parse_config(MINIMAL + keyed + SUBS).warnings == ()
    assert parse_config(MINIMAL + POLICIES).warnings == ()  # keys partition by default


def test_warns_when_share_across_credentials_cannot_apply() -> None:
    config = parse_config(MINIMAL + SUBS + "cache: { share-across-credentials: true }\n")
    (warning,) = config.warnings
    assert "share-across-credentials has no effect" in warning


def test_load_config_logs_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "gw.yaml").write_text(MINIMAL + POLICIES + SUBS)
    with caplog.at_level("WARNING", logger="reprise.config"):
        config = load_config(tmp_path / "gw.yaml")
    assert [r.getMessage() for r in caplog.records] == list(config.warnings)
    assert "k" not in " ".join(config.warnings).split()  # the key itself is never named


@pytest.mark.usefixtures("example_env")
@pytest.mark.parametrize("path", sorted(EXAMPLE.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_loads_without_warnings(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    config = load_config(path)
    assert config.apis
    assert config.warnings == ()


def test_expanded_values_stay_strings_where_strings_are_meant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEY", "0123")  # YAML 1.1 would read a plain 0123 as the octal 83
    monkeypatch.setenv("FLAG", "yes")
    text = MINIMAL + "subscriptions:\n  s:\n    key: ${KEY}\n  t:\n    key: ${FLAG}\n"
    config = parse_config(text)
    assert [s.key for s in config.subscriptions] == ["0123", "yes"]


def test_an_empty_env_var_is_no_subscription_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPTY_KEY", "")
    text = MINIMAL + 'subscriptions:\n  s: { key: "${EMPTY_KEY}" }\n'
    assert "subscriptions.s.key: line 9: must be a non-empty string" in error(text)


def test_expanded_numbers_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGET", "soon")
    text = MINIMAL + "cache:\n  lookup-budget-ms: ${BUDGET}\n"
    assert "cache.lookup-budget-ms: line 9: must be a positive number" in error(text)
    monkeypatch.setenv("BUDGET", "-5")
    assert "must be a positive number" in error(text)


@pytest.mark.usefixtures("example_env")
def test_check_command_shows_the_policies(capsys: pytest.CaptureFixture[str]) -> None:
    from reprise._cli import main

    assert main(["check", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "ok (2 subscriptions, cache by policy)" in out
    assert "lookup: distance <= 0.15 with 'embeddings-backend'" in out
    assert "vary-by @(context.Subscription.Id)" in out
    assert "rate-limit: 10 calls / 60 s" in out
    assert "store: 200 responses for 60 s" in out
    assert "key-for-team" not in out


def test_check_command_fails_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reprise._cli import main

    (tmp_path / "gw.yaml").write_text(MINIMAL + "bogus: 1\n")
    assert main(["check", "--config", str(tmp_path / "gw.yaml")]) == 2
    assert "bogus: line 8: unknown key" in capsys.readouterr().err


def test_backend_may_come_from_set_backend_service() -> None:
    text = MINIMAL.replace("    backend: chat\n", "") + (
        "    policies: |\n"
        '      <policies><inbound><set-backend-service backend-id="chat" /></inbound>\n'
        '      <backend><forward-request timeout="30" /></backend></policies>\n'
    )
    (api,) = parse_config(text).apis
    assert api.backend.id == "chat"
    assert api.backend.timeout == 30.0  # the forward-request timeout, for this API only
    assert parse_config(text).backends["chat"].timeout == 300.0


def test_backend_and_set_backend_service_must_agree() -> None:
    text = MINIMAL.replace(
        "  emb: { url: local }", "  emb: { url: local }\n  other: { url: 'http://o' }"
    )
    text += (
        "    policies: <policies><inbound><set-backend-service backend-id='other'/>"
        "</inbound></policies>\n"
    )
    message = error(text)
    assert "apis[0].backend: line 8: 'chat', but the policies' <set-backend-service>" in message
    assert "'other'" in message


def test_messages_never_echo_a_misplaced_key_or_a_url_password() -> None:
    message = error(MINIMAL + "subscriptions: {s: sk-very-secret}\n")
    assert "subscriptions.s: line 8: must be a mapping, not a string" in message
    assert "sk-very-secret" not in message
    message = error(MINIMAL.replace('"http://upstream:9000/v1/"', '"ftp://me:hunter2@h/x"'))
    assert "ftp://me:***@h/x" in message
    assert "hunter2" not in message


def test_redact() -> None:
    from reprise._gateway.config import redact

    assert redact("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("http://u:p@h/v1") == "http://u:***@h/v1"
    assert redact("http://h/v1") == "http://h/v1"
    assert "pw" not in repr(CacheSettings(url="redis://:pw@h:6379"))
    assert "redis://:***@h:6379" in repr(CacheSettings(url="redis://:pw@h:6379"))


def test_serve_refuses_a_bad_config_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reprise._cli import main

    (tmp_path / "gw.yaml").write_text(MINIMAL + POLICIES.replace('calls="10"', 'calls="ten"'))
    assert main(["serve", "--config", str(tmp_path / "gw.yaml"), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "apis[0].policies: <rate-limit> line 12: attribute 'calls' must be a positive" in err
