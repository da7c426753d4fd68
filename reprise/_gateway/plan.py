"""What a lookup policy decides about a request before the cache is asked: a frozen plan.

`plan_lookup` is one pure function of the request body, the policy and the
caller's vary-by values. The plan it returns is everything the rest of the
request needs from the lookup: the question and context to look up and store
under, the partition, the cache to use, whether the answer may be stored and,
if the lookup is skipped, why. The lookup itself, the forwarding and the
outbound store all read the same plan; none of them fills it in later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reprise._gateway.caches import CacheSlot
from reprise._gateway.policies import SemanticCacheLookup
from reprise._prompt import Prompt
from reprise._request import Endpoint, extract_prompt, over_message_limit, partition_key


@dataclass(frozen=True, slots=True)
class LookupPlan:
    """One lookup policy's plan for one request.

    `bypass` is why the cache is not asked ("" when it is); `may_store` is
    whether a fresh answer may be written (APIM's `max-message-count` and
    `Cache-Control: no-store` say no; a failing cache too, see `failed`).
    """

    prompt: Prompt
    partition: str
    slot: CacheSlot
    policy: SemanticCacheLookup
    may_store: bool
    bypass: str = ""
    vary_by: int = 0

    @property
    def exact_key(self) -> str:
        """The exact-tier key: equal for two requests iff an exact repeat would hit."""
        return self.prompt.key(self.partition)

    def failed(self) -> LookupPlan:
        """This plan once the cache failed: a store would fail the same way."""
        return dataclasses.replace(self, may_store=False)

    def trace_fields(self) -> dict[str, Any]:
        """What the trace's `partition` step shows (hashes and sizes, never text)."""
        prompt = self.prompt
        fields: dict[str, Any] = {
            "partition": self.partition,
            "vary_by": self.vary_by,
            "messages": prompt.message_count,
            "context": prompt.describe_context(),
            "question_chars": len(prompt.question),
        }
        if prompt.exact_only:
            fields["exact_only"] = prompt.exact_only
        return fields


def plan_lookup(
    payload: dict[str, Any],
    endpoint: Endpoint,
    policy: SemanticCacheLookup,
    slot: CacheSlot,
    *,
    vary_by: Iterable[str],
    model: str | None,
    directives: Iterable[str],
) -> LookupPlan:
    """The plan of `policy` for a request with this body, vary-by values and Cache-Control.

    `model` overrides the body's model (Azure names the deployment in the path).
    Raises `RequestError` for a body the cache cannot read.
    """
    prompt = extract_prompt(payload, endpoint, ignore_system_messages=policy.ignore_system_messages)
    vary = tuple(vary_by)
    partition = partition_key(
        payload, endpoint=endpoint, model=model, vary_by=vary, attachments=prompt.attachments
    )
    directives = set(directives)
    plan = LookupPlan(
        prompt, partition, slot, policy, "no-store" not in directives, vary_by=len(vary)
    )
    if over_message_limit(prompt, policy.max_message_count):
        reason = f"{prompt.message_count} messages > max-message-count"
        return dataclasses.replace(plan, bypass=reason, may_store=False)
    if "no-cache" in directives:
        return dataclasses.replace(plan, bypass="Cache-Control: no-cache")
    return plan
