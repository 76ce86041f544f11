"""Resize in place (job tag ``triage.resize=update-job``): change the job, repair the run, put the
job back. The rerun stays in the run's history and runs as the job, like any repair.

A repair re-runs tasks "with the current job and task settings", so the bigger cluster has to be
in the job while the repaired tasks launch, and only then:

1. ``plan_in_place`` (pure): the bounded change of the affected clusters as the job has them now:
   job clusters by ``job_cluster_key``, or the whole task entry for a task with its own
   ``new_cluster`` (``jobs/update`` replaces array entries whole, by key). What is kept for the
   restore holds only the fields a resize changes (old and new values: workers, node types,
   allow-listed Spark conf keys) and a digest of every other field -- never a task's parameters,
   environment variables or other conf values.
2. ``execute_in_place``: ``jobs/get`` again; if the affected clusters are no longer what the plan
   saw, someone edited the job: nothing is sent (``ResizeRefused``, the owner is told). Otherwise
   the pending-restore entry is written to the store first (kind ``resize_restore``, one entry per
   workspace holding every job with a resize in place; a job with one already pending is not
   resized again), then ``jobs/update`` with only the affected clusters, then ``runs/repair``
   with ``latest_repair_id`` and the run's parameters. A repair that is refused puts the job
   back at once.
3. ``restore_due`` (one call from every sweep): once the repaired tasks have left PENDING (their
   cluster spec is fixed at launch), or the run has ended, ``jobs/get`` and put back each affected
   cluster that still holds exactly what we applied. A cluster someone edited since is left alone
   and the owner is told what we changed. A crash between any two steps leaves the entry, so the
   next sweep finishes the job: an entry still ``updating`` after ``STALE_UPDATING_S`` is treated
   as a crash (there is no repair to wait for) and put back at once; one whose tasks never start
   is put back after ``MAX_WAIT_S``.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping

from shared.databricks.client import JOBS_UPDATE, RUNS_REPAIR
from shared.databricks.resize import resize_cluster
from shared.errors import DatabricksError, DatabricksNotFound, DatabricksUnavailable, ResizeRefused, StoreError

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.databricks.client import DatabricksClient
    from shared.notify.notifier import Notifier
    from shared.snapshot import Snapshot
    from shared.store.base import Store

__all__ = ["TAG", "TAG_VALUE", "KIND", "STALE_UPDATING_S", "MAX_WAIT_S", "wants_in_place", "plan_in_place",
           "execute_in_place", "restore_due", "pending_restores"]

log = logging.getLogger(__name__)

TAG, TAG_VALUE = "triage.resize", "update-job"
KIND = "resize_restore"            # TriageState kind; key = the workspace host
STALE_UPDATING_S = 600             # an entry still "updating" this long: the process that wrote it died
MAX_WAIT_S = 6 * 3600              # repaired tasks that never start: put the job back anyway
_NOT_STARTED = frozenset({"PENDING", "QUEUED", "BLOCKED", "WAITING_FOR_RETRY", ""})


def wants_in_place(snapshot: Snapshot) -> bool:
    return snapshot.tags.get(TAG, "").strip().lower() == TAG_VALUE


def plan_in_place(snapshot: Snapshot, params: Mapping[str, Any], settings: Settings, *,
                  cluster_keys: set[str], task_keys: set[str], repair_body: Mapping[str, Any]
                  ) -> tuple[tuple[dict[str, Any], ...], dict[str, Any], list[str], list[str], str]:
    """``(requests, restore, changes, notes, problem)``; ``problem`` non-empty when the job's
    settings do not hold the affected clusters (the caller then takes the one-time-run path)."""
    job_settings = (snapshot.job or {}).get("settings") or {}
    applied: dict[str, list[dict[str, Any]]] = {"job_clusters": [], "tasks": []}
    items: list[dict[str, Any]] = []
    changes: list[str] = []
    notes: list[str] = []
    by_key = {str(jc.get("job_cluster_key")): jc for jc in job_settings.get("job_clusters") or []
              if isinstance(jc, Mapping) and isinstance(jc.get("new_cluster"), Mapping)}
    tasks = {str(t.get("task_key")): t for t in job_settings.get("tasks") or [] if isinstance(t, Mapping)}
    wanted = [("job_clusters", key, by_key.get(key), f"job cluster {key}") for key in sorted(cluster_keys)]
    wanted += [("tasks", key, tasks.get(key), f"task {key} cluster") for key in sorted(task_keys)]
    for field, key, entry, label in wanted:
        if entry is None or not isinstance(entry.get("new_cluster"), Mapping):
            return (), {}, [], [], f"the job's settings have no {label}"
        new, ch, rej = resize_cluster(entry["new_cluster"], params, settings)
        applied[field].append({**copy.deepcopy(dict(entry)), "new_cluster": new})
        items.append(_item(field, key, entry["new_cluster"], new))
        changes.extend(f"{label}: {c}" for c in ch)
        notes.extend(f"{label}: {r}" for r in rej)
    new_settings = {k: v for k, v in applied.items() if v}
    requests = ({"method": JOBS_UPDATE[0], "path": JOBS_UPDATE[1],
                 "body": {"job_id": snapshot.job_id, "new_settings": new_settings}},
                {"method": RUNS_REPAIR[0], "path": RUNS_REPAIR[1], "body": dict(repair_body)})
    restore = {"job_id": snapshot.job_id, "run_id": snapshot.run_id, "decision_key": snapshot.decision_key,
               "tasks": sorted({t.task_key for t in snapshot.failed_tasks if t.task_key and not t.state.upstream}),
               "items": items, "changes": list(changes)}
    notes.append("in place (job tag triage.resize=update-job): jobs/update, then runs/repair; the job's clusters "
                 "are put back once the repaired tasks have started")
    return requests, restore, changes, notes, ""


# --- what we change, kept without the job's values ---------------------------------------------
# The store keeps only the fields a resize may change (workers, node types, allow-listed Spark conf
# keys: never inputs or secrets), with their old and new values, and a digest of every other field
# of the cluster spec. That is enough to tell "still ours" from "edited since" and to undo exactly.

_OURS = ("num_workers", "autoscale", "node_type_id", "driver_node_type_id")
_ABSENT = {"__absent__": True}


def _digest(value: Any) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _item(field: str, key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    undo: dict[str, Any] = {}
    now: dict[str, Any] = {}
    for name in _OURS:
        if old.get(name) != new.get(name):
            undo[name] = copy.deepcopy(old[name]) if name in old else _ABSENT
            now[name] = copy.deepcopy(new[name]) if name in new else _ABSENT
    old_conf, new_conf = dict(old.get("spark_conf") or {}), dict(new.get("spark_conf") or {})
    conf_keys = sorted(k for k in set(old_conf) | set(new_conf) if old_conf.get(k) != new_conf.get(k))
    for k in conf_keys:
        undo[f"spark_conf.{k}"] = old_conf[k] if k in old_conf else _ABSENT
        now[f"spark_conf.{k}"] = new_conf[k] if k in new_conf else _ABSENT
    rest = {name: _digest(value) for name, value in old.items() if name not in undo and name != "spark_conf"}
    rest["spark_conf"] = _digest({k: v for k, v in old_conf.items() if k not in conf_keys})
    return {"field": field, "key": key, "undo": undo, "applied": now, "rest": rest}


def _get(spec: Mapping[str, Any], name: str) -> Any:
    if name.startswith("spark_conf."):
        conf = spec.get("spark_conf") or {}
        k = name[len("spark_conf."):]
        return conf[k] if k in conf else _ABSENT
    return spec[name] if name in spec else _ABSENT


def _state(spec: Mapping[str, Any] | None, item: Mapping[str, Any]) -> str:
    """``ours`` (holds what we applied), ``saved`` (as before the resize) or ``edited``. Fields
    the spec gained that the saved spec did not have are tolerated (the workspace may fill in
    defaults); any other difference means someone else changed it."""
    if not isinstance(spec, Mapping):
        return "edited"
    conf_keys = {n[len("spark_conf."):] for n in item["undo"] if n.startswith("spark_conf.")}
    for name, digest in item["rest"].items():
        value = ({k: v for k, v in (spec.get("spark_conf") or {}).items() if k not in conf_keys}
                 if name == "spark_conf" else spec.get(name))
        if _digest(value) != digest:
            return "edited"
    if all(_get(spec, n) == v for n, v in item["applied"].items()):
        return "ours"
    if all(_get(spec, n) == v for n, v in item["undo"].items()):
        return "saved"
    return "edited"


def _undone(spec: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    return _with(spec, item["undo"])


def _with(spec: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with the resize's fields set to ``values`` (``_ABSENT`` removes one)."""
    out = copy.deepcopy(dict(spec))
    for name, old in values.items():
        if name.startswith("spark_conf."):
            conf = dict(out.get("spark_conf") or {})
            if old == _ABSENT:
                conf.pop(name[len("spark_conf."):], None)
            else:
                conf[name[len("spark_conf."):]] = old
            if conf:
                out["spark_conf"] = conf
            else:
                out.pop("spark_conf", None)
        elif old == _ABSENT:
            out.pop(name, None)
        else:
            out[name] = copy.deepcopy(old)
    return out


