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

**When**: on a back-off schedule, not on every sweep — a shadow decision 15 minutes, 1 hour,
6 hours and 24 hours after it was made, the app's own retry on the first sweep after it acted
and then on the same schedule; after the last check the outcome is final as it stands. A
decision is due when one of its check times fell since the previous check pass of its workspace
(``TriageState`` kind ``outcome_pass``), so between check times a pending decision costs no
call and no write.

**How cheaply**: a check reads the job's ``runs/list`` from the failed run's start (one listing
per job per pass, shared by that job's decisions; the sweep's own listing when it reaches back
far enough). The failed run is among those runs: while it still shows the decided failure
(``decision.run_times``), nobody repaired it and no ``runs/get`` is needed; later runs started
by a person are there too. A run the sweep already read in full is used as read, and such a
decision is checked on that pass at no cost. A row is written only when the outcome changed.

Outcome writes are conditional on the record's etag; on a conflict the record is read again
and the check repeated (a few times), so two sweeps never double-count a failed retry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
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
    "SHADOW_SCHEDULE_S",
    "RETRY_SCHEDULE_S",
    "PASS_KIND",
    "RunsSeen",
    "check_times",
    "failure_times",
    "check_outcomes",
    "check_outcome",
    "agreement",
    "hopeless_key",
    "is_final",
]

log = logging.getLogger(__name__)

RESULTS = ("succeeded", "failed", "running", "unknown")
HUMAN_ACTIONS = ("repair", "new_run", "none")
# When a decision's outcome is checked, in seconds after the decision (shadow) or after the app
# could act (its own retries: first on the next sweep, to learn a retry that failed at once).
# After the last check the outcome is final as it stands: a shadow decision nobody reran is
# closed as "none". Between check times a decision costs nothing.
SHADOW_SCHEDULE_S = (15 * 60, 3600, 6 * 3600, 24 * 3600)
RETRY_SCHEDULE_S = (0, 15 * 60, 3600, 6 * 3600, 24 * 3600)
SHADOW_WINDOW_S = SHADOW_SCHEDULE_S[-1]
SHADOW_RECHECK_S = SHADOW_SCHEDULE_S[0]
# TriageState kind: when each workspace's outcomes were last checked ({"at": ms}).
PASS_KIND = "outcome_pass"
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


# --- what to check, and when ---------------------------------------------------------------------

def _acted_retry(record: DecisionRecord) -> bool:
    return (record.mode == "act" and record.status == "acted"
            and record.action in (Action.RETRY.value, Action.RETRY_WITH_NEW_PARAMS.value)
            and (as_int(record.action_result.get("repair_id")) is not None
                 or as_int(record.action_result.get("run_id")) is not None))


def _shadow(record: DecisionRecord) -> bool:
    return (record.mode == "shadow" and record.status not in ("duplicate", "failed")
            and record.action not in ("", Action.IGNORE.value))


def _base_ms(record: DecisionRecord) -> int:
    """When the schedule starts: the decision, or for the app's own retry, when it could act."""
    if _acted_retry(record):
        return max(int(record.created_at or 0), int(record.not_before or 0))
    return int(record.created_at or 0)


def check_times(record: DecisionRecord) -> list[int]:
    """The moments (ms epoch) at which a decision's outcome is due to be checked."""
    schedule = RETRY_SCHEDULE_S if _acted_retry(record) else SHADOW_SCHEDULE_S
    base = _base_ms(record)
    return [base + s * 1000 for s in schedule]


def _due(record: DecisionRecord, now_ms: int, last_pass_ms: int | None = None) -> bool:
    """Due when one of the record's check times fell since the last look at it (the previous
    check pass of this workspace, or the record's own last written check, whichever is later),
    and always once the last check time has passed without a final outcome (a check that
    failed then is tried again on the next pass)."""
    if is_final(record) or not (_acted_retry(record) or _shadow(record)):
        return False
    times = check_times(record)
    checked = as_int(record.outcome.get("checked_at")) or 0
    after = max(checked, last_pass_ms or 0)
    if any(after < t <= now_ms for t in times):
        return True
    return now_ms >= times[-1]


def failure_times(run: Mapping[str, Any]) -> dict[str, int]:
    """What a decision keeps of its failed run so that its outcome checks can read the job's
    ``runs/list`` instead of the run: the run's start and the failed attempt's end."""
    out = {}
    for key, name in (("start_time", "start"), ("end_time", "end")):
        value = as_int(run.get(key))
        if value:
            out[name] = value
    return out


