"""The action lifecycle: every state a decision can be in, who moves it on, and by when.

The diagram and the table are in docs/lifecycle.md; this module holds the rules they describe,
so the pipeline (``shared.triage``), the sweep and ``health`` read them from one place.

    decided ──► acting ──► acted            (done: the repair id / run id that proves it)
       │          │   └──► retrying ──► acting ...   (a passing failure: 429, 5xx, time-out, lost answer)
       │          │   └──► escalated        (refused for good, or out of attempts: a person has it)
       │          └──(worker died)──► taken over by the sweep after TRIAGE_ACTING_TIMEOUT
       └──► duplicate                       (the run was repaired or rerun meanwhile)
    failed: a notification could not be delivered yet; the sweep resends it, then escalates.
    ``<run>-triage-failed`` (the queue gave up on a triage during an outage; a person was paged):
    terminal once its page is delivered; every sweep re-triages the run on a back-off until it is
    placed, for a week (``shared.app.retriage``; counted as ``awaiting_retriage``).
    approval ``approving``: a person approved a proposed retry and a process is carrying it out;
    past TRIAGE_ACTING_TIMEOUT the sweep takes it over (``shared.app.approvals.resume_approval``).

Terminal: ``acted``, ``escalated``, ``duplicate``, and every shadow-mode decision (nothing is
carried out). Every other state has an owner and a deadline (``deadline_ms``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared.errors import (
    DatabricksAuthError,
    DatabricksConflict,
    DatabricksError,
    DatabricksNotFound,
    DatabricksUnavailable,
)

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.models import Decision
    from shared.notify.notifier import Notifier
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord, Store

_log = logging.getLogger(__name__)

__all__ = ["TERMINAL", "HEALTH_KIND", "HEALTH_KEY", "failure_kind", "retry_delay_s", "deadline_ms", "is_terminal",
           "undelivered", "summarize", "publish_summary", "health_verdict", "lifecycle_health", "SWEEP_GRACE_S",
           "action_failed", "escalate", "resumable", "repair_since_decision", "approving_since",
           "approval_takeover_due", "budget_again", "with_cost", "decided_at", "RETRY_WITHIN_S", "too_late",
           "hand_over", "awaiting_retriage"]

TERMINAL = frozenset({"acted", "escalated", "duplicate"})
HEALTH_KIND, HEALTH_KEY = "health", "lifecycle"     # TriageState: the sweep's last summary
SWEEP_GRACE_S = 15 * 60                              # a sweep every 5 minutes: three chances to move it on
_RETRY_BASE_S = 60
_RETRY_MAX_S = 3600


def failure_kind(exc: BaseException) -> str:
    """How an action's failure is handled:

    - ``"transient"``: 429, 5xx or a connection the client gave up on (``DatabricksUnavailable``):
      the request surely or probably did not run; send again later.
    - ``"unknown"``: the connection was lost after the request went out (no HTTP status): it may
      have run. Reconcile with Databricks before sending again (``repair_history``, or the
      submit's idempotency token).
    - ``"refused"``: a deterministic refusal (400/403/404 and the like): escalate now with the
      service's error code.
    - ``"conflict"``: the run changed since the snapshot (repaired by someone, running again).
    """
    if isinstance(exc, DatabricksConflict):
        return "conflict"
    if isinstance(exc, DatabricksUnavailable):
        return "transient"
    if isinstance(exc, (DatabricksAuthError, DatabricksNotFound)):
        return "refused"
    if isinstance(exc, DatabricksError):
        status = exc.status
        if status is None:
            return "unknown"
        if status == 429 or (status >= 500 and status not in (501, 505)):
            return "transient"
    return "refused"


def retry_delay_s(attempt: int) -> int:
    """Back-off after failed send number ``attempt`` (1-based): 1, 2, 4, ... minutes, at most 1 h."""
    return int(min(_RETRY_MAX_S, _RETRY_BASE_S * (2 ** max(0, min(int(attempt) - 1, 12)))))


def _carried_out(rec: DecisionRecord) -> bool:
    """Act mode, or a "triage failed" escalation (the poison path notifies in shadow mode too)."""
    return rec.mode == "act" or str(rec.decision_key).endswith("-triage-failed")


def is_terminal(rec: DecisionRecord) -> bool:
    return not _carried_out(rec) or rec.status in TERMINAL


def _last_approving(rec: DecisionRecord) -> dict[str, Any]:
    d = rec.decision if isinstance(rec.decision, dict) else {}
    if d.get("approval") != "approving":
        return {}
    history = d.get("approval_history") if isinstance(d.get("approval_history"), list) else []
    entry = next((e for e in reversed(history) if isinstance(e, dict) and e.get("state") == "approving"), None)
    return entry or {"at": rec.updated_at}


def approving_since(rec: DecisionRecord) -> int | None:
    """When a person's approval started being carried out (the approval is ``approving``), kept
    across the sweep's takeovers; None when the approval is not in flight."""
    entry = _last_approving(rec)
    return int(entry.get("since") or entry.get("at") or rec.updated_at or 0) if entry else None


def decided_at(rec: DecisionRecord, default: int = 0) -> int:
    """When the record's action was decided (ms epoch): when a person approved it, for a proposal
    approved days after the decision (approval links live TRIAGE_FEEDBACK_LINK_TTL); else when the
    decision was made."""
    d = rec.decision if isinstance(rec.decision, dict) else {}
    history = d.get("approval_history") if isinstance(d.get("approval_history"), list) else []
    approved = [int(e.get("at") or 0) for e in history
                if isinstance(e, dict) and e.get("state") in ("approving", "approved")]
    if d.get("approval") in ("approving", "approved") and approved:
        return max(approved)
    return int(rec.created_at or default)


def approval_takeover_due(rec: DecisionRecord, settings: Settings, now: int) -> bool:
    """An approval left ``approving`` longer than TRIAGE_ACTING_TIMEOUT since its last owner
    (the approving process, or a sweep that took it over) wrote it: that owner died."""
    entry = _last_approving(rec)
    return bool(entry) and now - int(entry.get("at") or rec.updated_at or 0) >= settings.acting_timeout_s * 1000


def deadline_ms(rec: DecisionRecord, settings: Settings) -> int | None:
    """When the record must have moved on (ms epoch); None for a terminal record."""
    approving = approving_since(rec)
    if approving is not None:     # a person's approval being carried out (the record may be `acted`)
        return approving + (int(settings.acting_timeout_s) + SWEEP_GRACE_S) * 1000
    if is_terminal(rec):
        return None
    result = rec.action_result if isinstance(rec.action_result, dict) else {}
    if rec.status == "decided":
        return int(rec.not_before or rec.created_at or 0) + SWEEP_GRACE_S * 1000
    if rec.status == "acting":
        return int(rec.updated_at or 0) + (int(settings.acting_timeout_s) + SWEEP_GRACE_S) * 1000
    if rec.status == "retrying":
        return int(result.get("next_at") or rec.updated_at or 0) + SWEEP_GRACE_S * 1000
    # failed: a notification waits for its resend
    return int(rec.updated_at or 0) + SWEEP_GRACE_S * 1000


def undelivered(rec: DecisionRecord) -> bool:
    """A decision whose notification has not reached anyone (yet)."""
    n = rec.notification if isinstance(rec.notification, dict) else {}
    return _carried_out(rec) and n.get("status") == "failed"


def awaiting_retriage(rec: DecisionRecord) -> bool:
    """A ``-triage-failed`` escalation whose run a later sweep still tries to place (shared.app.retriage)."""
    result = rec.action_result if isinstance(rec.action_result, dict) else {}
    state = result.get("retriage") if isinstance(result.get("retriage"), dict) else {}
    return rec.decision_key.endswith("-triage-failed") and state.get("state") == "waiting"


def summarize(records: list[DecisionRecord], settings: Settings, *, now: int) -> dict[str, Any]:
    """Counts for ``health`` and ``report``: records past their deadline, actions retrying,
    notifications undelivered, and the oldest stuck record."""
    past = [r for r in records if (d := deadline_ms(r, settings)) is not None and d < now]
    retrying = [r for r in records if r.mode == "act" and r.status == "retrying"]
    lost = [r for r in records if undelivered(r)]
    # undelivered for longer than three sweeps' worth: a send that failed a minute ago (or that
    # another attempt is still making) is the resends' work, not yet an operator's alert
    lost_long = [r for r in lost if now - int(r.created_at or 0) > SWEEP_GRACE_S * 1000]
    approving = [r for r in records if approving_since(r) is not None]
    oldest = min((deadline_ms(r, settings) or now for r in past), default=now)
    return {
        "past_deadline": len(past),
        "retrying": len(retrying),
        "undelivered": len(lost),
        "undelivered_stuck": len(lost_long),
        "approving": len(approving),
        "escalated": sum(1 for r in records if r.mode == "act" and r.status == "escalated"),
        # poisoned triages a person was told about, whose run a later sweep still tries to place
        "awaiting_retriage": sum(1 for r in records if awaiting_retriage(r)),
        "stuck_for_s": max(0, (now - oldest) // 1000) if past else 0,
        "stuck_keys": [r.decision_key for r in past[:10]],
        "undelivered_keys": [r.decision_key for r in lost[:10]],
        "at": now,
    }


def publish_summary(settings: Settings, store: Store, *, now: int, lookback_s: int = 7 * 86400) -> dict[str, Any]:
    """Summarize the last week's decisions and keep the summary where ``health`` reads it with
    one point read (called at the end of every sweep)."""
    import logging

    summary = summarize(store.list(since_ms=now - lookback_s * 1000), settings, now=now)
    # no time to live: an old summary is itself the news (the sweep stopped), never "no summary yet"
    store.state_put(HEALTH_KIND, HEALTH_KEY, summary)
    if summary["past_deadline"] or summary["undelivered"]:
        logging.getLogger(__name__).warning(
            "lifecycle: %d decision(s) past their deadline (%s), %d notification(s) undelivered (%s)",
            summary["past_deadline"], ", ".join(summary["stuck_keys"]) or "-", summary["undelivered"],
            ", ".join(summary["undelivered_keys"]) or "-")
    return summary


def health_verdict(summary: dict[str, Any] | None, *, now: int) -> tuple[bool, str]:
    """(healthy, why) from the sweep's last summary: unhealthy when a decision is past its
    deadline, a notification is undelivered, or the sweep itself has not run for a while."""
    if summary is None:
        return True, "no sweep summary yet"
    age_s = (now - int(summary.get("at") or 0)) // 1000
    if age_s > 2 * SWEEP_GRACE_S:
        return False, f"the sweep has not run for {age_s} s"
    if summary.get("past_deadline"):
        return False, f"{summary['past_deadline']} decision(s) past their deadline"
    # a summary written before "undelivered_stuck" existed counts every undelivered one
    stuck = summary.get("undelivered_stuck", summary.get("undelivered"))
    if stuck:
        return False, f"{stuck} notification(s) undelivered for over {SWEEP_GRACE_S // 60} minutes"
    return True, "every decision is moving on"


def lifecycle_health(settings: Settings, *, now: int | None = None, recount: bool = False,
                     keys: bool = False, view: Any = None) -> tuple[bool, dict[str, Any]]:
    """(healthy, counts) for ``health``: one point read of the summary the last sweep kept, or
    with ``recount`` the last week's decisions counted now (the command line's ``--recount``).
    No decision key is returned unless ``keys`` (the endpoint is anonymous; the command line is
    an operator's). ``view(store)``: the store as the sweep sees it, for the recount."""
    import logging
    import os
    import time

    from shared.store import open_store, storage_choice

    now = int(time.time() * 1000) if now is None else now
    oldest = now
    try:
        backend, value, _ = storage_choice(settings)
        if backend == "sqlite" and not os.path.exists(value):
            return True, {"verdict": "no decisions yet"}
        options: dict[str, Any] = {} if backend == "sqlite" else {"retry_total": 1, "retry_backoff_factor": 0.2}
        with open_store(settings, check=False, **options) as store:
            if recount:
                seen = view(store) if view is not None else store
                summary: dict[str, Any] | None = summarize(seen.list(since_ms=now - 7 * 86400 * 1000), settings,
                                                           now=now)
            else:
                entry = store.state_get(HEALTH_KIND, HEALTH_KEY)
                summary = entry.value if entry is not None else None
                # no summary at all: only a fresh install may say so; decisions older than the
                # sweep's grace mean the sweep has never run (a read only until its first summary)
                oldest = min((int(r.created_at or now) for r in store.list(since_ms=now - 7 * 86400 * 1000)),
                             default=now) if summary is None else now
    except Exception as exc:  # noqa: BLE001 - any failure to read is itself the answer
        logging.getLogger(__name__).error("health: the decision store cannot be read: %s", type(exc).__name__)
        return False, {"verdict": "the decision store cannot be read"}
    healthy, why = health_verdict(summary, now=now)
    if summary is None and not recount and now - oldest > 2 * SWEEP_GRACE_S * 1000:
        healthy, why = False, f"no sweep has run, though a decision is {(now - oldest) // 1000} s old"
    counts = {k: (summary or {}).get(k, 0) for k in ("past_deadline", "retrying", "undelivered",
                                                       "undelivered_stuck", "approving", "escalated", "awaiting_retriage", "stuck_for_s")}
    age = (now - int(summary.get("at") or 0)) // 1000 if summary else None
    out = {"verdict": why, **counts, "summary_age_s": age}
    if keys:
        out.update(stuck_keys=list((summary or {}).get("stuck_keys") or []),
                   undelivered_keys=list((summary or {}).get("undelivered_keys") or []))
    return healthy, out


# --- moving an action on -------------------------------------------------------------------------

def action_failed(record: DecisionRecord, snapshot: Snapshot, decision: Decision, exc: Exception,
                  settings: Settings, notifier: Notifier | None) -> None:
    """What ``shared.triage._act`` does when the action raised: a passing failure (or a lost
    answer) -> retrying with back-off, at most TRIAGE_ACTION_ATTEMPTS sends; a refusal, or the
    last attempt -> escalated with the error; a conflict -> duplicate."""
    from shared.redact import redact
    from shared.store import now_ms

    kind = failure_kind(exc)
    error = redact(f"{type(exc).__name__}: {exc}")
    attempt = int(record.action_result.get("attempts") or 1)
    errors = [*list(record.action_result.get("errors") or [])[-4:], error[:500]]
    record.action_result = {**record.action_result, "error": error, "error_code": getattr(exc, "error_code", None),
                            "http_status": getattr(exc, "status", None), "errors": errors}
    if kind == "conflict":
        record.status = "duplicate"
        record.action_result["status"] = "superseded: the run changed since the decision (repaired or running again)"
        _log.warning("action for %s superseded: %s", record.decision_key, error)
        return
    if kind in ("transient", "unknown") and attempt < settings.action_attempts:
        delay = retry_delay_s(attempt)
        record.status = "retrying"
        record.action_result["next_at"] = now_ms() + delay * 1000
        record.action_result["reconcile"] = kind == "unknown"
        _log.warning("action for %s failed (attempt %d of %d, %s); the sweep sends it again in %d s: %s",
                     record.decision_key, attempt, settings.action_attempts, kind, delay, error)
        return
    code = getattr(exc, "error_code", None) or getattr(exc, "status", None) or "error"
    why = (f"{record.action} was refused by Databricks ({code}): {error}" if kind == "refused"
           else f"{record.action} failed {attempt} time(s); last error: {error}")
    escalate(record, snapshot, decision, why, notifier)


def escalate(record: DecisionRecord, snapshot: Snapshot, decision: Decision, why: str,
             notifier: Notifier | None) -> None:
    """Hand the decision to a person: an ESCALATE notification saying why. ``escalated`` once
    delivered; ``failed`` (resent by the sweep) while it is not."""
    from dataclasses import replace

    from shared.models import Action
    from shared.redact import redact, redact_obj

    why = redact(why)[:2000]
    record.action_result = {**record.action_result, "escalated": why}
    esc = replace(decision, action=Action.ESCALATE, notes=[*decision.notes, why])
    result = notifier.notify(snapshot, esc, record) if notifier is not None else {"status": "not configured"}
    record.notification = redact_obj(dict(result))
    record.status = "failed" if record.notification.get("status") == "failed" else "escalated"
    _log.warning("decision %s escalated: %s", record.decision_key, why)


def resumable(rec: DecisionRecord, settings: Settings, now: int) -> bool:
    """A retrying action whose back-off has passed, or an action stuck in ``acting`` longer than
    TRIAGE_ACTING_TIMEOUT (its worker died before or after the Databricks call)."""
    result = rec.action_result if isinstance(rec.action_result, dict) else {}
    if rec.status == "retrying":
        return int(result.get("next_at") or 0) <= now
    if rec.status == "acting":
        since = int(result.get("acting_since") or rec.updated_at or 0)
        return now - since >= settings.acting_timeout_s * 1000
    return False


def repair_since_decision(snapshot: Snapshot, rec: DecisionRecord) -> int | None:
    """The repair id of a repair newer than the one the decision knew (the request's
    ``latest_repair_id``), from the run's ``repair_history``: Databricks is the source of truth."""
    from shared.snapshot import as_int

    reqs = (rec.action_request or {}).get("requests") or []
    body = reqs[0].get("body") if reqs and isinstance(reqs[0], dict) else {}
    known = as_int((body or {}).get("latest_repair_id"))
    ids = [as_int(r.get("id")) for r in snapshot.repair_history if r.get("type") == "REPAIR"]
    ids = [i for i in ids if i is not None]
    if known is not None:
        ids = ids[ids.index(known) + 1:] if known in ids else []
    return ids[-1] if ids else None


def budget_again(rec: DecisionRecord) -> bool:
    """Whether a resumed rerun is held against the budget again: only when it surely has not
    taken effect, so its spend was never counted and the day's may have grown meanwhile. A repair
    that reached here is absent from ``repair_history`` (reconciled first); a resized rerun only
    when its last send surely did not reach Databricks (429 or 503: not processed). A submit that
    may exist (a lost answer, a worker that died during the call) is sent again with its
    idempotency token and no new check: its spend was granted at decision time."""
    kind = (rec.action_request or {}).get("kind")
    if kind == "repair":
        return True
    result = rec.action_result if isinstance(rec.action_result, dict) else {}
    return (kind == "submit" and rec.status == "retrying" and not result.get("reconcile")
            and result.get("http_status") in (429, 503))


def with_cost(rec: DecisionRecord, decision: Decision, cost: dict[str, Any]) -> Decision:
    """Record a (re)planned action's budget check on the record: the estimate, and when the cap
    stopped the rerun, the action and reason it became (an email to the owner)."""
    from shared.databricks.budget import say_budget
    from shared.redact import redact

    decision = say_budget(decision, cost)
    if cost.get("stopped_by"):      # the budget was spent meanwhile: the record says so
        rec.action, rec.reason = decision.action.value, redact(decision.reason)
    if cost:
        rec.decision = {**(rec.decision or {}), "cost": cost}
    return decision


# --- a retry too late to send ---------------------------------------------------------------------

RETRY_WITHIN_S = 2 * 86400     # a retry not sent this long after its decision goes to a person instead


def too_late(rec: DecisionRecord, now: int) -> bool:
    """A retry decided (or approved) more than RETRY_WITHIN_S ago and still not sent: the sweep
    did not run for days (the app stopped, the store down). The job has likely run again since,
    so repairing or rerunning that old failure now could do harm."""
    return rec.action in ("RETRY", "RETRY_WITH_NEW_PARAMS") and now - decided_at(rec, now) > RETRY_WITHIN_S * 1000


def hand_over(rec: DecisionRecord, snapshot: Snapshot, decision: Decision, store: Store, notifier: Notifier | None,
              now: int, *, cause: str = "") -> DecisionRecord:
    """Escalate a retry that is too late to send (``too_late``), under the etag like ``shared.triage._act``.
    ``cause``: the run could not be read meanwhile (the error), rather than the sweep not running."""
    hours = (now - decided_at(rec, now)) // 3_600_000
    why = (f"{rec.action} not sent: {hours} h after the decision (the sweep did not run meanwhile) the job may have "
           "run again, so a retry now could do harm; decide whether to rerun")
    if cause:
        why = (f"{rec.action} not sent: the run cannot be read from Databricks ({cause}) and {hours} h have passed "
               "since the decision; decide whether to rerun")
    if rec.status != "decided" and (rec.action_request or {}).get("kind") == "submit":   # a repair was reconciled
        why += " (an earlier send may have made the rerun: look for it among the job's runs)"
    rec.status = "acting"
    rec.action_result = {**(rec.action_result or {}), "acting_since": now}
    upd = store.update(rec)
    if not upd.ok:
        return upd.record or rec
    rec = upd.record
    escalate(rec, snapshot, decision, why, notifier)
    upd = store.update(rec)
    return upd.record if upd.ok else rec
