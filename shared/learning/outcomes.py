"""Outcomes: what happened after a decision — the learning signal the app gets for free.

``check_outcomes(settings, client=..., store=...)`` is called by the sweep. For every recent
decision without a final outcome it reads the run(s) concerned and records on the decision:

- **acted retries** (``mode == "act"``, ``status == "acted"``, action RETRY or
  RETRY_WITH_NEW_PARAMS): the app's own attempt — the repair it made (``action_result.repair_id``,
  found in the run's ``repair_history``) or the one-time run it submitted
  (``action_result.run_id``) — ``{"result": "succeeded"|"failed"|"running", "checked_at",
  "final", "recovered_after_s"}``. A retry that failed again adds one to the fingerprint's
  ``hopeless`` counter (``TriageState`` kind ``hopeless``, key ``<job_id>:<fingerprint>``, TTL
  ``TRIAGE_HOPELESS_WINDOW``), which the policy reads (``shared.triage``); a retry that succeeded
  resets it.
- **shadow decisions** (``mode == "shadow"``, any action but IGNORE): what people did instead — a
  repair of the run after the decided attempt (the app made none in shadow mode), else a
  manually started run of the job (``runs/list`` from the failure's end, trigger ``ONE_TIME``) —
  ``{"human_action": "repair"|"new_run"|"none", "human_result", "agreed": True|False|None}``.
  The rules for ``agreed`` are in docs/learning.md (``agreement()`` below).

Outcome writes are conditional on the record's etag; on a conflict the record is read again
and the check repeated (a few times), so two sweeps never double-count a failed retry.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from shared.errors import DatabricksError, DatabricksNotFound, StoreError
from shared.models import Action
from shared.snapshot import as_int
from shared.store import DecisionRecord, Store

if TYPE_CHECKING:  # pragma: no cover
    from shared.databricks.client import DatabricksClient
    from shared.config import Settings

__all__ = [
    "RESULTS",
    "HUMAN_ACTIONS",
    "SHADOW_WINDOW_S",
    "SHADOW_RECHECK_S",
    "check_outcomes",
    "check_outcome",
    "agreement",
    "hopeless_key",
    "is_final",
]

log = logging.getLogger(__name__)

RESULTS = ("succeeded", "failed", "running", "unknown")
HUMAN_ACTIONS = ("repair", "new_run", "none")
# A shadow decision with no human action after this long is closed as "none".
SHADOW_WINDOW_S = 24 * 3600
# Pending shadow decisions are looked at again at most this often (they are many; acted retries
# are few and are looked at on every sweep).
SHADOW_RECHECK_S = 15 * 60
# Decisions older than this (or than the sweep's look-back, whichever is longer) are not checked.
DEFAULT_LOOKBACK_S = 2 * 24 * 3600
_UPDATE_ATTEMPTS = 4
_MAX_LISTED_RUNS = 100

_TERMINAL = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
_SUCCESS = frozenset({"SUCCESS", "SUCCESS_WITH_FAILURES"})
# Run triggers that are a person (UI "Run now", or run-now through the API). Scheduled, file
# arrival, table update and continuous runs are not someone's reaction to the failure.
_HUMAN_TRIGGERS = frozenset({"ONE_TIME"})


# --- small pure helpers ------------------------------------------------------------------------

def hopeless_key(job_id: Any, fingerprint: str) -> str:
    """The ``hopeless`` counter key of a job's failure fingerprint; ``shared.triage`` reads the
    same key (a one-time run, with no job, is "None")."""
    text = str(job_id).strip() if job_id is not None else ""
    job = text if text and text not in ("nojob", "None") else "None"
    return f"{job}:{fingerprint}"


def is_final(record: DecisionRecord) -> bool:
    """True when the record's outcome will not change any more."""
    return bool(record.outcome.get("final"))


def _state_of(obj: Mapping[str, Any] | None) -> str:
    """'succeeded', 'failed' or 'running' for a run or a repair_history entry."""
    if not isinstance(obj, Mapping):
        return "running"
    state = obj.get("state") if isinstance(obj.get("state"), Mapping) else {}
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
    lcs = str(state.get("life_cycle_state") or status.get("state") or "")
    result = str(state.get("result_state") or "")
    if result:
        if result in _SUCCESS:
            return "succeeded"
        return "failed" if lcs in _TERMINAL or not lcs else "running"
    if lcs in _TERMINAL:
        term = status.get("termination_details") if isinstance(status.get("termination_details"), Mapping) else {}
        return "succeeded" if term.get("type") == "SUCCESS" or term.get("code") == "SUCCESS" else "failed"
    return "running"


