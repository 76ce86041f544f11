"""The one entry point: cache by fingerprint, hourly budget, ask, validate, merge. Every failure
ends in the rules' decision with the reason in ``decision.notes``; nothing raises.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable


from shared.errors import LLMError
from shared.decide.fingerprint import fingerprint as _fingerprint
from shared.models import Classification, Decision
from shared.redact import redact

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.snapshot import Snapshot
    from shared.store import Store

from shared.llm.backends import LLMBackend, NoopBackend, backend_from_settings
from shared.llm.merge import merge, should_consult
from shared.llm.prompt import build_request, cluster_summary
from shared.llm.schema import PROMPT_VERSION, Verdict, _clean, validate_verdict

__all__ = ["cache_key", "consult"]

log = logging.getLogger(__name__)

# --- cache, budget, and the one entry point --------------------------------------------------
def cache_key(backend: LLMBackend, fingerprint: str) -> str:
    """sha256 of backend name, model, prompt version and the error fingerprint."""
    raw = f"{getattr(backend, 'name', '')}\n{getattr(backend, 'model', '')}\n{PROMPT_VERSION}\n{fingerprint}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _budget_key(now: float | None = None) -> str:
    return "llm-calls-" + datetime.fromtimestamp(now if now is not None else time.time(), timezone.utc).strftime(
        "%Y%m%d%H")


def model_budget_spent(settings: "Settings", store: "Store | None") -> str:
    """Why the model must not be asked (its share of TRIAGE_BUDGET_USD_PER_DAY is spent), or ''."""
    cap = settings.budget_usd_per_day
    if cap is None or store is None:
        return ""
    from shared.store.spend import day_of, spent

    share = cap * float(settings.llm_budget_share)
    try:
        used = spent(store, day=day_of(), model=True)
    except Exception as exc:  # noqa: BLE001 - an unknown spend: do not spend
        log.warning("spend counter unavailable (%s); not calling the model", type(exc).__name__)
        return "the spend counter is unavailable"
    if used >= share:
        return (f"the model's share of the daily budget is spent (${used:.4f} of ${share:.4f}: "
                f"TRIAGE_LLM_BUDGET_SHARE x TRIAGE_BUDGET_USD_PER_DAY)")
    return ""


def charge_model_call(settings: "Settings", store: "Store | None", verdict: Verdict, request: Any,
                      job_id: Any = None) -> float:
    """Count one model call against today's spend (once: right after the call); returns its cost."""
    from shared.decide.budget import llm_call_cost, prices_of

    usd = llm_call_cost(getattr(verdict, "usage", None), prices_of(settings),
                        est_prompt_tokens=int(getattr(request, "est_tokens", 0) or 0))
    if store is not None:
        from shared.store.spend import add_spend, day_of

        try:
            add_spend(store, usd, day=day_of(), job_id=str(job_id) if job_id else None, model=True)
        except Exception as exc:  # noqa: BLE001 - the call is made; a lost count is logged
            log.warning("could not count a model call against the budget: %s", type(exc).__name__)
    return usd


def consult(
    snapshot: "Snapshot",
    classification: Classification,
    rule_decision: Decision,
    settings: "Settings",
    *,
    store: "Store | None",
    backend: LLMBackend | None = None,
    history: Iterable[Any] = (),
    corrections: Iterable[Any] = (),
) -> Decision:
    """should_consult -> cache -> budget -> call -> validate -> merge. Never raises: every
    fallback is the rules' decision with the reason in ``decision.notes``."""
    if not should_consult(classification, settings):
        return rule_decision
    own_backend = backend is None
    try:
        if backend is None:
            backend = backend_from_settings(settings)
        if isinstance(backend, NoopBackend) or getattr(backend, "name", "") == "noop":
            d = replace(rule_decision, notes=[*rule_decision.notes, "LLM not consulted: no model configured"])
            return d
        return _consult(snapshot, classification, rule_decision, settings, store=store, backend=backend,
                        history=history, corrections=corrections)
    except Exception as exc:  # noqa: BLE001 - the LLM step never breaks triage
        log.warning("LLM step failed (%s), the rules decide", type(exc).__name__)
        reason = _clean(str(exc), 200) if isinstance(exc, (LLMError, ValueError)) or \
            type(exc).__name__ == "ConfigError" else type(exc).__name__
        d = replace(rule_decision, notes=[*rule_decision.notes, f"LLM fallback: {reason}; the rules decide"])
        d.llm = {"status": "fallback", "reason": reason, "prompt_version": PROMPT_VERSION}
        return d
    finally:
        if own_backend and backend is not None:
            try:
                backend.close()
            except Exception:  # noqa: BLE001
                pass


