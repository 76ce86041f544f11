"""The timer sweep: find the failed runs the webhook missed, queue them, and do the due work.

Databricks documents no delivery retries for webhooks, so every few minutes (the timer
``TRIAGE_SWEEP_SCHEDULE``, or ``python -m shared sweep``) the sweep, for each workspace:

1. **Window.** ``runs/list`` from ``watermark - TRIAGE_SWEEP_OVERLAP``, never further back than
   ``now - TRIAGE_SWEEP_MAX_LOOKBACK`` (the catch-up bound after downtime; the first sweep of a
   workspace starts there). ``runs/list`` filters on a run's *start* time, so a run still going
   at one sweep (or a failure that could not be queued) is remembered (``TriageState`` kind
   ``sweep_active``) and read again with ``runs/get`` once it has left the window: a job longer
   than the overlap is not missed. At most 1000 runs per workspace are remembered. A run this
   app repaired keeps its old start time, so it too is read with ``runs/get`` (from its
   decision in the store) until its repaired attempt is decided or the repair has succeeded.
2. **List.** Every page (``page_token``) with ``expand_tasks``: no per-run ``runs/get`` calls.
3. **Select.** A finished run whose result is ``FAILED``/``TIMEDOUT``, or whose life cycle is
   ``INTERNAL_ERROR`` (what ``jobs.on_failure`` fires on), with no decision yet under
   ``<run_id>-<repair_count>``, and no ``<run_id>-triage-failed`` escalation still holding it (its
   re-triage, ``shared.app.retriage``, places the run). ``runs/list`` carries no repair history, so when the stored
   decision for attempt *k* repaired the run, attempt *k + 1* is looked up instead.
4. **Queue** each one (``enqueue``), oldest end first, and then **advance the watermark** to the
   newest ``end_time`` up to which everything was handled. A Databricks outage mid-listing, or a
   queue or store failure, leaves the watermark where everything before it is known to be queued
   (the next sweep covers the rest; queuing twice is harmless: the worker's claim dedupes).

Then, with each workspace's client: ``shared.app.retriage.retriage_due`` (runs whose triage the
queue gave up on during an outage, triaged again on a back-off until placed), ``shared.triage.act_due`` (act-mode decisions whose back-off
has passed, actions retrying, and actions stuck in ``acting``: docs/lifecycle.md),
``shared.app.approvals.resume_approvals`` (approvals whose approving process died); these see,
besides the last days' decisions, the approved ones of any age until they end
(``shared.app.approvals.WithOpenApprovals``),
``shared.triage.retry_notifications`` (emails that failed or were never recorded),
``shared.learning.outcomes.check_outcomes`` (the outcome of what was retried, the learning signal),
``shared.databricks.inplace.restore_due`` (jobs resized in place put back once their repaired
tasks have started) and, with chat or paging channels, ``shared.notify.routing.resolve_recovered``
(incidents whose jobs have all recovered are resolved). Last, ``shared.app.lifecycle.publish_summary``
keeps what is stuck where ``health`` reads it.

``sweep()`` takes its collaborators as arguments (tests pass the fake workspace's client and an
in-memory queue); ``run_sweep()`` builds them from the settings exactly as the timer does.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from shared.errors import DatabricksError, DatabricksNotFound, StoreError, TriageError
from shared.snapshot import RunState, as_int
from shared.app.messages import TriageRequest
from shared.app.retriage import holds_run

if TYPE_CHECKING:  # pragma: no cover
    from shared.databricks.client import DatabricksClient
    from shared.notify.notifier import Notifier
    from shared.app.runtime import Runtime
    from shared.config import Settings
    from shared.store import DecisionRecord, Store

__all__ = [
    "SweepReport",
    "WorkspaceReport",
    "ACTIVE_KIND",
    "is_failed_run",
    "needs_triage",
    "sweep",
    "run_sweep",
]

log = logging.getLogger(__name__)

# Told about each failed run as it is handled: (index, total failed, run id, what enqueue
# returned, or None when the run was already decided). The command line prints "[3/30] run N -> X".
Progress = Callable[[int, int, int, Any], None]

ACTIVE_KIND = "sweep_active"          # TriageState: runs still going at the last sweep, per workspace
_TERMINAL = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
_FAILED_RESULTS = frozenset({"FAILED", "TIMEDOUT"})
_NOT_FAILURES = frozenset({"SUCCESS", "USER_CANCELED", "SKIPPED"})
_MAX_ACTIVE = 1000                    # runs remembered per workspace (newest kept)
_MAX_RUN_GETS = 100                   # runs/get calls per sweep for long runs that left the window
_MAX_ATTEMPTS = 64                    # repair attempts looked up per run


@dataclass
class WorkspaceReport:
    """What one workspace's sweep saw and did."""

    workspace: str
    window_from: int = 0
    watermark_before: int | None = None
    watermark_after: int | None = None
    listed: int = 0                   # finished runs seen (pages included)
    long_runs: int = 0                # runs read with runs/get after leaving the window
    failed: int = 0                   # of those, failed
    already_decided: int = 0
    enqueued: list[int] = field(default_factory=list)
    error: str = ""


