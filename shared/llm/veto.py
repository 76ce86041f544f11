"""The model as a second opinion on automatic retries — it may veto one, never add one.

A retry that rests on firm transient evidence goes ahead without asking: a structured code the
platform set (result state, termination code), a Spark error class or SQLSTATE, an exception type,
a phrase that names a transient cause (throttling, cloud capacity, a concurrent writer). A retry
that rests on a *symptom* alone (``shared.decide.rules.SYMPTOMS``: a connection refused, reset or
timed out, a time-out, a lost executor or driver, a cluster that stopped — the words a fixed
condition often surfaces as) is shown to the model first, cached by the error fingerprint, inside
the hourly budget shared with ``consult``. When the model says, sure enough, that a person must fix
it, the retry is vetoed: the owner is told, with the model's reason and the vetoed retry offered
for approval (SEND_EMAIL with ``approval: pending``, see docs/trust.md; ESCALATE when the model
places it outside the owner's reach). When the model agrees, cannot answer, is over budget
or is not configured, the retry stands: the veto only ever makes a decision more cautious, and the
model's text is data (validated like every verdict).

``second_opinion`` is called from one place, ``shared.triage.decide``, after the policy's
invariants, so only decisions that would really retry are looked at. ``make bench``
(``benchmarks/model_veto.py``) measures what it buys and costs with a model right 80% of the time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from shared.decide.fingerprint import fingerprint as _fingerprint
from shared.decide.rules import SYMPTOMS
from shared.models import DETERMINISTIC, Action, Category, Classification, Decision
from shared.redact import redact

from shared.llm.backends import LLMBackend, NoopBackend, backend_from_settings
from shared.llm.consult import _budget_key, cache_key, charge_model_call, model_budget_spent
from shared.llm.prompt import build_request
from shared.llm.schema import Verdict, _clean, validate_verdict

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.snapshot import Snapshot
    from shared.store import Store

__all__ = ["VETO_CONFIDENCE", "firm_transient", "needs_second_opinion",
           "vetoes", "second_opinion"]

log = logging.getLogger(__name__)

# The model must be at least this sure that a person must act before it vetoes a retry.
VETO_CONFIDENCE = 0.6
_OWNERS = DETERMINISTIC | {Category.DEPENDENCY}


def firm_transient(classification: Classification) -> bool:
    """The deciding evidence is more than a symptom (see the module doc)."""
    top = classification.evidence[0] if classification.evidence else None
    return top is not None and top.rule_id not in SYMPTOMS


def needs_second_opinion(decision: Decision, classification: Classification) -> bool:
    return decision.action.is_retry and not firm_transient(classification)


def vetoes(verdict: Verdict | None) -> bool:
    """The model says, sure enough, that retrying will not help."""
    if verdict is None or not verdict.ok or verdict.category in (None, Category.UNKNOWN, Category.CANCELED):
        return False
    if float(verdict.confidence) < VETO_CONFIDENCE:
        return False
    return verdict.category in _OWNERS or not verdict.is_transient


def _known_verdict(decision: Decision) -> Verdict | None:
    """The verdict ``consult`` already got for this failure (no second call for it)."""
    if not decision.llm or decision.llm.get("status") != "ok":
        return None
    return Verdict.from_cache({"verdict": decision.llm})


def second_opinion(snapshot: "Snapshot", classification: Classification, decision: Decision, settings: "Settings", *,
                   store: "Store | None", backend: LLMBackend | None = None) -> Decision:
    """A retry resting on less than firm evidence, with the model's veto applied. Never raises."""
    if not needs_second_opinion(decision, classification):
        return decision
    own = backend is None
    try:
        verdict = _known_verdict(decision)
        asked = False
        if verdict is None:
            if backend is None:
                backend = backend_from_settings(settings)
            if isinstance(backend, NoopBackend) or getattr(backend, "name", "") == "noop":
                return decision
            verdict, why_not = _ask(snapshot, classification, decision, settings, store=store, backend=backend)
            asked = True
            if verdict is None:
                return replace(decision, notes=[*decision.notes, f"second opinion on the retry not asked: {why_not}"])
        if not vetoes(verdict):
            if asked:
                return replace(decision, notes=[*decision.notes, "second opinion: the model does not object to the retry"])
            return decision
        return _vetoed(decision, verdict)
    except Exception as exc:  # noqa: BLE001 - the second opinion never breaks triage
        log.warning("second opinion on a retry failed (%s); the retry stands", type(exc).__name__)
        return replace(decision, notes=[*decision.notes, f"second opinion failed ({type(exc).__name__}); the retry stands"])
    finally:
        if own and backend is not None:
            try:
                backend.close()
            except Exception:  # noqa: BLE001
                pass