def _stored_times(record: DecisionRecord) -> tuple[int | None, int | None]:
    times = record.decision.get("run_times") if isinstance(record.decision, Mapping) else None
    if not isinstance(times, Mapping):
        return None, None
    return as_int(times.get("start")), as_int(times.get("end"))


@dataclass
class RunsSeen:
    """What a sweep already read, handed to the outcome checks so they need not read it again:
    ``listed`` the runs of its workspace-wide ``runs/list`` (runs that started at or after
    ``listed_from``; no repair history), ``full`` runs it read with ``runs/get`` and their
    repair history."""

    listed_from: int | None = None
    listed: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    full: dict[int, Mapping[str, Any]] = field(default_factory=dict)

    def add_listed(self, run: Mapping[str, Any]) -> None:
        run_id = as_int(run.get("run_id"))
        if run_id:
            self.listed[run_id] = run


class _Reader:
    """Reads runs for one check pass, at most once each: a run's repair history (``runs/get``),
    and a job's runs since a time (one ``runs/list`` per job per pass, or the sweep's own)."""

    def __init__(self, client: DatabricksClient, seen: RunsSeen | None) -> None:
        self.client = client
        self.seen = seen or RunsSeen()
        self._full: dict[int, Mapping[str, Any]] = dict(self.seen.full)
        self._jobs: dict[int, tuple[int, list[Mapping[str, Any]], bool]] = {}
        self.wanted: dict[int, int] = {}   # job id -> earliest start wanted this pass

    def run(self, run_id: int) -> Mapping[str, Any]:
        if run_id not in self._full:
            self._full[run_id] = self.client.get_run(run_id, include_history=True)
        return self._full[run_id]

    def known(self, run_id: int) -> Mapping[str, Any] | None:
        return self._full.get(run_id)

    def job_runs(self, job_id: int, since_ms: int) -> tuple[list[Mapping[str, Any]], bool] | None:
        """(runs of the job that started at or after ``since_ms``, complete?) — newest first."""
        seen = self.seen
        if seen.listed_from is not None and since_ms >= seen.listed_from:
            runs = [r for r in seen.listed.values() if as_int(r.get("job_id")) == job_id
                    and (as_int(r.get("start_time")) or 0) >= since_ms]
            return sorted(runs, key=lambda r: as_int(r.get("start_time")) or 0, reverse=True), True
        cached = self._jobs.get(job_id)
        if cached is None or cached[0] > since_ms:
            start = min(since_ms, self.wanted.get(job_id, since_ms))
            runs: list[Mapping[str, Any]] = []
            complete = True
            for i, run in enumerate(self.client.list_runs(job_id=job_id, completed_only=False,
                                                          start_time_from=start, expand_tasks=False)):
                if i >= _MAX_LISTED_RUNS:
                    complete = False
                    break
                runs.append(run)
            cached = self._jobs[job_id] = (start, runs, complete)
        start, runs, complete = cached
        return [r for r in runs if (as_int(r.get("start_time")) or 0) >= since_ms], complete

    def listed_run(self, run_id: int) -> Mapping[str, Any] | None:
        return self.seen.listed.get(run_id)


def _unchanged(listed: Mapping[str, Any] | None, failed_end: int | None) -> bool:
    """The run, as listed, still shows the decided failed attempt (nobody repaired it since)."""
    if listed is None or not failed_end:
        return False
    return _state_of(listed) == "failed" and as_int(listed.get("end_time")) == failed_end


# --- the checks ------------------------------------------------------------------------------