@dataclass
class SweepReport:
    workspaces: list[WorkspaceReport] = field(default_factory=list)
    acted: int = 0                    # decisions act_due carried out
    emails_resent: int = 0            # failed or unrecorded emails sent again
    outcomes: int = 0                 # outcomes check_outcomes recorded
    incidents_resolved: int = 0       # incidents whose jobs all recovered (their page resolved)
    retriaged: int = 0                # runs placed by re-triaging a poisoned triage (shared.app.retriage)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def enqueued(self) -> list[int]:
        return [run for ws in self.workspaces for run in ws.enqueued]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "workspaces": [asdict(w) for w in self.workspaces], "acted": self.acted,
                "emails_resent": self.emails_resent, "outcomes": self.outcomes, "incidents_resolved": self.incidents_resolved,
                "retriaged": self.retriaged,
                "errors": list(self.errors)}

    def summary(self) -> str:
        parts = [f"{w.workspace}: {w.listed} finished, {w.failed} failed, {len(w.enqueued)} queued"
                 + (f", ERROR {w.error}" if w.error else "") for w in self.workspaces]
        parts.append(f"{self.acted} due action(s) carried out, {self.emails_resent} email(s) resent, "
                     f"{self.outcomes} outcome(s) recorded"
                     + (f", {self.retriaged} failed triage(s) placed" if self.retriaged else ""))
        return "; ".join(parts)


# --- run facts ----------------------------------------------------------------------------------

def _life_cycle(run: Mapping[str, Any]) -> str:
    state = run.get("state") if isinstance(run.get("state"), Mapping) else {}
    status = run.get("status") if isinstance(run.get("status"), Mapping) else {}
    return str(state.get("life_cycle_state") or status.get("state") or "")


def _repair_in_flight(run: Mapping[str, Any]) -> bool:
    """The latest repair in ``repair_history`` (when present) has not ended; the run's own state
    may still say it has (the rule of ``Snapshot.repair_in_flight``)."""
    history = run.get("repair_history")
    repairs = [r for r in history if isinstance(r, Mapping) and r.get("type") == "REPAIR"] \
        if isinstance(history, list) else []
    if not repairs:
        return False
    state = RunState.from_api(repairs[-1])
    if state.life_cycle_state or state.result_state:
        return not state.terminal
    return not as_int(repairs[-1].get("end_time"))


def _finished(run: Mapping[str, Any]) -> bool:
    return _life_cycle(run) in _TERMINAL and not _repair_in_flight(run)


def _end(run: Mapping[str, Any]) -> int:
    """When the run ended (its start for a terminal run that reports no end)."""
    return as_int(run.get("end_time")) or as_int(run.get("start_time")) or 0


