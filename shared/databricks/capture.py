"""Capture a live failure as a snapshot: the API calls the triage of one run makes.

Per run: one ``runs/get`` (plus a page per 100 tasks), one ``runs/get-output`` per failed task
(never for tasks that only failed because an upstream task did, never on a multi-task parent),
and one ``jobs/get``. ``history.prior_retries`` comes from the store's retry count for the run's
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

from shared.errors import DatabricksError, DatabricksNotFound
from shared.snapshot import SNAPSHOT_VERSION, Snapshot, parse_snapshot

if TYPE_CHECKING:  # pragma: no cover
    from shared.databricks.client import DatabricksClient
    from shared.store.base import Store

__all__ = ["capture_snapshot", "lineage_of", "lineage_run_name"]

log = logging.getLogger(__name__)

_MARK = re.compile(r"\[triage retry of run (\d+)\]")
_MAX_RUN_NAME = 4096


def lineage_of(run: Mapping[str, Any]) -> str:
    """The lineage id of a run (a runs/get response): the original run id named in the run
    name of a resubmitted run, else the run's own id."""
    m = _MARK.search(str(run.get("run_name") or ""))
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


def capture_snapshot(client: DatabricksClient, run_id: int, *, workspace_host: str, store: Store | None = None,
                     case_id: str = "") -> Snapshot:
    """Fetch run, failed-task outputs and job, and return them as a ``Snapshot``.

    Raises what ``runs/get`` raises (e.g. ``DatabricksNotFound``, ``DatabricksAuthError``,
    ``DatabricksUnavailable``). A ``get-output`` that fails is recorded in
    ``history.capture_errors`` and the snapshot still forms; a job that no longer exists leaves
    ``job`` null (also recorded); any other ``jobs/get`` error is raised, because without the
    job's tags the policy could act against a job's wishes (e.g. ``triage.ignore``)."""
    run = client.get_run(run_id, include_history=True)
    if not isinstance(run, Mapping) or run.get("run_id") is None:
        raise DatabricksError(f"runs/get for run {run_id} answered without a run_id")
    notes: list[dict[str, Any]] = []
    probe = parse_snapshot({"snapshot_version": SNAPSHOT_VERSION, "run": run}, source=f"run {run_id}")
    outputs: dict[str, Any] = {}
    has_tasks = bool(run.get("tasks"))
    for task in probe.failed_tasks:
        if task.state.upstream:
            continue
        target = task.run_id if has_tasks else probe.run_id
        if target is None:
            notes.append({"call": "runs/get-output", "task_key": task.task_key,
                          "message": "the task has no run_id; output not fetched"})
            continue
        try:
            outputs[str(target)] = client.get_run_output(target)
        except DatabricksError as exc:
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
    doc: dict[str, Any] = {"snapshot_version": SNAPSHOT_VERSION, "workspace_host": workspace_host,
                           "run": run, "task_outputs": outputs, "history": history}
    if case_id:
        doc["case_id"] = case_id
    if job is not None:
        doc["job"] = job
    return parse_snapshot(doc, source=f"{workspace_host or 'workspace'} run {run_id}")
