"""Approval requests: a retry the policy would not carry out on its own, put to a person.

A decision with ``proposed_action`` (RETRY or RETRY_WITH_NEW_PARAMS) and ``approval: pending``
(see docs/trust.md) waits for a person. ``approve`` carries the proposed action out once,
through the pipeline's own lifecycle (``shared.triage.carry_out``: decided -> acting -> acted
under the record's etag), recorded as decided by a person; ``reject`` records the rejection and
the person's feedback. The approval state lives on the stored decision (``decision.approval``):

    pending --approve--> approving --> approved      (or refused: the run moved on, the limit was reached)
                           └──(the approving process died)──► taken over by the sweep after
                              TRIAGE_ACTING_TIMEOUT (``resume_approval``), then as above
    pending --reject---> rejected
    pending --(link lifetime passed)--> expired

Approving first notes the decision where every sweep looks (``open_approvals``), so an approval
made days after its decision is followed to its end (``WithOpenApprovals``). Moving out of
``pending`` is a conditional update on the record's etag, so of two approvals
(two clicks, a click and the command line) exactly one acts; the other is told what happened.
The email buttons, the confirmation pages and ``python -m shared approve|reject`` all end here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from shared.errors import DecisionNotFound, StoreError
from shared.store import DecisionRecord

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.databricks.client import DatabricksClient
    from shared.notify.notifier import Notifier
    from shared.store.base import Store

__all__ = ["ApprovalResult", "approval_state", "approval_expires_ms", "approve", "reject", "pending_approval",
           "resume_approval", "resume_approvals", "open_approvals", "forget_ended_approvals", "WithOpenApprovals"]

log = logging.getLogger(__name__)

_ATTEMPTS = 5


@dataclass(frozen=True)
class ApprovalResult:
    """What an approve/reject did: ``changed`` False means nothing changed (``message`` says why)."""

    record: DecisionRecord | None
    changed: bool
    acted: bool
    message: str
    state: str = ""


def approval_state(record: DecisionRecord) -> str:
    """'' (no approval asked), pending, approving, approved, rejected, refused or expired."""
    return str((record.decision or {}).get("approval") or "")


def approval_expires_ms(record: DecisionRecord, settings: "Settings") -> int:
    """An approval lives as long as the email's links: the decision's time plus TRIAGE_FEEDBACK_LINK_TTL."""
    return int(record.created_at) + int(settings.feedback_link_ttl_s) * 1000


def pending_approval(record: DecisionRecord, settings: "Settings", *, now_ms: int) -> bool:
    return approval_state(record) == "pending" and now_ms < approval_expires_ms(record, settings)


def _stamp(record: DecisionRecord, state: str, by: str, now: int, **more: Any) -> DecisionRecord:
    changed = DecisionRecord.from_dict(record.to_dict(), etag=record.etag)
    d = dict(changed.decision or {})
    d["approval"] = state
    d.setdefault("approval_history", [])
    d["approval_history"] = [*d["approval_history"], {"state": state, "by": by, "at": now, **more}][-10:]
    changed.decision = d
    changed.updated_at = now
    return changed


def _move(store: "Store", key: str, job_id: str | None, to: str, by: str, now: int, settings: "Settings",
          **more: Any) -> tuple[DecisionRecord, bool, str]:
    """pending -> ``to`` under etag. Returns (record, moved, why-not)."""
    record = store.get(key, job_id=job_id)
    for _ in range(_ATTEMPTS):
        if record is None:
            raise DecisionNotFound(f"no decision with key {key!r}" + (f" for job {job_id}" if job_id else ""))
        state = approval_state(record)
        if state != "pending":
            return record, False, _not_pending(record, state)
        if now >= approval_expires_ms(record, settings):
            expired = store.update(_stamp(record, "expired", by, now))
            if expired.ok and expired.record is not None:
                record = expired.record
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(approval_expires_ms(record, settings) / 1000))
            return record, False, f"the approval request expired at {when}; nothing was done"
        if to == "approving":   # noted first, where every sweep looks, so it is followed to its end
            _edit_open(store, settings, add=(record.decision_key, record.job_id))
        upd = store.update(_stamp(record, to, by, now, **more))
        if upd.ok and upd.record is not None:
            return upd.record, True, ""
        record = upd.record
    raise StoreError(f"decision {key}: the approval was not recorded, the decision kept changing")


def _not_pending(record: DecisionRecord, state: str) -> str:
    proposed = (record.decision or {}).get("proposed_action") or "a retry"
    if not state:
        return f"decision {record.decision_key} ({record.action}) asks for no approval; nothing changed"
    last = ((record.decision or {}).get("approval_history") or [{}])[-1]
    who = f" by {last.get('by')}" if last.get("by") else ""
    return {
        "approving": f"the proposed {proposed} of {record.decision_key} is being carried out{who}; nothing changed",
        "approved": f"the proposed {proposed} of {record.decision_key} was already approved{who}; nothing changed",
        "rejected": f"the proposed {proposed} of {record.decision_key} was already rejected{who}; nothing changed",
        "refused": f"the proposed {proposed} of {record.decision_key} was approved but could not be carried out: "
                   f"{last.get('reason', 'see the decision')}; nothing changed",
        "expired": f"the approval request of {record.decision_key} expired; nothing changed",
    }.get(state, f"the approval of {record.decision_key} is {state}; nothing changed")


def approve(store: "Store", key: str, settings: "Settings", *, client_for: Callable[[DecisionRecord], "DatabricksClient"],
            notifier: "Notifier | None" = None, by: str = "cli", job_id: str | None = None,
            now_ms: int | None = None) -> ApprovalResult:
    """Approve the proposed retry of decision ``key`` and carry it out once.

    ``client_for(record)`` gives the Databricks client of the record's workspace (called only
    when there is something to do). In shadow mode the approval is recorded and nothing is sent."""
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    record, moved, why = _move(store, key, job_id, "approving", by, now, settings)
    if not moved:
        return ApprovalResult(record, False, False, why, approval_state(record))
    return _carry_on(store, record, settings, client_for=client_for, notifier=notifier, by=by, now=now,
                     reopen=True)


def resume_approval(record: DecisionRecord, settings: "Settings", *, client: "DatabricksClient", store: "Store",
                    notifier: "Notifier | None", now: int | None = None) -> DecisionRecord:
    """Carry on an approval left ``approving`` past TRIAGE_ACTING_TIMEOUT (the approving process
    died): the sweep takes it over with a conditional write (so one sweep, and never the old
    process too, goes on), then does what the approval would have done, asking Databricks first:
    the run is read again, a run repaired or rerun meanwhile refuses it, and the proposed repair
    is sent with the ``latest_repair_id`` it was proposed with (a resized rerun with the decision
    key as its idempotency token), so it cannot run twice. Nothing the approving process sent
    can be lost: it records ``acting`` before any request, and a stale ``acting`` is reconciled
    from ``repair_history`` (``shared.triage.resume_action``). Ends ``approved`` (the action's
    own state then follows the lifecycle) or ``refused``."""
    from shared.app.lifecycle import approving_since

    now = int(time.time() * 1000) if now is None else int(now)
    history = (record.decision or {}).get("approval_history") or [{}]
    last = history[-1] if isinstance(history[-1], dict) else {}
    approver = str(last.get("approver") or last.get("by") or "unknown")
    upd = store.update(_stamp(record, "approving", "sweep", now, approver=approver, since=approving_since(record),
                              reason="taken over: the approving process stopped"))
    if not upd.ok or upd.record is None:     # another sweep took it over, or it moved on meanwhile
        return upd.record or record
    log.warning("approval of %s by %s was left unfinished; the sweep carries it out", record.decision_key, approver)
    result = _carry_on(store, upd.record, settings, client_for=lambda _: client, notifier=notifier, by=approver,
                       now=now, reopen=False)
    return result.record or upd.record


def resume_approvals(settings: "Settings", *, client: "DatabricksClient", store: "Store",
                     notifier: "Notifier | None", now: int | None = None,
                     lookback_s: int | None = None) -> list[DecisionRecord]:
    """Every sweep: take over the approvals left ``approving`` past TRIAGE_ACTING_TIMEOUT
    (``resume_approval``), over the same window as ``shared.triage.act_due``."""
    from shared.app.lifecycle import approval_takeover_due
    from shared.triage import UNFINISHED_LOOKBACK_S

    lookback_s = UNFINISHED_LOOKBACK_S if lookback_s is None else lookback_s

    now = int(time.time() * 1000) if now is None else int(now)
    done: list[DecisionRecord] = []
    for rec in store.list(since_ms=now - lookback_s * 1000):
        if not approval_takeover_due(rec, settings, now):
            continue
        try:
            done.append(resume_approval(rec, settings, client=client, store=store, notifier=notifier, now=now))
        except Exception as exc:  # noqa: BLE001 - one run's trouble must not stop the others
            log.warning("cannot carry out the approval of %s yet: %s", rec.decision_key, exc)
    return done


def _carry_on(store: "Store", record: DecisionRecord, settings: "Settings", *,
              client_for: Callable[[DecisionRecord], "DatabricksClient"], notifier: "Notifier | None", by: str,
              now: int, reopen: bool) -> ApprovalResult:
    """approving -> approved (the proposal carried out through ``shared.triage.carry_out``) or
    refused. ``reopen``: when Databricks cannot be reached, the request goes back to ``pending``
    for another click (a person is waiting for the answer); the sweep leaves it ``approving`` and
    tries again after TRIAGE_ACTING_TIMEOUT, and ``health`` counts it once past its deadline."""
    from shared.databricks.actions import effective_decision, plan_action
    from shared.databricks.budget import say_budget, within_budget
    from shared.databricks.capture import capture_snapshot
    from shared.decide.policy import max_retries_for
    from shared.models import Action
    from shared.triage import carry_out, decision_of_record, stored_request

    key = record.decision_key
    d = dict(record.decision or {})
    proposed = Action(d["proposed_action"])

    def finish(state: str, message: str, **more: Any) -> ApprovalResult:
        nonlocal record
        for _ in range(_ATTEMPTS):
            upd = store.update(_stamp(record, state, by, int(time.time() * 1000), **more))
            if upd.ok and upd.record is not None:
                return ApprovalResult(upd.record, True, False, message, state)
            record = upd.record or record
        return ApprovalResult(record, True, False, message, state)

    if record.mode != "act":
        return finish("approved", f"approved the proposed {proposed.value} of {key} (shadow mode: recorded, "
                                  "nothing sent)", reason="shadow mode")
    try:
        client = client_for(record)
        snapshot = capture_snapshot(client, record.run_id, workspace_host=record.workspace, store=None)
    except Exception:
        # Nothing was sent: the request stays open for another try.
        cur = store.get(record.decision_key, job_id=record.job_id)
        if reopen and cur is not None and approval_state(cur) == "approving":
            store.update(_stamp(cur, "pending", by, int(time.time() * 1000), reason="could not reach Databricks"))
        raise
    if snapshot.decision_key != record.decision_key:
        return finish("refused", f"not carried out: run {record.run_id} was repaired or rerun since "
                                 f"{record.decision_key} was decided", reason="the run moved on")
    limit, source = max_retries_for(snapshot, settings)
    done = max(store.retries(record.lineage or str(record.run_id)), snapshot.prior_retries)
    if done >= limit:
        return finish("refused", f"not carried out: the retry limit of this run is reached ({done} of {limit}, "
                                 f"{source})", reason=f"retry limit reached ({done} of {limit})")

    base = decision_of_record(record)
    decision = replace(base, action=proposed, params=dict(d.get("proposed_params") or {}), decided_by="person",
                       reason=f"{base.reason.split(' -> ')[0]} -> {proposed.value}: approved by {by}",
                       proposed_action="", proposed_params={}, approval="", model_only=False,
                       notes=[*base.notes, f"the proposed {proposed.value} was approved by {by}"])
    # the day's budget holds for an approved rerun too; its estimate is recorded so it is counted
    plan, cost = within_budget(plan_action(snapshot, decision, settings, now_ms=now), snapshot, settings, store, now)
    decision = say_budget(effective_decision(decision, plan), cost)
    before = {"action": record.action, "decided_by": record.decided_by, "reason": record.reason,
              "notification": record.notification}
    acting = DecisionRecord.from_dict(record.to_dict(), etag=record.etag)
    acting.action, acting.decided_by, acting.reason = decision.action.value, "person", decision.reason
    acting.status = "decided"
    acting.action_request = stored_request(plan.to_dict())
    acting.decision = {**(record.decision or {}), **{k: v for k, v in decision.to_dict().items()
                                                      if k in ("action", "params", "notes", "reason", "decided_by")},
                       "approval": "approved", "before_approval": before, **({"cost": cost} if cost else {})}
    acting.decision["approval_history"] = [*acting.decision.get("approval_history", []),
                                           {"state": "approved", "by": by, "at": now}][-10:]
    result = carry_out(acting, snapshot, decision, plan, settings, client=client, store=store, notifier=notifier)
    rec = result.record
    message = (f"approved: {decision.action.value} of {key} {rec.status if rec else 'unknown'}"
               + (f" ({result.message})" if result.message and not result.acted else "")
               + (f"; not retried: {cost['reason']}" if cost.get("stopped_by") else ""))
    return ApprovalResult(rec, True, result.acted, message, "approved")


def reject(store: "Store", key: str, settings: "Settings", *, by: str = "cli", comment: str | None = None,
           job_id: str | None = None, now_ms: int | None = None, source: str = "cli") -> ApprovalResult:
    """Reject the proposed retry of decision ``key``: recorded on the decision, and as feedback
    (the decision not to retry was right)."""
    from shared.learning.feedback import record_feedback

    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    record, moved, why = _move(store, key, job_id, "rejected", by, now, settings)
    if not moved:
        return ApprovalResult(record, False, False, why, approval_state(record))
    proposed = (record.decision or {}).get("proposed_action") or "retry"
    note = f"rejected the proposed {proposed}" + (f": {comment}" if comment else "")
    try:
        record = record_feedback(store, record.decision_key, "correct", comment=note, source=source,
                                 now_ms=now, job_id=record.job_id)
    except (ValueError, StoreError) as exc:   # the rejection stands; only the feedback copy lags
        log.warning("rejection of %s recorded, its feedback not: %s", key, exc)
    return ApprovalResult(record, True, False, f"rejected the proposed {proposed} of {key}; nothing will be sent",
                          "rejected")


# --- approvals of older decisions -------------------------------------------------------------------
# An approval may come up to TRIAGE_FEEDBACK_LINK_TTL (14 days) after its decision, but the sweep
# reads the last two days of decisions (``act_due``, ``retry_notifications``) and health the last
# week. So an approval is noted where every sweep looks (one TriageState entry, kind ``approvals``)
# before it starts, and the sweep's view of the store (``WithOpenApprovals``) adds those decisions
# to what it lists until they end: a stuck ``approving``, an approved repair ``retrying`` or
# ``acting``, its undelivered escalation are moved on and counted however old the decision is.

_OPEN_KIND, _OPEN_KEY = "approvals", "open"
_OPEN_MAX = 500


def _parse_open(entry: Any) -> list[tuple[str, str]]:
    keys = entry.value.get("keys") if entry is not None else None
    return [(str(k[0]), str(k[1])) for k in keys or [] if isinstance(k, (list, tuple)) and len(k) == 2]


def open_approvals(store: "Store") -> list[tuple[str, str]]:
    """(decision key, job id) of the approvals started and not known to have ended."""
    return _parse_open(store.state_get(_OPEN_KIND, _OPEN_KEY))


def _edit_open(store: "Store", settings: "Settings", add: tuple[str, str] | None = None,
               drop: frozenset[tuple[str, str]] = frozenset()) -> None:
    ttl = int(settings.feedback_link_ttl_s) + 7 * 86400
    for _ in range(4 * _ATTEMPTS):
        cur = store.state_get(_OPEN_KIND, _OPEN_KEY)
        old = _parse_open(cur)
        keys = [k for k in old if k not in drop]
        if add is not None and add not in keys:
            keys.append(add)
        if keys == old:
            return
        value = {"keys": [list(k) for k in keys[-_OPEN_MAX:]]}
        if cur is None:
            done = store.state_put(_OPEN_KIND, _OPEN_KEY, value, if_absent=True, ttl_s=ttl)
        else:
            done = store.state_put(_OPEN_KIND, _OPEN_KEY, value, etag=cur.etag, ttl_s=ttl)
        if done is not None:
            return
    raise StoreError("the list of open approvals kept changing; the approval was not started")


def _ended(rec: DecisionRecord) -> bool:
    from shared.app.lifecycle import TERMINAL

    return approval_state(rec) != "approving" and (rec.mode != "act" or rec.status in TERMINAL)


def forget_ended_approvals(store: "Store", settings: "Settings") -> int:
    """Drop from the open approvals those whose decision has ended (every sweep)."""
    ended = []
    for key, job in open_approvals(store):
        rec = store.get(key, job_id=job)
        if rec is None or _ended(rec):
            ended.append((key, job))
    if ended:
        _edit_open(store, settings, drop=frozenset(ended))
    return len(ended)


class WithOpenApprovals:
    """The store as the sweep sees it: ``list(since_ms=...)`` also returns the decisions of open
    approvals made before ``since_ms`` (so ``act_due``, ``retry_notifications``,
    ``resume_approvals`` and the health summary see them however old the decision is)."""

    def __init__(self, store: "Store") -> None:
        self._store = store

    def list(self, job_id: str | None = None, since_ms: int | None = None, until_ms: int | None = None,
             limit: int | None = None) -> list[DecisionRecord]:
        found = self._store.list(job_id=job_id, since_ms=since_ms, until_ms=until_ms, limit=limit)
        if since_ms is None or limit is not None:
            return found
        seen = {r.decision_key for r in found}
        for key, job in open_approvals(self._store):
            if key in seen or (job_id is not None and job != job_id):
                continue
            rec = self._store.get(key, job_id=job)
            if rec is not None and rec.created_at < since_ms and not _ended(rec):
                found.append(rec)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