def is_failed_run(run: Mapping[str, Any]) -> bool:
    """What ``jobs.on_failure`` fires on: result FAILED or TIMEDOUT, or life cycle INTERNAL_ERROR.
    A run with only the newer ``status`` counts as failed when its termination is not a success,
    a user cancellation or a skip."""
    state = run.get("state") if isinstance(run.get("state"), Mapping) else {}
    result = state.get("result_state")
    if result:
        return str(result) in _FAILED_RESULTS or _life_cycle(run) == "INTERNAL_ERROR"
    if _life_cycle(run) == "INTERNAL_ERROR":
        return True
    status = run.get("status") if isinstance(run.get("status"), Mapping) else {}
    term = status.get("termination_details") if isinstance(status.get("termination_details"), Mapping) else {}
    code, kind = term.get("code"), term.get("type")
    return bool(kind) and kind != "SUCCESS" and code not in _NOT_FAILURES


def _repair_count(run: Mapping[str, Any]) -> int | None:
    history = run.get("repair_history")
    if not isinstance(history, list):
        return None
    return sum(1 for r in history if isinstance(r, Mapping) and r.get("type") == "REPAIR")


def _repaired(record: "DecisionRecord") -> bool:
    return isinstance(record.action_result, Mapping) and record.action_result.get("repair_id") is not None


def needs_triage(store: "Store", run: Mapping[str, Any]) -> bool:
    """True when no decision exists yet for this attempt of the run (see the module doc)."""
    run_id = as_int(run.get("run_id"))
    job_id = str(as_int(run.get("job_id")) or "nojob")
    gave_up = store.get(f"{run_id}-triage-failed", job_id)
    if gave_up is not None and holds_run(gave_up):
        return False   # triage gave up and escalated: the re-triage (or a person) has it, no loop
    count = _repair_count(run)
    if count is not None:
        return store.get(f"{run_id}-{count}", job_id) is None
    for attempt in range(_MAX_ATTEMPTS):
        record = store.get(f"{run_id}-{attempt}", job_id)
        if record is None:
            return True
        if not _repaired(record):
            return False
    return False


# --- one workspace ------------------------------------------------------------------------------

def _load_active(store: "Store", key: str) -> dict[str, int]:
    entry = store.state_get(ACTIVE_KIND, key)
    runs = entry.value.get("runs") if entry else None
    if not isinstance(runs, Mapping):
        return {}
    return {str(k): int(v) for k, v in runs.items() if as_int(k) and as_int(v) is not None}


def _save_active(store: "Store", key: str, active: Mapping[str, int]) -> None:
    if len(active) > _MAX_ACTIVE:
        log.warning("sweep of %s: %d runs are still going; remembering the newest %d", key, len(active), _MAX_ACTIVE)
        active = dict(sorted(active.items(), key=lambda kv: kv[1], reverse=True)[:_MAX_ACTIVE])
    store.state_put(ACTIVE_KIND, key, {"runs": dict(active)})