def _consult(snapshot: "Snapshot", classification: Classification, rule_decision: Decision, settings: "Settings",
             *, store: "Store | None", backend: LLMBackend, history: Iterable[Any],
             corrections: Iterable[Any]) -> Decision:
    notes: list[str] = []
    cluster = cluster_summary(snapshot, classification.deciding_task)
    fp = rule_decision.fingerprint or _fingerprint(redact(rule_decision.excerpt or classification.excerpt or ""),
                                                   category=rule_decision.category.value)
    key = cache_key(backend, fp)

    def finish(verdict: Verdict) -> Decision:
        d = merge(rule_decision, verdict, settings, cluster=cluster)
        d.notes[len(rule_decision.notes):len(rule_decision.notes)] = notes
        if not d.fingerprint:
            d.fingerprint = fp
        return d

    def skipped(reason: str) -> Decision:
        d = replace(rule_decision, notes=[*rule_decision.notes, *notes, f"LLM not consulted: {reason}; the rules decide"])
        d.llm = {"status": "skipped", "reason": reason, "backend": getattr(backend, "name", ""),
                 "model": getattr(backend, "model", ""), "prompt_version": PROMPT_VERSION}
        return d

    # 1. cache
    if store is not None:
        try:
            entry = store.cache_get(key)
        except Exception as exc:  # noqa: BLE001 - cache errors are never fatal
            log.warning("LLM cache read failed (%s); asking the model", type(exc).__name__)
            notes.append("LLM cache unavailable")
            entry = None
        if entry:
            cached = Verdict.from_cache(entry)
            if cached is not None:
                notes.append(f"LLM verdict from cache (fingerprint {fp})")
                return finish(cached)
    # 2. prompt (built before the budget is spent: a prompt that cannot fit costs nothing)
    request = build_request(snapshot, classification, rule_decision, settings, history=history,
                            corrections=corrections)
    if request.over_budget:
        return skipped(f"the prompt needs about {request.est_tokens} tokens, over TRIAGE_LLM_MAX_PROMPT_TOKENS "
                       f"({request.max_prompt_tokens})")
    if request.trimmed:
        notes.append("LLM prompt trimmed to the token budget: " + ", ".join(request.trimmed))
    # 3. budget (shared by every instance through the store): the day's money, then the hour's calls
    over = model_budget_spent(settings, store)
    if over:
        return skipped(over)
    limit = int(settings.llm_max_calls_per_hour)
    if limit <= 0:
        return skipped("the hourly LLM budget is 0 (TRIAGE_LLM_MAX_CALLS_PER_HOUR)")
    if store is not None:
        try:
            used = store.incr("counter", _budget_key(), ttl_s=7200)
        except Exception as exc:  # noqa: BLE001 - no count, no call: cost stays bounded
            log.warning("LLM budget counter unavailable (%s); not calling the model", type(exc).__name__)
            return skipped("the budget counter is unavailable")
        if used > limit:
            return skipped(f"over the hourly budget ({limit} calls, TRIAGE_LLM_MAX_CALLS_PER_HOUR)")
    else:
        notes.append("no store: the hourly LLM budget is not counted")
    # 4. call and validate
    try:
        verdict = backend.analyse(request)
    except Exception as exc:  # noqa: BLE001 - a custom backend that raises
        log.warning("LLM backend raised %s; the rules decide", type(exc).__name__)
        verdict = Verdict.fallback(f"backend error {type(exc).__name__}", backend=getattr(backend, "name", ""),
                                   model=getattr(backend, "model", ""))
    cost = charge_model_call(settings, store, verdict, request, snapshot.job_id)
    verdict = validate_verdict(verdict)
    # 5. cache the usable answer
    if verdict.ok and store is not None:
        try:
            store.cache_put(key, {"verdict": verdict.to_dict(), "fingerprint": fp, "cached_at": int(time.time())},
                            ttl_s=int(settings.llm_cache_ttl_s))
        except Exception as exc:  # noqa: BLE001
            log.warning("LLM cache write failed (%s)", type(exc).__name__)
            notes.append("LLM cache write failed")
    decided = finish(verdict)
    if isinstance(decided.llm, dict):
        decided.llm = {**decided.llm, "cost_usd": round(cost, 6)}
    return decided