def _retry_outcome(record: DecisionRecord, reader: _Reader, now_ms: int) -> dict[str, Any]:
    """The outcome of the app's own retry of ``record``."""
    repair_id = as_int(record.action_result.get("repair_id"))
    out: dict[str, Any] = {"checked_at": now_ms}
    original: Mapping[str, Any] | None = None
    if repair_id is not None:
        out["attempt"] = {"kind": "repair", "repair_id": repair_id}
        original = reader.known(record.run_id)
        if original is None:
            start, _ = _stored_times(record)
            job_id = as_int(record.job_id)
            listing = reader.job_runs(job_id, start) if job_id is not None and start else None
            listed = next((r for r in listing[0] if as_int(r.get("run_id")) == record.run_id), None) \
                if listing else None
            if listed is not None and _state_of(listed) == "running":
                out.update(result="running", final=False)    # the repair is going: nothing to read yet
                return out
            original = reader.run(record.run_id)
        found = _repair_result(original, repair_id)
        if found is None:
            out.update(result="running", note=f"repair {repair_id} is not in the run's repair history yet")
            return out
        result, end = found
    else:
        run_id = int(record.action_result["run_id"])
        out["attempt"] = {"kind": "submit", "run_id": run_id}
        submitted = reader.known(run_id) or reader.listed_run(run_id)
        if submitted is None:
            try:
                submitted = reader.run(run_id)
            except DatabricksNotFound:
                out.update(result="unknown", final=True, note=f"submitted run {run_id} no longer exists")
                return out
        result, end = _state_of(submitted), as_int(submitted.get("end_time"))
    out["result"] = result
    out["final"] = result != "running"
    if result == "succeeded":
        failed_at = _stored_times(record)[1]
        if original is not None or not failed_at:
            if original is None:
                try:
                    original = reader.run(record.run_id)
                except DatabricksError as exc:   # the recovery time is a nicety; the result is not
                    log.info("run %s: no failure end time for the recovery time (%s)", record.run_id, exc)
            failed_at = _failure_end_ms(original, record)
        if end and end >= failed_at:
            out["recovered_after_s"] = round((end - failed_at) / 1000, 1)
    return out


def _human_runs(record: DecisionRecord, runs: Iterable[Mapping[str, Any]], since_ms: int) -> list[Mapping[str, Any]]:
    found = []
    for run in runs:
        if as_int(run.get("run_id")) == record.run_id:
            continue
        if (as_int(run.get("start_time")) or since_ms) < since_ms:
            continue
        trigger = run.get("trigger")
        if trigger is None or trigger in _HUMAN_TRIGGERS:
            found.append(run)
    found.sort(key=lambda r: (as_int(r.get("start_time")) or 0, as_int(r.get("run_id")) or 0))
    return found


def _shadow_outcome(record: DecisionRecord, reader: _Reader, now_ms: int) -> dict[str, Any]:
    """What people did about a failure the app only recorded a decision for. Read from the job's
    ``runs/list`` (the run itself is among them: while it still shows the decided failure, nobody
    repaired it); ``runs/get`` only when the run changed, or when the listing cannot tell."""
    start, failed_end = _stored_times(record)
    job_id = as_int(record.job_id)
    run = reader.known(record.run_id)
    listing = None
    if job_id is not None and start:
        listing = reader.job_runs(job_id, start)
    if run is None:
        listed = next((r for r in listing[0] if as_int(r.get("run_id")) == record.run_id), None) \
            if listing else None
        if not _unchanged(listed, failed_end):
            run = reader.run(record.run_id)
    failed_at = _failure_end_ms(run, record) if run is not None else int(failed_end or record.created_at)
    out: dict[str, Any] = {"checked_at": now_ms}
    later = _repairs(run)[_attempt_index(record):] if run is not None else []
    if later:
        first = later[0]
        repair_id = as_int(first.get("id"))
        found = _repair_result(run, repair_id) if repair_id is not None else None
        result, end = found if found else (_state_of(first), as_int(first.get("end_time")))
        out.update(human_action="repair", human_result=result, human_repair_id=repair_id)
    else:
        if listing is None and job_id is not None:
            listing = reader.job_runs(job_id, failed_at)
        runs = _human_runs(record, listing[0], failed_at) if listing else []
        if runs:
            first = runs[0]
            result, end = _state_of(first), as_int(first.get("end_time"))
            out.update(human_action="new_run", human_result=result, human_run_id=as_int(first.get("run_id")))
        else:
            result, end = None, None
            out.update(human_action="none", human_result=None)
    age_s = (now_ms - int(record.created_at)) / 1000
    # After the window nothing more is learnt: the outcome is final as it stands.
    out["final"] = age_s >= SHADOW_WINDOW_S or (out["human_action"] != "none" and result != "running")
    # "nobody reran it" is only evidence once the window has passed
    out["agreed"] = agreement(record.action, out["human_action"], out["human_result"]) if out["final"] else None
    if result == "succeeded" and end and end >= failed_at:
        out["recovered_after_s"] = round((end - failed_at) / 1000, 1)
    return out