def _repaired_runs(store: "Store", key: str, since_ms: int, include_unnamed: bool) -> dict[str, int]:
    """Runs of this workspace that this app repaired and whose next attempt has no decision yet
    (run id -> when decided). A repair keeps the run's start time, so the repaired attempt can
    end, and fail, long after the run has left the ``runs/list`` window."""
    found: dict[str, int] = {}
    for record in store.list(since_ms=since_ms):
        if not _repaired(record) or not (record.workspace == key or (include_unnamed and not record.workspace)):
            continue
        outcome = record.outcome if isinstance(record.outcome, Mapping) else {}
        if outcome.get("final") and outcome.get("result") != "failed":
            continue                               # the repair succeeded (or its run is gone)
        run_id, _, attempt = record.decision_key.rpartition("-")
        if not attempt.isdigit() or str(record.run_id) in found:
            continue
        gave_up = store.get(f"{run_id}-triage-failed", record.job_id)
        if store.get(f"{run_id}-{int(attempt) + 1}", record.job_id) is not None \
                or (gave_up is not None and holds_run(gave_up)):
            continue                               # the next attempt is decided (or escalated)
        found[str(record.run_id)] = int(record.created_at or 0)
    return found


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _sweep_workspace(settings: "Settings", key: str, workspace_id: str, client: DatabricksClient, store: "Store",
                     enqueue: Callable[[TriageRequest], Any], now: int,
                     include_unnamed: bool = True, seen: Any = None,
                     progress: "Progress | None" = None) -> WorkspaceReport:
    report = WorkspaceReport(workspace=key)
    watermark = store.watermark(key)
    report.watermark_before = report.watermark_after = watermark
    floor = now - int(settings.sweep_max_lookback_s) * 1000
    start = floor if watermark is None else max(floor, watermark - int(settings.sweep_overlap_s) * 1000)
    report.window_from = start
    previously_active = _load_active(store, key)

    finished: dict[int, Mapping[str, Any]] = {}
    active: dict[str, int] = {}
    listing_complete = False
    try:
        for run in client.list_runs(completed_only=False, start_time_from=start, expand_tasks=True):
            run_id = as_int(run.get("run_id"))
            if not run_id:
                continue
            if seen is not None:
                seen.add_listed(run)
            if _finished(run):
                finished[run_id] = run
            else:
                active[str(run_id)] = as_int(run.get("start_time")) or now
        listing_complete = True
        if seen is not None:
            seen.listed_from = start
    except DatabricksError as exc:
        report.error = f"runs/list failed after {len(finished)} finished run(s): {_describe(exc)}"
        log.warning("sweep of %s: %s; the watermark stays at %s", key, report.error, watermark)
    report.listed = len(finished)

    if listing_complete:
        # Runs that were going at the last sweep and have left the window since, and runs this
        # app repaired (their repaired attempt is read with runs/get until it is decided).
        recheck = dict(previously_active)
        for run_key, decided_at in _repaired_runs(store, key, floor, include_unnamed).items():
            recheck.setdefault(run_key, decided_at)
        gets = 0
        for run_key, started in recheck.items():
            run_id = int(run_key)
            if run_id in finished or run_key in active:
                continue
            if gets >= _MAX_RUN_GETS or report.error:
                active[run_key] = started          # look again next time
                continue
            gets += 1
            try:
                run = client.get_run(run_id, include_history=True)
            except DatabricksNotFound:
                continue                           # deleted: nothing left to triage
            except DatabricksError as exc:
                report.error = f"runs/get {run_id} failed: {_describe(exc)}"
                active[run_key] = started
                continue
            if seen is not None:
                seen.full[run_id] = run
            if _finished(run):
                finished[run_id] = run
                report.long_runs += 1
            else:
                active[run_key] = started

    processed_through: int | None = None
    ordered = sorted(finished.values(), key=lambda r: (_end(r), as_int(r.get("run_id")) or 0))
    total_failed = sum(1 for r in ordered if is_failed_run(r))
    for index, run in enumerate(ordered):
        end = _end(run)
        if is_failed_run(run):
            report.failed += 1
            try:
                if not needs_triage(store, run):
                    report.already_decided += 1
                    if progress is not None:
                        progress(report.failed, total_failed, as_int(run.get("run_id")) or 0, None)
                else:
                    request = TriageRequest(
                        run_id=int(run["run_id"]), job_id=as_int(run.get("job_id")),
                        job_name=str(run.get("run_name") or "")[:1024], workspace_id=workspace_id, workspace=key,
                        source="sweep", request_id=uuid.uuid4().hex, received_at=now)
                    outcome = enqueue(request)
                    report.enqueued.append(request.run_id)
                    if progress is not None:
                        progress(report.failed, total_failed, request.run_id, outcome)
            except (TriageError, OSError) as exc:
                error = f"could not queue run {run.get('run_id')}: {_describe(exc)}"
                report.error = f"{report.error}; {error}" if report.error else error
                log.warning("sweep of %s: %s; stopping here, the watermark stays before it", key, error)
                # This failure and every later one are read again next time (runs/get), even if
                # they started before the next window.
                for rest in ordered[index:]:
                    if is_failed_run(rest):
                        active[str(rest["run_id"])] = as_int(rest.get("start_time")) or now
                break
        processed_through = end if processed_through is None else max(processed_through, end)

    if listing_complete:
        if processed_through is not None and processed_through > (watermark or 0):
            store.set_watermark(key, processed_through)
            report.watermark_after = processed_through
        _save_active(store, key, active)
    if report.enqueued:
        log.info("sweep of %s: queued %d failed run(s): %s", key, len(report.enqueued), report.enqueued)
    return report


