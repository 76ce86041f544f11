"""The LLM step: ask a model about failures the rules are unsure of, without giving it power.

    consult(snapshot, classification, rule_decision, settings, store=..., backend=...)
      should_consult? ─no─► the rules' decision, unchanged
            │yes
      cache (store, by backend + model + prompt version + fingerprint) ─hit─► merge
            │miss
      build the prompt (redacted, bounded) ─over the token budget─► the rules' decision, noted
            │
      hourly budget (store counter) ─over─► the rules' decision, "over budget" noted
            │
      backend.analyse ─► validate ─► cache ─► merge

Every way this can fail — no model configured, time-out, throttling, 5xx, refusal, content
filter, truncated or invalid JSON, a schema violation, a store outage — ends in the rules'
decision with the reason in ``decision.notes``; nothing here raises to the caller.

The model's answer is *data*: parsed against a strict JSON schema (``VERDICT_SCHEMA``), unknown
fields dropped, never executed. ``merge`` then keeps the safety invariants on its own (the
policy checks them again afterwards): the model may settle an UNKNOWN or an unsure rules
verdict; it may not make a confident PERMISSION/CODE/DATA/CONFIGURATION verdict retryable, may
not choose IGNORE or CANCELED, and its parameter suggestions pass the same bounds as the rules'
(workers at most x2 and never above TRIAGE_MAX_WORKERS, node type one step up the ladder, Spark
conf keys from the allow-list).

Backends implement ``LLMBackend`` (``analyse(request) -> Verdict``): ``OpenAIBackend`` talks to
Azure OpenAI (v1 endpoint, or the versioned API when OPENAI_API_VERSION is set; keyless with
the app's identity, or an API key) or to any OpenAI-compatible endpoint; ``NoopBackend`` is
used when no model is configured. The ``openai`` and ``azure.identity`` packages are imported
only when a backend is built. See docs/llm.md."""

from __future__ import annotations

from shared.llm.schema import PROMPT_VERSION, VERDICT_SCHEMA, LLMAnswer, LLMRequest, Verdict, validate_verdict
from shared.llm.prompt import SYSTEM_PROMPT, estimate_tokens, build_request, cluster_summary
from shared.llm.backends import COGNITIVE_SERVICES_SCOPE, LLMBackend, NoopBackend, OpenAIBackend, backend_from_settings
from shared.llm.merge import should_consult, bound_params, merge
from shared.llm.consult import cache_key, consult

__all__ = [
    "PROMPT_VERSION",
    "SYSTEM_PROMPT",
    "VERDICT_SCHEMA",
    "COGNITIVE_SERVICES_SCOPE",
    "LLMAnswer",
    "LLMRequest",
    "Verdict",
    "LLMBackend",
    "NoopBackend",
    "OpenAIBackend",
    "backend_from_settings",
    "estimate_tokens",
    "build_request",
    "cluster_summary",
    "cache_key",
    "should_consult",
    "bound_params",
    "validate_verdict",
    "merge",
    "consult"
]
