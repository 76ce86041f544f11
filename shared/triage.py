"""The triage pipeline — start here to find where any decision is made.

    snapshot ─► classify (shared.classify, rules in shared.rules)
             ─► decide (shared.policy.decide)
             ─► [LLM when the rules are unsure: shared.llm.consult]
             ─► enforce the safety invariants (shared.policy.enforce)
             ─► claim the decision key (shared.store) ─► act (shared.actions) ─► record

``decide`` is the offline part (no network unless an LLM is configured and allowed).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.classify import classify
from shared.config import Settings
from shared.models import Decision
from shared.policy import decide as rules_decide
from shared.policy import enforce
from shared.snapshot import Snapshot

__all__ = ["decide"]

log = logging.getLogger(__name__)


def _redact(text: str) -> str:
    from shared.redact import redact

    return redact(text)


def _fingerprint(decision: Decision) -> str:
    from shared.fingerprint import fingerprint

    return fingerprint(decision.excerpt, category=decision.category.value)


def decide(
    snapshot: Snapshot,
    settings: Settings,
    *,
    store: Any = None,
    llm: Any = None,
    use_llm: bool = True,
    prior_retries: int | None = None,
) -> Decision:
    """Classify a failure and decide what to do, within the policy's invariants.

    ``store`` (optional) supplies the LLM cache and budget and the fingerprint's retry record;
    ``llm`` (optional) is an LLM backend; without one, the model is used only when configured
    in ``settings`` and ``use_llm`` is true.
    """
    classification = classify(snapshot)
    decision = rules_decide(snapshot, classification, settings)
    decision.excerpt = _redact(decision.excerpt)
    decision.fingerprint = _fingerprint(decision)

    if use_llm and (llm is not None or settings.llm_configured):
        from shared import llm as llm_mod

        decision = llm_mod.consult(snapshot, classification, decision, settings, store=store, backend=llm)

    failed_retries = 0
    if store is not None and decision.fingerprint:
        failed_retries = _failed_retries(store, snapshot, decision.fingerprint, settings)
    decision = enforce(
        decision,
        snapshot,
        classification,
        settings,
        prior_retries=prior_retries,
        failed_retries_of_fingerprint=failed_retries,
    )
    return decision


def _failed_retries(store: Any, snapshot: Snapshot, fingerprint: str, settings: Settings) -> int:
    """How many automatic retries of this job's failure fingerprint failed again recently."""
    try:
        entry = store.state_get("hopeless", f"{snapshot.job_id}:{fingerprint}")
    except Exception as exc:  # noqa: BLE001 - learning is advisory; never block a decision on it
        log.warning("could not read the retry record of fingerprint %s: %s", fingerprint, exc)
        return 0
    return int(entry.value.get("count", 0)) if entry else 0