def _vetoed(decision: Decision, verdict: Verdict) -> Decision:
    category = verdict.category if verdict.category in _OWNERS else decision.category
    action = Action.SEND_EMAIL if category in _OWNERS else Action.ESCALATE
    cause = _clean(verdict.root_cause, 240) or "no reason given"
    d = replace(decision, category=category, action=action, params={}, notes=list(decision.notes))
    d.decided_by = f"{decision.decided_by}+llm-veto"
    d.reason = (f"{category.value} (model: {cause}) -> {action.value}: the model vetoed the automatic retry "
                f"({verdict.category.value}, confidence {float(verdict.confidence):.2f}, "
                f"{'transient' if verdict.is_transient else 'not transient'}); the rules' reading was "
                f"{decision.reason.split(' -> ')[0]}")
    d.notes.insert(0, f"retry vetoed by the model: {cause}")
    if verdict.suggested_fix:
        d.suggested_fix = verdict.suggested_fix
    d.llm = {**verdict.to_dict(), "veto": True}
    if action is Action.SEND_EMAIL:
        # The owner may still want the retry: it is offered for approval (docs/trust.md), not carried out.
        d.proposed_action = decision.action.value
        d.proposed_params = dict(decision.params) if decision.action is Action.RETRY_WITH_NEW_PARAMS else {}
        d.approval, d.model_only = "pending", False
    return d


def _ask(snapshot: "Snapshot", classification: Classification, decision: Decision, settings: "Settings", *,
         store: "Store | None", backend: LLMBackend) -> tuple[Verdict | None, str]:
    """cache -> budget -> call -> validate -> cache, as ``consult`` does (same cache entries)."""
    fp = decision.fingerprint or _fingerprint(redact(decision.excerpt or ""), category=decision.category.value)
    key = cache_key(backend, fp)
    if store is not None:
        try:
            entry = store.cache_get(key)
        except Exception:  # noqa: BLE001
            entry = None
        cached = Verdict.from_cache(entry) if entry else None
        if cached is not None:
            return cached, ""
    request = build_request(snapshot, classification, decision, settings)
    if request.over_budget:
        return None, "the prompt is over TRIAGE_LLM_MAX_PROMPT_TOKENS"
    over = model_budget_spent(settings, store)
    if over:
        return None, over
    limit = int(settings.llm_max_calls_per_hour)
    if limit <= 0:
        return None, "the hourly LLM budget is 0"
    if store is not None:
        try:
            used = store.incr("counter", _budget_key(), ttl_s=7200)
        except Exception:  # noqa: BLE001 - no count, no call
            return None, "the budget counter is unavailable"
        if used > limit:
            return None, f"over the hourly budget ({limit} calls)"
    try:
        verdict = backend.analyse(request)
    except Exception as exc:  # noqa: BLE001
        return None, f"backend error {type(exc).__name__}"
    charge_model_call(settings, store, verdict, request, snapshot.job_id)
    verdict = validate_verdict(verdict)
    if not verdict.ok:
        return None, verdict.reason or "no usable answer"
    if store is not None:
        try:
            store.cache_put(key, {"verdict": verdict.to_dict(), "fingerprint": fp, "cached_at": int(time.time())},
                            ttl_s=int(settings.llm_cache_ttl_s))
        except Exception:  # noqa: BLE001
            pass
    return verdict, ""