class _WorkspaceView:
    """The store as seen by one workspace's due actions and outcome checks: ``list()`` returns only
    that workspace's decisions (used when several workspaces share one store)."""

    def __init__(self, store: "Store", host: str, include_unnamed: bool) -> None:
        self._store = store
        self._host = host
        self._include_unnamed = include_unnamed

    def list(self, *args: Any, **kwargs: Any) -> list["DecisionRecord"]:
        return [r for r in self._store.list(*args, **kwargs)
                if r.workspace == self._host or (self._include_unnamed and not r.workspace)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _call_after(report: SweepReport, what: str, fn: Callable[[], Iterable[Any]]) -> int:
    try:
        return len(list(fn() or ()))
    except (TriageError, OSError) as exc:
        report.errors.append(f"{what}: {_describe(exc)}")
        log.warning("sweep: %s failed: %s", what, exc)
        return 0


def sweep(settings: "Settings", *, clients_by_workspace: Mapping[str, Any], store: "Store",
          enqueue: Callable[[TriageRequest], Any], notifier: Notifier | None = None, now_ms: int | None = None,
          workspace_ids: Mapping[str, str] | None = None, progress: "Progress | None" = None) -> SweepReport:
    """One sweep over the given workspaces (host -> ``DatabricksClient``). See the module doc.

    ``workspace_ids`` maps a host to its workspace id (default: from the settings). Errors of one
    workspace are reported and the others still swept; only a store outage while reading the
    watermark ends a workspace's sweep early."""
    from shared.databricks.inplace import restore_due
    from shared.learning.outcomes import RunsSeen, check_outcomes
    from shared.app.runtime import workspaces
    from shared.app.lifecycle import publish_summary
    from shared.app.approvals import WithOpenApprovals, forget_ended_approvals, resume_approvals
    from shared.app.retriage import retriage_due
    from shared.triage import act_due, retry_notifications

    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    if workspace_ids is None:
        try:
            workspace_ids = {w.host: w.id for w in workspaces(settings)}
        except TriageError:
            workspace_ids = {}
    report = SweepReport()
    seen = {host: RunsSeen() for host in clients_by_workspace}   # what the outcome checks can reuse
    for host, client in clients_by_workspace.items():
        try:
            ws_report = _sweep_workspace(settings, host, workspace_ids.get(host, ""), client, store, enqueue, now,
                                         include_unnamed=host == next(iter(clients_by_workspace)), seen=seen[host],
                                         progress=progress)
        except StoreError as exc:
            ws_report = WorkspaceReport(workspace=host, error=f"store: {_describe(exc)}")
        report.workspaces.append(ws_report)
        if ws_report.error:
            report.errors.append(f"{host}: {ws_report.error}")

    several = len(clients_by_workspace) > 1
    swept: Any = WithOpenApprovals(store)      # plus approved decisions older than the window, until they end
    for index, (host, client) in enumerate(clients_by_workspace.items()):
        view: Any = _WorkspaceView(swept, host, include_unnamed=index == 0) if several else swept
        # runs whose triage was poisoned by a passing failure: placed once Databricks answers (retriage)
        report.retriaged += _call_after(report, f"re-triage ({host})", lambda: retriage_due(
            settings, client=client, store=view, notifier=notifier, now=now if now_ms is not None else None))
        report.acted += _call_after(report, f"due actions ({host})", lambda: act_due(
            settings, client=client, store=view, notifier=notifier, now=now if now_ms is not None else None))
        # approvals left `approving` by a process that died: carried on (docs/lifecycle.md)
        report.acted += _call_after(report, f"approvals ({host})", lambda: resume_approvals(
            settings, client=client, store=view, notifier=notifier, now=now if now_ms is not None else None))
        report.emails_resent += _call_after(report, f"email resends ({host})", lambda: retry_notifications(
            settings, client=client, store=view, notifier=notifier, now=now if now_ms is not None else None))
        report.outcomes += _call_after(report, f"outcomes ({host})", lambda: check_outcomes(
            settings, client=client, store=view, now_ms=now, seen=seen[host]))
        # resizes in place (job tag triage.resize=update-job) whose repaired tasks have started: put the job back
        _call_after(report, f"resize restores ({host})", lambda: restore_due(
            client, store, notifier, now_s=now / 1000 if now_ms is not None else None))
        if hasattr(notifier, "channel"):           # a RoutedNotifier: incidents to resolve
            from shared.notify.routing import resolve_recovered

            report.incidents_resolved += _call_after(report, f"incidents ({host})", lambda: resolve_recovered(
                settings, client=client, store=view, notifier=notifier, now_ms=now))
    _call_after(report, "open approvals", lambda: [forget_ended_approvals(store, settings)])
    _call_after(report, "lifecycle summary", lambda: [publish_summary(settings, swept, now=now)])
    log.info("sweep: %s", report.summary())
    return report


def run_sweep(settings: "Settings", *, inline: bool = False, workspace: str | None = None,
              runtime: Runtime | None = None, enqueue: Callable[[TriageRequest], Any] | None = None,
              now_ms: int | None = None, progress: "Progress | None" = None) -> SweepReport:
    """One sweep built from the settings, as the timer runs it: failed runs go to the queue
    (TRIAGE_QUEUE_NAME), or with ``inline`` are triaged here, one after the other.
    ``workspace`` limits it to one configured workspace (its host or id)."""
    from shared.errors import ConfigError
    from shared.app.runtime import open_runtime, workspaces
    from shared.app.worker import process_request

    selected = workspaces(settings)
    if not selected:
        raise ConfigError("no Databricks workspace is configured: set DATABRICKS_HOST or TRIAGE_WORKSPACES")
    if workspace:
        wanted = workspace.strip().rstrip("/")
        selected = [w for w in selected if wanted in (w.host, w.id, w.host.split("://", 1)[-1])]
        if not selected:
            raise ConfigError(f"workspace {workspace!r} is not configured (TRIAGE_WORKSPACES / DATABRICKS_HOST)")
    rt = runtime or open_runtime(settings)
    queue = None
    try:
        clients = {w.host: rt.client(w) for w in selected}
        if enqueue is None:
            if inline:
                def enqueue(request: TriageRequest) -> Any:
                    return process_request(request, settings, runtime=rt)
            else:
                from shared.app.queue import TriageQueue

                queue = TriageQueue.from_settings(settings)
                enqueue = queue.send
        return sweep(settings, clients_by_workspace=clients, store=rt.store, enqueue=enqueue, notifier=rt.notifier,
                     now_ms=now_ms, workspace_ids={w.host: w.id for w in selected}, progress=progress)
    finally:
        if queue is not None:
            queue.close()
        if runtime is None:
            rt.close()
