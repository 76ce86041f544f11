"""Capture a live failure as a snapshot: the API calls the triage of one run makes.

Per run: one ``runs/get`` (plus a page per 100 tasks), one ``runs/get-output`` per failed task
(never for tasks that only failed because an upstream task did, never on a multi-task parent;
at most ``TRIAGE_MAX_TASK_OUTPUTS``, default 20, the earliest to fail first), and one
``jobs/get``. Every answer is read through ``shared.reader``. ``history.prior_retries`` comes from the store's retry count for the run's
lineage.

Lineage: a repair keeps the run id, so a run's lineage is its own id. A resized rerun is a new
one-time run (``runs/submit``), which has no job and no tags; its run name carries the marker
``[triage retry of run <id>]`` naming the lineage it continues (``lineage_run_name()`` writes
it, ``lineage_of()`` reads it), so retries of retries still count against one budget.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Mapping

from shared.reader import read_answers, read_run
from shared.errors import DatabricksError, DatabricksNotFound
from shared.snapshot import SNAPSHOT_VERSION, RunState, Snapshot, TaskRun, as_int, parse_snapshot

if TYPE_CHECKING:  # pragma: no cover
    from shared.databricks.client import DatabricksClient
    from shared.store.base import Store

__all__ = ["capture_snapshot", "snapshot_from_answers", "lineage_of", "lineage_run_name", "DEFAULT_MAX_TASK_OUTPUTS"]

log = logging.getLogger(__name__)

_MARK = re.compile(r"\[triage retry of run (\d+)\]")
_MAX_RUN_NAME = 4096


def lineage_of(run: Mapping[str, Any]) -> str:
    """The lineage id of a run (a runs/get response): the original run id named in the run
    name of a resubmitted run, else the run's own id. Only a one-time run (``run_type``
    SUBMIT_RUN, or no job) is read for the marker: a job's own run is named after the job, which
    anyone who edits the job chooses, and must not join (and spend, or read) another lineage."""
    kind = str(run.get("run_type") or "")
    one_time = kind == "SUBMIT_RUN" or (not kind and not run.get("job_id"))
    m = _MARK.search(str(run.get("run_name") or "")) if one_time else None
    if m:
        return m.group(1)
    return str(run.get("run_id") or "")


def lineage_run_name(name: str, lineage: str) -> str:
    """A run name for a resubmission that continues ``lineage`` (any old marker replaced)."""
    base = _MARK.sub("", name or "").strip() or "run"
    mark = f"[triage retry of run {lineage}]"
    return f"{base[: _MAX_RUN_NAME - len(mark) - 1]} {mark}"


def _note(call: str, exc: DatabricksError, **where: Any) -> dict[str, Any]:
    return {"call": call, **where, "status": exc.status, "error_code": exc.error_code,
            "error": type(exc).__name__, "message": exc.message}


DEFAULT_MAX_TASK_OUTPUTS = 20


def _root_cause_order(tasks: list[TaskRun]) -> list[TaskRun]:
    """Failed tasks in the order most likely to hold the root cause: those that failed on their
    own (not upstream-failed) first, then the earliest to end; a task with no end time last."""
    def key(t: TaskRun) -> tuple[int, int, int]:
        end = as_int(t.raw.get("end_time")) or 0
        return (1 if t.state.upstream else 0, 0 if end > 0 else 1, end)
    return sorted(tasks, key=key)


def snapshot_from_answers(run: Any, outputs: Mapping[str, Any], job: Any, history: Mapping[str, Any], *,
                          workspace_host: str, case_id: str = "", source: str = "") -> Snapshot:
    """A snapshot from the Databricks answers as they came. Every answer goes through the typed
    reader (``shared.reader``) first: a wrong-shaped field is dropped and noted in
    ``history.read_notes``; only a run without a run id cannot form a snapshot."""
    notes: list[str] = []
    clean_run, clean_outputs, clean_job = read_answers(run, outputs, job, notes)
    if clean_run is None or as_int(clean_run.get("run_id")) is None:
        raise DatabricksError(f"runs/get for {source or 'the run'} answered without a run_id")
    if any(n.startswith(("run.state", "run.status", "run: ")) for n in notes) or not (
            RunState.from_api(clean_run).life_cycle_state or RunState.from_api(clean_run).result_state):
        # The run was reported failed, but its own state cannot be read: never guess "still running"
        # (nobody would decide) nor a result; a person looks at it.
        notes.append("run: its state could not be read; taken as an internal error for a person to look at")
        clean_run["state"] = {"life_cycle_state": "INTERNAL_ERROR",
                              "state_message": "the run's state could not be read from the Databricks answer"}
        clean_run.pop("status", None)
    history = dict(history)
    if notes:
        history["read_notes"] = notes
    doc: dict[str, Any] = {"snapshot_version": SNAPSHOT_VERSION, "workspace_host": workspace_host,
                           "run": clean_run, "task_outputs": clean_outputs, "history": history}
    if case_id:
        doc["case_id"] = case_id
    if clean_job is not None:
        doc["job"] = clean_job
    return parse_snapshot(doc, source=source or f"{workspace_host or 'workspace'} run {clean_run['run_id']}")


def capture_snapshot(client: DatabricksClient, run_id: int, *, workspace_host: str, store: Store | None = None,
                     case_id: str = "", max_outputs: int = DEFAULT_MAX_TASK_OUTPUTS,
                     outputs: bool = True) -> Snapshot:
    """Fetch run, failed-task outputs and job, and return them as a ``Snapshot``.

    Raises what ``runs/get`` raises (e.g. ``DatabricksNotFound``, ``DatabricksAuthError``,
    ``DatabricksUnavailable``). A ``get-output`` that fails for a passing reason (429, 5xx, time-out,
    connection lost: ``DatabricksUnavailable`` once the client's own retries are spent) is raised
    too, so the queue retries the whole triage rather than deciding blind. An output that is gone
    for good (404: the run was deleted, or is older than Databricks keeps runs) or refused (403)
    is recorded in ``history.capture_errors`` and the decision says so. At most ``max_outputs``
    task outputs are read, the most likely root cause first; the rest are listed in
    ``history.outputs_skipped``. A job that no longer exists leaves ``job`` null (also recorded);
    any other ``jobs/get`` error is raised, because without the job's tags the policy could act
    against a job's wishes (e.g. ``triage.ignore``).

    ``outputs=False`` reads no ``runs/get-output`` (for a decision already made: acting on it
    needs the run's current state and the job, not the error text again)."""
    from shared.databricks.client import is_retryable

    answer = client.get_run(run_id, include_history=True)
    read_notes: list[str] = []
    run = read_run(answer, read_notes)
    if run is None or run.get("run_id") is None:
        raise DatabricksError(f"runs/get for run {run_id} answered without a run_id")
    notes: list[dict[str, Any]] = []
    probe = snapshot_from_answers(run, {}, None, {}, workspace_host=workspace_host, source=f"run {run_id}")
    task_outputs: dict[str, Any] = {}
    has_tasks = bool(run.get("tasks"))
    wanted = _root_cause_order([t for t in probe.failed_tasks if not t.state.upstream]) if outputs else []
    limit = max(1, int(max_outputs))
    skipped = [t.task_key or str(t.run_id) for t in wanted[limit:]]
    for task in wanted[:limit]:
        target = task.run_id if has_tasks else probe.run_id
        if target is None:
            notes.append({"call": "runs/get-output", "task_key": task.task_key,
                          "message": "the task has no run_id; output not fetched"})
            continue
        try:
            task_outputs[str(target)] = client.get_run_output(target)
        except DatabricksError as exc:
            if is_retryable(exc):
                raise      # passing: the queue retries the triage; deciding without the error text is guessing
            log.warning("runs/get-output for task %s (run %s) failed: %s", task.task_key, target, exc)
            notes.append(_note("runs/get-output", exc, task_key=task.task_key, run_id=target))
    job = None
    job_id = probe.job_id
    if job_id:
        try:
            job = client.get_job(job_id)
        except DatabricksNotFound as exc:
            notes.append(_note("jobs/get", exc, job_id=job_id))
    lineage = lineage_of(run)
    history: dict[str, Any] = {"prior_retries": int(store.retries(lineage)) if store is not None else 0,
                               "lineage": lineage}
    if notes:
        history["capture_errors"] = notes
    if skipped:
        history["outputs_skipped"] = {"count": len(skipped), "limit": limit, "tasks": skipped[:50]}
    snap = snapshot_from_answers(answer, task_outputs, job, history, workspace_host=workspace_host, case_id=case_id,
                                 source=f"{workspace_host or 'workspace'} run {run_id}")
    return snap