def _attempt_index(record: DecisionRecord) -> int:
    """The repair count of the decided attempt (the suffix of '<run_id>-<repair_count>')."""
    _, _, tail = record.decision_key.rpartition("-")
    n = as_int(tail)
    return n if n is not None and n >= 0 else 0


def _attempts(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """ORIGINAL then each REPAIR, in order (the run's repair_history)."""
    history = run.get("repair_history") if isinstance(run.get("repair_history"), list) else []
    return [h for h in history if isinstance(h, Mapping) and h.get("type") in ("ORIGINAL", "REPAIR")]


def _repairs(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [h for h in _attempts(run) if h.get("type") == "REPAIR"]


def _failure_end_ms(run: Mapping[str, Any] | None, record: DecisionRecord) -> int:
    """When the decided attempt ended: its repair_history entry, else the run's end (when the
    run has not been repaired since), else the decision time."""
    if run:
        attempts = _attempts(run)
        idx = _attempt_index(record)
        if idx < len(attempts):
            end = as_int(attempts[idx].get("end_time"))
            if end:
                return end
        if len(_repairs(run)) == idx:
            end = as_int(run.get("end_time"))
            if end:
                return end
    return int(record.created_at)


def _repair_result(run: Mapping[str, Any], repair_id: int) -> tuple[str, int | None] | None:
    """(result, end_time) of one repair of ``run``; None when the run has no such repair."""
    repairs = _repairs(run)
    for i, entry in enumerate(repairs):
        if as_int(entry.get("id")) != repair_id:
            continue
        own = _state_of(entry)
        if own != "running":
            return own, as_int(entry.get("end_time"))
        if i == len(repairs) - 1:  # the latest attempt: the run's own state is this repair's
            return _state_of(run), as_int(run.get("end_time"))
        # Another repair followed: only possible once this one had ended, with tasks still failed.
        return "failed", as_int(repairs[i + 1].get("start_time"))
    return None


def agreement(action: str, human_action: str, human_result: str | None) -> bool | None:
    """Whether what people did agrees with a shadow decision (None: no evidence either way).

    - RETRY / RETRY_WITH_NEW_PARAMS: agreed when a person's rerun (repair or new run) succeeded;
      disagreed when it failed (the app's retry would have failed too); no rerun: no evidence.
    - SEND_EMAIL / ESCALATE: agreed when nobody reran the run or a plain rerun failed (it needed
      a person); disagreed when a rerun succeeded (a retry would have done).
    - IGNORE and anything else: no evidence.
    """
    if human_action in ("repair", "new_run") and human_result == "running":
        return None
    rerun_ok = human_action in ("repair", "new_run") and human_result == "succeeded"
    if action in (Action.RETRY.value, Action.RETRY_WITH_NEW_PARAMS.value):
        if human_action == "none":
            return None
        return rerun_ok
    if action in (Action.SEND_EMAIL.value, Action.ESCALATE.value):
        return not rerun_ok
    return None


# --- what to check -------------------------------------------------------------------------

def _acted_retry(record: DecisionRecord) -> bool:
    return (record.mode == "act" and record.status == "acted"
            and record.action in (Action.RETRY.value, Action.RETRY_WITH_NEW_PARAMS.value)
            and (as_int(record.action_result.get("repair_id")) is not None
                 or as_int(record.action_result.get("run_id")) is not None))


def _shadow(record: DecisionRecord) -> bool:
    return (record.mode == "shadow" and record.status not in ("duplicate", "failed")
            and record.action not in ("", Action.IGNORE.value))


def _due(record: DecisionRecord, now_ms: int) -> bool:
    if is_final(record):
        return False
    if _acted_retry(record):
        return True
    if _shadow(record):
        checked = as_int(record.outcome.get("checked_at")) or 0
        return now_ms - checked >= SHADOW_RECHECK_S * 1000
    return False


# --- the checks ------------------------------------------------------------------------------

def _retry_outcome(record: DecisionRecord, client: DatabricksClient, now_ms: int) -> dict[str, Any]:
    """The outcome of the app's own retry of ``record``."""
    repair_id = as_int(record.action_result.get("repair_id"))
    out: dict[str, Any] = {"checked_at": now_ms}
    original: Mapping[str, Any] | None = None
    if repair_id is not None:
        original = client.get_run(record.run_id, include_history=True)
        found = _repair_result(original, repair_id)
        out["attempt"] = {"kind": "repair", "repair_id": repair_id}
        if found is None:
            out.update(result="running", note=f"repair {repair_id} is not in the run's repair history yet")
            return out
        result, end = found
    else:
        run_id = int(record.action_result["run_id"])
        out["attempt"] = {"kind": "submit", "run_id": run_id}
        try:
            submitted = client.get_run(run_id, include_history=False)
        except DatabricksNotFound:
            out.update(result="unknown", final=True, note=f"submitted run {run_id} no longer exists")
            return out
        result, end = _state_of(submitted), as_int(submitted.get("end_time"))
    out["result"] = result
    out["final"] = result != "running"
    if result == "succeeded":
        if original is None:
            try:
                original = client.get_run(record.run_id, include_history=True)
            except DatabricksError as exc:   # the recovery time is a nicety; the result is not
                log.info("run %s: no failure end time for the recovery time (%s)", record.run_id, exc)
        failed_at = _failure_end_ms(original, record)
        if end and end >= failed_at:
            out["recovered_after_s"] = round((end - failed_at) / 1000, 1)
    return out


def _human_runs(record: DecisionRecord, client: DatabricksClient, since_ms: int) -> list[Mapping[str, Any]]:
    job_id = as_int(record.job_id)
    if job_id is None:
        return []
    found = []
    for i, run in enumerate(client.list_runs(job_id=job_id, completed_only=False, start_time_from=since_ms,
                                             expand_tasks=False)):
        if i >= _MAX_LISTED_RUNS:
            break
        if as_int(run.get("run_id")) == record.run_id:
            continue
        trigger = run.get("trigger")
        if trigger is None or trigger in _HUMAN_TRIGGERS:
            found.append(run)
    found.sort(key=lambda r: (as_int(r.get("start_time")) or 0, as_int(r.get("run_id")) or 0))
    return found


def _shadow_outcome(record: DecisionRecord, client: DatabricksClient, now_ms: int) -> dict[str, Any]:
    """What people did about a failure the app only recorded a decision for."""
    run = client.get_run(record.run_id, include_history=True)
    failed_at = _failure_end_ms(run, record)
    out: dict[str, Any] = {"checked_at": now_ms}
    later = _repairs(run)[_attempt_index(record):]
    if later:
        first = later[0]
        repair_id = as_int(first.get("id"))
        found = _repair_result(run, repair_id) if repair_id is not None else None
        result, end = found if found else (_state_of(first), as_int(first.get("end_time")))
        out.update(human_action="repair", human_result=result, human_repair_id=repair_id)
    else:
        runs = _human_runs(record, client, failed_at)
        if runs:
            first = runs[0]
            result, end = _state_of(first), as_int(first.get("end_time"))
            out.update(human_action="new_run", human_result=result, human_run_id=as_int(first.get("run_id")))
        else:
            result, end = None, None
            out.update(human_action="none", human_result=None)
    age_s = (now_ms - int(record.created_at)) / 1000
    if out["human_action"] == "none":
        out["final"] = age_s >= SHADOW_WINDOW_S
    else:
        out["final"] = result != "running"
    # "nobody reran it" is only evidence once the window has passed
    out["agreed"] = agreement(record.action, out["human_action"], out["human_result"]) if out["final"] else None
    if result == "succeeded" and end and end >= failed_at:
        out["recovered_after_s"] = round((end - failed_at) / 1000, 1)
    return out


def check_outcome(record: DecisionRecord, client: DatabricksClient, *, now_ms: int) -> dict[str, Any] | None:
    """The current outcome of one decision (not stored), or None when it has nothing to check."""
    if _acted_retry(record):
        return _retry_outcome(record, client, now_ms)
    if _shadow(record):
        return _shadow_outcome(record, client, now_ms)
    return None


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return {k: v for k, v in old.items() if k != "checked_at"} == {k: v for k, v in new.items() if k != "checked_at"}


def _record_outcome(record: DecisionRecord, settings: Settings, client: DatabricksClient, store: Store,
                    now_ms: int) -> DecisionRecord | None:
    """Check and store one decision's outcome; returns the stored record when it was written."""
    current: DecisionRecord | None = record
    for _ in range(_UPDATE_ATTEMPTS):
        if current is None or not _due(current, now_ms):
            return None
        outcome = check_outcome(current, client, now_ms=now_ms)
        if outcome is None:
            return None
        if current.outcome and _same(current.outcome, outcome) and not _shadow(current):
            return None  # an acted retry still running: nothing new to write
        updated_record = DecisionRecord.from_dict(current.to_dict(), etag=current.etag)
        updated_record.outcome = outcome
        result = store.update(updated_record)
        if result.ok and result.record is not None:
            _learn(result.record, current, settings, store)
            return result.record
        current = result.record   # someone else wrote: look again at what is there now
    log.warning("decision %s: outcome not recorded after %d conflicting writes", record.decision_key,
                _UPDATE_ATTEMPTS)
    return None


def _learn(stored: DecisionRecord, before: DecisionRecord, settings: Settings, store: Store) -> None:
    """Feed a final retry outcome into the fingerprint's hopeless counter (once: only the writer
    whose conditional update made the outcome final gets here)."""
    if not _acted_retry(stored) or not is_final(stored) or is_final(before) or not stored.fingerprint:
        return
    key = hopeless_key(stored.job_id, stored.fingerprint)
    try:
        if stored.outcome.get("result") == "failed":
            count = store.incr("hopeless", key, ttl_s=int(settings.hopeless_window_s))
            log.info("retry of %s failed again: fingerprint %s has %d failed retries", stored.decision_key,
                     stored.fingerprint, count)
        elif stored.outcome.get("result") == "succeeded":
            _reset(store, key, settings)
    except StoreError as exc:   # learning is advisory: the outcome itself is recorded
        log.warning("could not update the retry record of fingerprint %s: %s", stored.fingerprint, exc)


def _reset(store: Store, key: str, settings: Settings) -> None:
    for _ in range(_UPDATE_ATTEMPTS):
        cur = store.state_get("hopeless", key)
        if cur is None or int(cur.value.get("count", 0)) == 0:
            return
        value = {**cur.value, "count": 0}
        if store.state_put("hopeless", key, value, etag=cur.etag, ttl_s=int(settings.hopeless_window_s)):
            return


def check_outcomes(settings: Settings, *, client: DatabricksClient, store: Store, now_ms: int | None = None,
                   lookback_s: int | None = None) -> list[DecisionRecord]:
    """Check and record the outcome of every recent decision that has none final yet.

    ``client`` is a ``DatabricksClient`` for the workspace of the decisions; ``now_ms`` moves the
    clock (tests); ``lookback_s`` defaults to the longer of two days and TRIAGE_SWEEP_MAX_LOOKBACK.
    Returns the records whose outcome was written. A Databricks error on one decision is logged
    and the others are still checked; store outages raise ``StoreError``."""
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    lookback = lookback_s if lookback_s is not None else max(
        DEFAULT_LOOKBACK_S, int(getattr(settings, "sweep_max_lookback_s", 0) or 0))
    host = _host(getattr(client, "host", ""))
    written: list[DecisionRecord] = []
    for record in _candidates(store.list(since_ms=now - lookback * 1000), now):
        theirs = _host(record.workspace)
        if host and theirs and theirs != host:
            continue   # another workspace's decision: its own sweep checks it
        try:
            stored = _record_outcome(record, settings, client, store, now)
        except DatabricksError as exc:
            log.warning("outcome of decision %s (run %s) not checked: %s", record.decision_key, record.run_id, exc)
            continue
        if stored is not None:
            written.append(stored)
    if written:
        log.info("recorded %d outcome(s)", len(written))
    return written


def _host(value: str) -> str:
    """The host name of a workspace URL or host ('' when ``value`` is not one, e.g. an id)."""
    text = str(value or "").strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    return text if "." in text or text.startswith(("localhost", "127.")) else ""


def _candidates(records: Iterable[DecisionRecord], now_ms: int) -> list[DecisionRecord]:
    return [r for r in records if _due(r, now_ms)]