# --- the affected part of a job ---------------------------------------------------------------

def _entries(job: Mapping[str, Any], items: list[Mapping[str, Any]]) -> list[dict[str, Any] | None]:
    """The job's current entry (job cluster or task) for each item, None where it is gone."""
    settings = job.get("settings") or {}
    keys = {"job_clusters": "job_cluster_key", "tasks": "task_key"}
    out: list[dict[str, Any] | None] = []
    for item in items:
        found = [e for e in settings.get(item["field"]) or [] if isinstance(e, Mapping)
                 and e.get(keys[item["field"]]) == item["key"]]
        out.append(copy.deepcopy(dict(found[0])) if found else None)
    return out


def _spec(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return entry.get("new_cluster") if isinstance(entry, Mapping) else None


def _load(store: Store, host: str) -> tuple[dict[str, Any], str | None]:
    entry = store.state_get(KIND, host)
    jobs = entry.value.get("jobs") if entry else None
    return (dict(jobs) if isinstance(jobs, Mapping) else {}), (entry.etag if entry else None)


def _change(store: Store, host: str, fn: Any, attempts: int = 20) -> Any:
    """Read-modify-write the workspace's pending restores under etag; ``fn(jobs)`` edits in place
    and returns a result (raise to abort)."""
    for _ in range(attempts):
        jobs, etag = _load(store, host)
        result = fn(jobs)
        value = {"jobs": jobs}
        put = store.state_put(KIND, host, value, etag=etag) if etag else store.state_put(KIND, host, value,
                                                                                          if_absent=True)
        if put is not None:
            return result
    raise StoreError(f"pending restores of {host}: too much contention after {attempts} attempts")


def pending_restores(store: Store, host: str) -> dict[str, Any]:
    """The jobs of ``host`` whose resize in place has not been put back yet (job id -> entry)."""
    return _load(store, host)[0]


# --- execute ----------------------------------------------------------------------------------

def execute_in_place(requests: tuple[Mapping[str, Any], ...], restore: Mapping[str, Any], client: DatabricksClient,
                     store: Store, *, send_repair: Any, now_s: float | None = None) -> dict[str, Any]:
    """jobs/update, runs/repair, and a pending restore for the sweep (see the module docstring).
    ``send_repair(client, body)`` sends the repair (``shared.databricks.actions`` passes its own,
    which tells a stale ``latest_repair_id`` from other refusals)."""
    now = time.time() if now_s is None else now_s
    job_id = str(restore["job_id"])
    update_body, repair_body = requests[0]["body"], requests[1]["body"]
    job = client.get_job(int(restore["job_id"]))
    current = _entries(job, restore["items"])
    if any(_state(_spec(e), item) != "saved" for e, item in zip(current, restore["items"])):
        raise ResizeRefused(f"job {job_id} changed since the failure: its clusters are not what the resize was "
                            "planned on, so it was not updated")
    # jobs/update replaces each entry whole: send the entries as the job has them now with only the
    # resize applied, so an edit made since the failure (a task's code or parameters) is kept.
    new_settings: dict[str, list[dict[str, Any]]] = {}
    for entry_now, item in zip(current, restore["items"]):
        if entry_now is not None:             # always, after the "saved" check above
            new_settings.setdefault(item["field"], []).append(
                {**entry_now, "new_cluster": _with(entry_now["new_cluster"], item["applied"])})
    update_body = {**dict(update_body), "new_settings": new_settings}
    entry = {**copy.deepcopy(dict(restore)), "state": "updating", "since": now, "host": client.host}

    def add(jobs: dict[str, Any]) -> None:
        if job_id in jobs:
            raise ResizeRefused(f"a resize of job {job_id} (run {jobs[job_id].get('run_id')}) is still waiting to be "
                                "put back: not resized again until it is")
        jobs[job_id] = entry

    _change(store, client.host, add)
    try:
        client.update_job(update_body)
    except DatabricksUnavailable:
        raise          # it may have landed: the entry stays, the sweep puts back whatever is there
    except DatabricksError as exc:
        _change(store, client.host, lambda jobs: jobs.pop(job_id, None))
        raise ResizeRefused(f"the workspace refused to update job {job_id}: {exc.message}", status=exc.status,
                            error_code=exc.error_code, method=exc.method, url=exc.url) from exc
    try:
        result = send_repair(client, repair_body)
    except DatabricksError:
        try:
            _put_back(client, store, job_id, entry, None, note=False)
        except DatabricksError as again:
            log.warning("job %s: could not put the clusters back after a refused repair (%s); the sweep will",
                        job_id, again)
        raise

    def repaired(jobs: dict[str, Any]) -> None:
        if job_id in jobs:
            jobs[job_id] = {**jobs[job_id], "state": "repaired", "repair_id": result.get("repair_id"), "since": now}

    _change(store, client.host, repaired)
    status = "pending"
    try:   # a workspace that starts the repaired tasks at once: put the job back now, not at the next sweep
        run = client.get_run(int(restore["run_id"]), include_history=True)
        if _started(run, list(restore.get("tasks") or [])):
            status = _put_back(client, store, job_id, entry, None, note=False)["status"]
    except (DatabricksError, StoreError) as exc:
        log.info("job %s: the restore is left to the sweep (%s)", job_id, exc)
    return {**result, "job_updated": job_id, "restore": status}


# --- restore ----------------------------------------------------------------------------------

def _started(run: Mapping[str, Any], tasks: list[str]) -> bool:
    from shared.snapshot import RunState

    if RunState.from_api(run).terminal and not _repair_running(run):
        return True
    wanted = [t for t in run.get("tasks") or [] if isinstance(t, Mapping) and t.get("task_key") in set(tasks)]
    if not wanted:
        return False
    return all(RunState.from_api(t).life_cycle_state not in _NOT_STARTED for t in wanted)


def _repair_running(run: Mapping[str, Any]) -> bool:
    from shared.snapshot import RunState

    repairs = [h for h in run.get("repair_history") or [] if isinstance(h, Mapping) and h.get("type") == "REPAIR"]
    return bool(repairs) and not RunState.from_api(repairs[-1]).terminal


def _put_back(client: DatabricksClient, store: Store, job_id: str, entry: Mapping[str, Any],
              notifier: Notifier | None, *, note: bool = True) -> dict[str, Any]:
    """Restore what still holds exactly what we applied; report the rest. Drops the entry.
    ``note``: write the outcome on the decision record (not while the caller is acting on it)."""
    try:
        job = client.get_job(int(job_id))
    except DatabricksNotFound:
        _change(store, client.host, lambda jobs: jobs.pop(job_id, None))
        return {"job_id": job_id, "status": "job deleted"}
    restore: dict[str, list[Any]] = {}
    edited: list[str] = []
    for current, item in zip(_entries(job, entry["items"]), entry["items"]):
        state = _state(_spec(current), item)
        if state == "saved":
            continue                     # never changed, or already put back
        if state == "ours" and current is not None:
            restore.setdefault(item["field"], []).append({**current, "new_cluster": _undone(current["new_cluster"], item)})
        else:
            edited.append(f"{'job cluster' if item['field'] == 'job_clusters' else 'task'} {item['key']}")
    if restore:
        client.update_job({"job_id": int(job_id), "new_settings": restore})
    status = "restored" if not edited else "edited since: not restored"
    outcome = {"job_id": job_id, "run_id": entry.get("run_id"), "status": status,
               "restored": sorted(e.get("job_cluster_key") or e.get("task_key") for v in restore.values() for e in v),
               "left_alone": edited, "changes": list(entry.get("changes") or [])}
    if edited:
        if notifier is None:          # keep the entry: the sweep, which can tell the owner, reports it
            outcome["status"] = "edited since: left for the sweep to report"
            return outcome
        outcome["notification"] = _tell_owner(store, job, entry, edited, notifier)
    if note:
        _record(store, entry, outcome)
    _change(store, client.host, lambda jobs: jobs.pop(job_id, None))
    return outcome


def _tell_owner(store: Store, job: Mapping[str, Any], entry: Mapping[str, Any], edited: list[str],
                notifier: Notifier | None) -> dict[str, Any]:
    from shared.models import Action, Category, Decision
    from shared.snapshot import parse_snapshot

    if notifier is None:
        return {"status": "not configured"}
    changes = "; ".join(entry.get("changes") or [])
    reason = (f"RESOURCE -> SEND_EMAIL: triage resized job {entry.get('job_id')} in place for run {entry.get('run_id')} "
              f"({changes}) and was to put it back, but {', '.join(edited)} changed since: left as it is now")
    fix = (f"Check the job's clusters. Triage made this change: {changes}. Undo it by hand if the edit made since "
           "did not already.")
    decision = Decision(Category.RESOURCE, Action.SEND_EMAIL, 1.0, "policy", reason, suggested_fix=fix,
                        fingerprint=f"resize-restore-{entry.get('job_id')}")
    snapshot = parse_snapshot({"run": {"run_id": int(entry.get("run_id") or 0), "job_id": int(entry["job_id"]),
                                       "state": {"life_cycle_state": "TERMINATED"}}, "job": dict(job)})
    record = store.get(str(entry.get("decision_key")), str(entry["job_id"]))
    if record is None:
        return {"status": "failed", "error": "the decision record is gone"}
    return dict(notifier.notify(snapshot, decision, replace(record, decision_key=f"{record.decision_key}-restore")))


def _record(store: Store, entry: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
    try:
        record = store.get(str(entry.get("decision_key")), str(entry["job_id"]))
        if record is not None:
            record.action_result = {**dict(record.action_result or {}), "restore": dict(outcome)}
            store.update(record)
    except StoreError as exc:   # the audit note is advisory; the restore itself is done
        log.warning("could not note the restore of job %s on its decision: %s", entry.get("job_id"), exc)


def restore_due(client: DatabricksClient, store: Store, notifier: Notifier | None = None, *,
                now_s: float | None = None) -> list[dict[str, Any]]:
    """Put back every resize in place of ``client``'s workspace that is due (called by every sweep)."""
    now = time.time() if now_s is None else now_s
    done: list[dict[str, Any]] = []
    for job_id, entry in sorted(pending_restores(store, client.host).items()):
        age = now - float(entry.get("since") or 0)
        try:
            if entry.get("state") == "updating":
                due = age >= STALE_UPDATING_S
            else:
                try:
                    run = client.get_run(int(entry["run_id"]), include_history=True)
                    due = _started(run, list(entry.get("tasks") or [])) or age >= MAX_WAIT_S
                except DatabricksNotFound:
                    due = True
            if due:
                done.append(_put_back(client, store, job_id, entry, notifier))
        except (DatabricksError, StoreError) as exc:   # one job's trouble must not stop the others
            log.warning("restore of job %s after its resize in place failed (%s); next sweep", job_id, exc)
    return done