def check_outcome(record: DecisionRecord, client: DatabricksClient, *, now_ms: int,
                  seen: RunsSeen | None = None) -> dict[str, Any] | None:
    """The current outcome of one decision (not stored), or None when it has nothing to check."""
    reader = _Reader(client, seen)
    return _check(record, reader, now_ms)


def _check(record: DecisionRecord, reader: _Reader, now_ms: int) -> dict[str, Any] | None:
    if _acted_retry(record):
        out = _retry_outcome(record, reader, now_ms)
        if not out.get("final") and now_ms >= check_times(record)[-1]:
            out.update(final=True, note="still running at the last check; no longer checked")
        return out
    if _shadow(record):
        return _shadow_outcome(record, reader, now_ms)
    return None


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return {k: v for k, v in old.items() if k != "checked_at"} == {k: v for k, v in new.items() if k != "checked_at"}


def _record_outcome(record: DecisionRecord, settings: Settings, reader: _Reader, store: Store,
                    now_ms: int, last_pass: int | None) -> DecisionRecord | None:
    """Check one decision and store its outcome when it changed; returns the stored record when
    it was written."""
    current: DecisionRecord | None = record
    for attempt in range(_UPDATE_ATTEMPTS):
        if current is None or not (attempt or _due(current, now_ms, last_pass) or _free(current, reader)):
            return None
        if attempt and (is_final(current) or not (_acted_retry(current) or _shadow(current))):
            return None
        outcome = _check(current, reader, now_ms)
        if outcome is None:
            return None
        if current.outcome and _same(current.outcome, outcome):
            return None  # nothing new: no write
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


def _free(record: DecisionRecord, reader: _Reader) -> bool:
    """The sweep read this record's run with its history already: checking costs nothing."""
    return (not is_final(record) and (_acted_retry(record) or _shadow(record))
            and reader.known(record.run_id) is not None)


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
                   lookback_s: int | None = None, seen: RunsSeen | None = None) -> list[DecisionRecord]:
    """Check and record the outcome of every recent decision that is due a check (see the module
    doc for the schedule).

    ``client`` is a ``DatabricksClient`` for the workspace of the decisions; ``now_ms`` moves the
    clock (tests); ``lookback_s`` defaults to the longer of two days and TRIAGE_SWEEP_MAX_LOOKBACK;
    ``seen`` is what the sweep already read (its ``runs/list`` pages, runs it read in full).
    Returns the records whose outcome was written (only those whose outcome changed). A
    Databricks error on one decision is logged and the others are still checked; store outages
    raise ``StoreError``."""
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    lookback = lookback_s if lookback_s is not None else max(
        DEFAULT_LOOKBACK_S, int(getattr(settings, "sweep_max_lookback_s", 0) or 0))
    host = _host(getattr(client, "host", ""))
    pass_key = host or "default"
    previous = store.state_get(PASS_KIND, pass_key)
    last_pass = as_int(previous.value.get("at")) if previous else None
    if last_pass is not None and last_pass > now:
        last_pass = None                      # a clock set back: fall back to each record's own time
    reader = _Reader(client, seen)
    due: list[DecisionRecord] = []
    for record in store.list(since_ms=now - lookback * 1000):
        theirs = _host(record.workspace)
        if host and theirs and theirs != host:
            continue   # another workspace's decision: its own sweep checks it
        if _due(record, now, last_pass) or _free(record, reader):
            due.append(record)
            start, _ = _stored_times(record)
            job_id = as_int(record.job_id)
            if start and job_id is not None:
                reader.wanted[job_id] = min(start, reader.wanted.get(job_id, start))
    written: list[DecisionRecord] = []
    for record in due:
        try:
            stored = _record_outcome(record, settings, reader, store, now, last_pass)
        except DatabricksError as exc:
            log.warning("outcome of decision %s (run %s) not checked: %s", record.decision_key, record.run_id, exc)
            continue
        if stored is not None:
            written.append(stored)
    if last_pass is None or now > last_pass:
        store.state_put(PASS_KIND, pass_key, {"at": now}, ttl_s=DEFAULT_LOOKBACK_S)
    if written:
        log.info("checked %d outcome(s), recorded %d change(s)", len(due), len(written))
    return written


def _host(value: str) -> str:
    """The host name of a workspace URL or host ('' when ``value`` is not one, e.g. an id)."""
    text = str(value or "").strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    return text if "." in text or text.startswith(("localhost", "127.")) else ""
