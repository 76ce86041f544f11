"""The previous attempt of a run lineage, when our own automatic retry re-ran it.

A run lineage is the original run and every attempt that continues it: its repairs (same run id,
decision keys ``<run_id>-<n>``) and the one-time runs we resubmitted for it (their run name names
the lineage; they have no job, so their decisions sit in the ``nojob`` partition). The policy
(``shared.decide.policy.same_failure``) compares the failure now with the attempt our retry
re-ran: the same fingerprint, or the same strongest evidence, means the retry was wasted, and
the lineage is not retried again.

Reads only: the current job's partition (and, for a resubmitted run, the ``nojob`` partition and
the original run's decision keys) within the look-back window. Advisory: a store error means
"no previous retry known", never a failed triage.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared.decide.policy import HARD_MAX_RETRIES, RetriedAttempt
from shared.store import DecisionRecord, now_ms

if TYPE_CHECKING:  # pragma: no cover
    from shared.snapshot import Snapshot
    from shared.store.base import Store

__all__ = ["lineage_decisions", "previous_retry", "LOOKBACK_S", "MODEL_RETRIES_KIND", "model_only_retries"]

log = logging.getLogger(__name__)

MODEL_RETRIES_KIND = "model-retries"   # TriageState: retries resting on the model alone, per lineage


def model_only_retries(store: "Store", lineage: str) -> int:
    """Retries resting on the model alone already made in this lineage (policy invariant 4;
    shared.triage counts them when it acts). A store that cannot answer counts as one spent: the
    model gets no benefit of the doubt."""
    try:
        entry = store.state_get(MODEL_RETRIES_KIND, lineage)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not read the model-only retries of lineage %s: %s", lineage, exc)
        return 1
    return int(entry.value.get("count", 0)) if entry else 0

LOOKBACK_S = 7 * 86400
_RETRIES = ("RETRY", "RETRY_WITH_NEW_PARAMS")
_MAX_LISTED = 200


def lineage_decisions(store: Store, snapshot: Snapshot, lineage: str, *, now: int | None = None,
                      lookback_s: int = LOOKBACK_S) -> list[DecisionRecord]:
    """Decisions of ``lineage`` other than the current attempt's, newest first."""
    since = (now or now_ms()) - lookback_s * 1000
    partitions = [str(snapshot.job_id or "nojob")]
    resubmitted = lineage and lineage != str(snapshot.run_id)
    if resubmitted and "nojob" not in partitions:
        partitions.append("nojob")
    found: dict[str, DecisionRecord] = {}
    for part in partitions:
        for rec in store.list(job_id=part, since_ms=since, limit=_MAX_LISTED):
            if (rec.lineage or str(rec.run_id)) == lineage:
                found.setdefault(rec.decision_key, rec)
    if resubmitted:
        # The original run's decisions are in its job's partition, which a one-time run does not name.
        for n in range(HARD_MAX_RETRIES + 1):
            rec = store.get(f"{lineage}-{n}")
            if rec is None:
                break
            found.setdefault(rec.decision_key, rec)
    found.pop(snapshot.decision_key, None)
    return sorted(found.values(), key=lambda r: (r.created_at, r.decision_key), reverse=True)


def previous_retry(store: Store, snapshot: Snapshot, lineage: str, *, now: int | None = None) -> RetriedAttempt | None:
    """The attempt our latest automatic retry of this lineage re-ran, when that retry was
    carried out (act mode, acted) and nothing newer in the lineage was decided since."""
    try:
        decisions = lineage_decisions(store, snapshot, lineage, now=now)
    except Exception as exc:  # noqa: BLE001 - advisory; never block a decision on it
        log.warning("could not read the decisions of lineage %s: %s", lineage, exc)
        return None
    if not decisions:
        return None
    latest = decisions[0]
    if latest.mode != "act" or latest.action not in _RETRIES or latest.status != "acted":
        return None
    evidence = (latest.decision or {}).get("evidence") or []
    return RetriedAttempt(
        decision_key=latest.decision_key, fingerprint=latest.fingerprint, category=latest.category,
        top_evidence=str(evidence[0]) if evidence else "", excerpt=latest.excerpt, action=latest.action)
