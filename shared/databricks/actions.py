"""Carry a decision out: plan the exact Databricks request (pure), then send it.

``plan_action(snapshot, decision, settings, now_ms=...)`` returns an ``ActionPlan``: the HTTP
request(s) that would carry the decision out (method, path, body), when they may be sent
(``not_before``, from a per-category back-off), and, when the decision cannot be carried out as
asked, the fallback and why. Nothing is sent: shadow mode records ``plan.to_dict()``.
``execute(plan, client)`` sends it and returns e.g. ``{"repair_id": 7}`` or ``{"run_id": 42}``.

| decision | request |
|---|---|
| RETRY | ``runs/repair`` with ``rerun_all_failed_tasks``, ``latest_repair_id`` (when the run has repairs) and the run's job parameters and overrides sent again |
| RETRY_WITH_NEW_PARAMS, job/new clusters | ``runs/submit`` of the failed tasks and their dependents, each with a resized ``new_cluster`` and the run's inputs (``shared.databricks.inputs``); ``run_as`` = the job's identity, ``access_control_list`` for the job's owners; ``idempotency_token`` = the decision key |
| RETRY_WITH_NEW_PARAMS, job tag ``triage.resize=update-job`` | ``jobs/update`` of only the affected clusters, then ``runs/repair``; the sweep puts the clusters back (``shared.databricks.inplace``) |
| RETRY_WITH_NEW_PARAMS, serverless | ``runs/repair`` with ``performance_target: PERFORMANCE_OPTIMIZED`` |
| RETRY_WITH_NEW_PARAMS, all-purpose cluster | none: SEND_EMAIL with the recommendation (a rerun cannot resize it) |
| RETRY_WITH_NEW_PARAMS, identity unknown or inputs not reproducible | none: SEND_EMAIL with the recommendation and the exact change |
| SEND_EMAIL / ESCALATE | none: the caller hands the decision to a ``Notifier`` |
| IGNORE | none |

Resizing obeys policy invariant 3, enforced where the request is built (``shared.databricks.resize``:
``resize_cluster`` / ``bound_cluster_change``) and turns the knob the decision names
(``shared.decide.knob``: the driver, local disk or the executors). ``ActionPlan.changes`` is the
change list in words, e.g. ``job cluster main: driver Standard_E8ds_v5 -> Standard_E16ds_v5``.
A submit the workspace refuses because the app may not run as the job's identity raises
``RunAsRefused``: the caller emails the owner instead and never resends without ``run_as``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from shared.databricks.capture import lineage_of, lineage_run_name
from shared.databricks.client import RUNS_REPAIR, RUNS_SUBMIT
from shared.databricks.inplace import execute_in_place, plan_in_place, wants_in_place
from shared.databricks.inputs import job_parameter_values, owners_acl, repair_parameters, run_as_of, task_inputs
from shared.databricks.resize import bound_cluster_change, resize_cluster
from shared.errors import DatabricksAuthError, DatabricksConflict, DatabricksError, RunAsRefused
from shared.models import Action, Category, Decision
from shared.snapshot import Snapshot, TaskRun

if TYPE_CHECKING:  # pragma: no cover
    from shared.databricks.client import DatabricksClient
    from shared.config import Settings
    from shared.store.base import Store

__all__ = [
    "BACKOFF_S",
    "ActionPlan",
    "plan_action",
    "execute",
    "bound_cluster_change",
    "backoff_seconds",
    "effective_decision",
]

log = logging.getLogger(__name__)

# Seconds to wait before an automatic retry, per category; doubled per prior retry of the lineage.
BACKOFF_S: dict[Category, int] = {
    Category.TIMEOUT: 60,
    Category.NETWORK: 60,
    Category.CONCURRENCY: 120,
    Category.INFRASTRUCTURE: 300,
    Category.DEPENDENCY: 300,
    Category.RESOURCE: 0,       # the rerun is bigger: no reason to wait
}
DEFAULT_BACKOFF_S = 60
MAX_BACKOFF_S = 3600
_TOKEN_MAX = 64

# Fields of a job task that a one-time (runs/submit) task accepts; plus any '*_task' object.
# Compute (new_cluster / existing_cluster_id / environment_key) is set separately.
_SUBMIT_TASK_FIELDS = (
    "task_key", "description", "depends_on", "run_if", "libraries", "timeout_seconds", "health",
    "email_notifications", "webhook_notifications", "notification_settings", "disable_auto_optimization",
)


def backoff_seconds(category: Category | str, prior_retries: int = 0) -> int:
    """The back-off before an automatic retry: the category's base, doubled per prior retry."""
    try:
        cat = Category(str(category))
    except ValueError:
        cat = Category.UNKNOWN
    base = BACKOFF_S.get(cat, DEFAULT_BACKOFF_S)
    return int(min(MAX_BACKOFF_S, base * (2 ** max(0, min(int(prior_retries), 12)))))


# --- plan ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActionPlan:
    """What carrying out a decision means, as data. ``requests`` are ``{"method", "path",
    "body"}`` dicts, sent in order by ``execute``; empty for notify/none plans."""

    action: Action                     # what will be done (after any fallback)
    requested: Action                  # what the decision asked
    kind: str                          # repair | submit | update_repair | notify | none
    decision_key: str
    run_id: int
    requests: tuple[dict[str, Any], ...] = ()
    not_before: int = 0                # ms epoch; 0 = at once
    notify: str = ""                   # "" | owner | escalation
    fallback_reason: str = ""
    recommendation: str = ""
    changes: tuple[str, ...] = ()      # human-readable resize changes
    notes: tuple[str, ...] = ()        # rejected suggestions and other remarks
    restore: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # update_repair: what to put back

    @property
    def request(self) -> dict[str, Any] | None:
        return self.requests[0] if self.requests else None

    @property
    def sends(self) -> bool:
        return bool(self.requests)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "requested": self.requested.value,
            "kind": self.kind,
            "decision_key": self.decision_key,
            "run_id": self.run_id,
            "requests": [copy.deepcopy(dict(r)) for r in self.requests],
            "not_before": self.not_before,
            "notify": self.notify,
            "fallback_reason": self.fallback_reason,
            "recommendation": self.recommendation,
            "changes": list(self.changes),
            "notes": list(self.notes),
            **({"restore": copy.deepcopy(dict(self.restore))} if self.restore else {}),
        }


def _req(endpoint: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
    return {"method": endpoint[0], "path": endpoint[1], "body": body}


def plan_action(snapshot: Snapshot, decision: Decision, settings: Settings, *, now_ms: int) -> ActionPlan:
    """The request(s) that would carry ``decision`` out on ``snapshot``'s run. Pure: no I/O."""
    base = dict(requested=decision.action, decision_key=snapshot.decision_key, run_id=snapshot.run_id)
    action = decision.action
    if action is Action.IGNORE:
        return ActionPlan(action=Action.IGNORE, kind="none", not_before=now_ms, **base)
    if action is Action.SEND_EMAIL:
        return ActionPlan(action=Action.SEND_EMAIL, kind="notify", notify="owner", not_before=now_ms, **base)
    if action is Action.ESCALATE:
        return ActionPlan(action=Action.ESCALATE, kind="notify", notify="escalation", not_before=now_ms, **base)
    wait_ms = backoff_seconds(decision.category, snapshot.prior_retries) * 1000
    if action is Action.RETRY:
        return ActionPlan(action=Action.RETRY, kind="repair", requests=(_req(RUNS_REPAIR, _repair_body(snapshot)),),
                          not_before=now_ms + wait_ms, **base)
    if action is Action.RETRY_WITH_NEW_PARAMS:
        return _plan_resize(snapshot, decision, settings, now_ms=now_ms, wait_ms=wait_ms, base=base)
    raise ValueError(f"unknown action {action!r}")


def _repair_body(snapshot: Snapshot, **extra: Any) -> dict[str, Any]:
    """A repair of every failed task, with the failed run's inputs sent again (a repair does not
    reuse the original run's job parameters or overrides unless they are sent)."""
    body: dict[str, Any] = {"run_id": snapshot.run_id, "rerun_all_failed_tasks": True}
    if snapshot.latest_repair_id is not None:
        body["latest_repair_id"] = snapshot.latest_repair_id
    body.update(repair_parameters(snapshot.run))
    body.update(extra)
    return body


def _fallback(base: dict[str, Any], now_ms: int, reason: str, recommendation: str,
              changes: tuple[str, ...] = (), notes: tuple[str, ...] = ()) -> ActionPlan:
    return ActionPlan(action=Action.SEND_EMAIL, kind="notify", notify="owner", not_before=now_ms,
                      fallback_reason=reason, recommendation=recommendation, changes=changes, notes=notes, **base)


# --- compute of a task --------------------------------------------------------------------------

@dataclass
class _Compute:
    kind: str                           # job_cluster | new_cluster | existing | serverless | unknown
    spec: dict[str, Any] | None = None  # the cluster spec (job_cluster / new_cluster)
    ref: str = ""                       # job cluster key or existing cluster id


def _job_clusters(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    settings = (snapshot.job or {}).get("settings") or {}
    for source in (settings.get("job_clusters") or [], snapshot.run.get("job_clusters") or []):
        for jc in source:   # the run's own copy (what actually ran) wins over the job's current one
            if isinstance(jc, Mapping) and jc.get("job_cluster_key") and isinstance(jc.get("new_cluster"), Mapping):
                found[str(jc["job_cluster_key"])] = dict(jc["new_cluster"])
    return found


def _compute_of(raw: Mapping[str, Any], clusters: Mapping[str, dict[str, Any]]) -> _Compute:
    spec_holder = raw
    if not any(raw.get(k) for k in ("existing_cluster_id", "new_cluster", "job_cluster_key")) \
            and isinstance(raw.get("cluster_spec"), Mapping):
        spec_holder = raw["cluster_spec"]        # a legacy single-task run keeps compute here
    if spec_holder.get("existing_cluster_id"):
        return _Compute("existing", ref=str(spec_holder["existing_cluster_id"]))
    if isinstance(spec_holder.get("new_cluster"), Mapping):
        return _Compute("new_cluster", spec=dict(spec_holder["new_cluster"]))
    if spec_holder.get("job_cluster_key"):
        key = str(spec_holder["job_cluster_key"])
        if key in clusters:
            return _Compute("job_cluster", spec=dict(clusters[key]), ref=key)
        return _Compute("unknown", ref=key)
    if raw.get("environment_key") or any(k.endswith("_task") and isinstance(v, Mapping) for k, v in raw.items()):
        return _Compute("serverless", ref=str(raw.get("environment_key") or ""))
    return _Compute("unknown")


def _task_definition(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: copy.deepcopy(raw[k]) for k in _SUBMIT_TASK_FIELDS if k in raw and raw[k] is not None}
    for k, v in raw.items():
        if k.endswith("_task") and isinstance(v, Mapping):
            out[k] = copy.deepcopy(dict(v))
    return out


def _idempotency_token(key: str) -> str:
    if len(key) <= _TOKEN_MAX:
        return key
    return "triage-" + hashlib.sha256(key.encode()).hexdigest()[: _TOKEN_MAX - 7]


def _dependents(tasks: list[TaskRun], roots: set[str]) -> list[str]:
    """Root keys plus every task downstream of them, in the run's task order."""
    wanted = set(roots)
    changed = True
    while changed:
        changed = False
        for t in tasks:
            if t.task_key and t.task_key not in wanted and wanted.intersection(t.depends_on):
                wanted.add(t.task_key)
                changed = True
    return [t.task_key for t in tasks if t.task_key in wanted]


def _plan_resize(snapshot: Snapshot, decision: Decision, settings: Settings, *, now_ms: int, wait_ms: int,
                 base: dict[str, Any]) -> ActionPlan:
    clusters = _job_clusters(snapshot)
    tasks = snapshot.tasks
    legacy = not snapshot.run.get("tasks")
    failed = [t for t in tasks if t.state.failed]   # the same objects as ``tasks`` (ids below)
    roots = [t for t in failed if not t.state.upstream] or failed
    if not roots:
        return _fallback(base, now_ms, "the run has no failed task to rerun",
                         "Check the run: no failed task was found to rerun with more resources.")
    label = {id(t): (t.task_key or f"run {snapshot.run_id}") for t in tasks}
    computes = {id(t): _compute_of(t.raw, clusters) for t in tasks}
    existing = [t for t in roots if computes[id(t)].kind == "existing"]
    if existing:
        names = ", ".join(f"{label[id(t)]} (cluster {computes[id(t)].ref})" for t in existing)
        return _fallback(
            base, now_ms, f"task(s) {names} run on an existing all-purpose cluster, which a rerun cannot resize",
            f"Rerun {', '.join(label[id(t)] for t in existing)} on a bigger cluster: resize the all-purpose "
            "cluster or move the task to a job cluster with more workers or a larger node type, then repair the run.")
    unknown = [t for t in roots if computes[id(t)].kind == "unknown"]
    if unknown:
        return _fallback(
            base, now_ms, f"the compute of task(s) {', '.join(label[id(t)] for t in unknown)} could not be "
                          "determined from the run or the job",
            "Rerun the failed task(s) on a bigger cluster.")
    if all(computes[id(t)].kind == "serverless" for t in roots):
        body = _repair_body(snapshot, performance_target="PERFORMANCE_OPTIMIZED")
        return ActionPlan(action=Action.RETRY_WITH_NEW_PARAMS, kind="repair", requests=(_req(RUNS_REPAIR, body),),
                          not_before=now_ms + wait_ms,
                          changes=("performance_target STANDARD -> PERFORMANCE_OPTIMIZED (serverless)",), **base)

    params = decision.params if isinstance(decision.params, Mapping) else {}
    # Which clusters were undersized: the job clusters (by key) or inline clusters of the failed tasks.
    undersized_keys = {computes[id(t)].ref for t in roots if computes[id(t)].kind == "job_cluster"}
    undersized_tasks = {id(t) for t in roots if computes[id(t)].kind == "new_cluster"}
    resized: dict[str, dict[str, Any]] = {}
    changes: list[str] = []
    notes: list[str] = []

    def resize(spec: dict[str, Any], what: str) -> dict[str, Any]:
        new, ch, rej = resize_cluster(spec, params, settings)
        changes.extend(f"{what}: {c}" for c in ch)
        notes.extend(f"{what}: {r}" for r in rej)
        return new

    if wants_in_place(snapshot) and not legacy:
        requests, restore, ch, nt, problem = plan_in_place(
            snapshot, params, settings, cluster_keys=undersized_keys,
            task_keys={t.task_key for t in roots if id(t) in undersized_tasks and t.task_key},
            repair_body=_repair_body(snapshot))
        if problem:
            notes.append(f"not resized in place ({problem}): a one-time run instead")
        elif not ch:
            return _fallback(base, now_ms, "no allowed resize is left: " + ("; ".join(nt[:4]) or "nothing to change"),
                             "The failure needs more resources than triage may grant: raise the job cluster size or "
                             "node type, or reduce the data the task processes.", notes=tuple(nt))
        else:
            return ActionPlan(action=Action.RETRY_WITH_NEW_PARAMS, kind="update_repair", requests=requests,
                              restore=restore, not_before=now_ms + wait_ms, changes=tuple(ch), notes=tuple(nt),
                              recommendation=f"If the job cannot be updated, make this change to the job and repair "
                                             f"the run: {_change_words(ch)}.", **base)

    if legacy:
        included = [tasks[0]]
    else:
        keep = _dependents(tasks, {t.task_key for t in roots if t.task_key})
        included = [t for t in tasks if t.task_key in keep]
    keys = {label[id(t)] for t in included}
    job_params = job_parameter_values(snapshot.run)
    problems: list[str] = []
    out_tasks: list[dict[str, Any]] = []
    env_keys: set[str] = set()
    for t in included:
        comp = computes[id(t)]
        definition = _task_definition(t.raw)
        raw = t.raw if not legacy else {**snapshot.run, "task_key": "main"}
        inputs, trouble = task_inputs(raw, snapshot.run, job_params, keys)
        definition.update(inputs)
        problems.extend(trouble)
        definition["task_key"] = t.task_key or "main"
        deps = [d for d in (definition.get("depends_on") or [])
                if isinstance(d, Mapping) and d.get("task_key") in keys]
        if deps:
            definition["depends_on"] = deps
        else:
            definition.pop("depends_on", None)
        if comp.kind == "job_cluster":
            if comp.ref in undersized_keys:
                if comp.ref not in resized:
                    resized[comp.ref] = resize(comp.spec or {}, f"job cluster {comp.ref}")
                definition["new_cluster"] = copy.deepcopy(resized[comp.ref])
            else:
                definition["new_cluster"] = copy.deepcopy(comp.spec)
        elif comp.kind == "new_cluster":
            definition["new_cluster"] = (resize(comp.spec or {}, f"task {label[id(t)]} cluster")
                                         if id(t) in undersized_tasks else copy.deepcopy(comp.spec))
        elif comp.kind == "existing":
            definition["existing_cluster_id"] = comp.ref
        elif comp.kind == "serverless":
            if comp.ref:
                definition["environment_key"] = comp.ref
                env_keys.add(comp.ref)
        else:
            return _fallback(base, now_ms, f"the compute of dependent task {label[id(t)]} could not be determined",
                             "Rerun the failed task(s) and their dependents on a bigger cluster.")
        out_tasks.append(definition)

    knob = str(params.get("knob") or "")
    if not changes:
        why = "; ".join(notes[:4]) or "nothing the bounds allow would change the cluster"
        return _fallback(
            base, now_ms, f"no allowed resize is left{' on the ' + knob + ' knob' if knob else ''}: {why}",
            "The failure needs more resources than triage may grant: raise the job cluster size or node type "
            "(TRIAGE_NODE_TYPE_LADDER, TRIAGE_MAX_WORKERS), or reduce the data the task processes.",
            notes=tuple(notes))
    what = _change_words(changes)
    if problems:
        return _fallback(
            base, now_ms, "the failed run's inputs cannot be reproduced faithfully: " + "; ".join(problems[:5]),
            f"Repair the run after making this change to the job: {what}.", changes=tuple(changes), notes=tuple(notes))
    run_as = run_as_of(snapshot)
    if run_as is None:
        return _fallback(
            base, now_ms, "the job's identity is unknown (no job settings.run_as, run_as_user_name or creator): "
                          "a rerun would run as the triage app",
            f"Repair the run after making this change to the job: {what}.", changes=tuple(changes), notes=tuple(notes))

    job_settings = (snapshot.job or {}).get("settings") or {}
    lineage = lineage_of(snapshot.run)
    name = f"{snapshot.job_name}: resized rerun of run {snapshot.run_id}"
    body: dict[str, Any] = {
        "run_name": lineage_run_name(name, lineage),
        "idempotency_token": _idempotency_token(snapshot.decision_key),
        "tasks": out_tasks,
        "run_as": dict(run_as),
        "access_control_list": owners_acl(snapshot, run_as),
    }
    git_source = snapshot.run.get("git_source") or job_settings.get("git_source")
    if git_source:
        body["git_source"] = copy.deepcopy(git_source)
    if env_keys:
        envs = [copy.deepcopy(e) for e in job_settings.get("environments") or []
                if isinstance(e, Mapping) and e.get("environment_key") in env_keys]
        if {e.get("environment_key") for e in envs} != env_keys:
            return _fallback(base, now_ms, "the serverless environment of a dependent task is not in the job settings",
                             "Rerun the failed task(s) and their dependents on a bigger cluster.")
        body["environments"] = envs
    if job_settings.get("timeout_seconds"):
        body["timeout_seconds"] = job_settings["timeout_seconds"]
    notes.append(f"runs as the job's {run_as.kind} {run_as.principal} ({run_as.source})")
    return ActionPlan(action=Action.RETRY_WITH_NEW_PARAMS, kind="submit", requests=(_req(RUNS_SUBMIT, body),),
                      not_before=now_ms + wait_ms, changes=tuple(changes), notes=tuple(notes),
                      recommendation=f"If the rerun cannot be sent, make this change to the job and repair the "
                                     f"run: {what}.", **base)


def _change_words(changes: list[str] | tuple[str, ...]) -> str:
    return "; ".join(changes)


def effective_decision(decision: Decision, plan: ActionPlan) -> Decision:
    """The decision as it will be carried out: after a fallback, the new action with the reason in
    ``notes`` and the recommendation added to ``suggested_fix`` (what a notifier should say)."""
    if plan.action is decision.action and not plan.fallback_reason:
        return decision
    notes = list(decision.notes)
    if plan.fallback_reason:
        notes.append(f"{plan.requested.value} -> {plan.action.value}: {plan.fallback_reason}")
    fix = decision.suggested_fix
    if plan.recommendation and plan.recommendation not in fix:
        fix = f"{fix}\n{plan.recommendation}".strip()
    return dataclasses.replace(decision, action=plan.action, notes=notes, suggested_fix=fix)


# --- execute ------------------------------------------------------------------------------------

def execute(plan: ActionPlan, client: DatabricksClient, store: Store | None = None) -> dict[str, Any]:
    """Send the plan's request(s) through ``client`` (a ``DatabricksClient``).

    Returns ``{"repair_id": N}`` for a repair, ``{"run_id": N}`` for a submit, ``{"repair_id": N,
    "job_updated": ..., "restore": "pending"}`` for a resize in place (``store`` required), and
    ``{"status": "nothing to send"}`` for notify/none plans (notifying is the caller's, through a
    ``Notifier``). Raises ``DatabricksError`` subclasses; a repair the workspace refuses because
    the run changed since the snapshot (repaired by someone else, or running again) raises
    ``DatabricksConflict`` -- checked by reading the run again, not by parsing the message."""
    if not plan.requests:
        return {"status": "nothing to send"}
    if plan.kind == "update_repair":
        if store is None:
            raise ValueError("a resize in place needs the store (its pending restore lives there)")
        return execute_in_place(plan.requests, plan.restore, client, store, send_repair=_send_repair)
    result: dict[str, Any] = {}
    for req in plan.requests:
        endpoint = (req["method"], req["path"])
        body = req["body"]
        if endpoint == RUNS_REPAIR:
            result.update(_send_repair(client, body))
        elif endpoint == RUNS_SUBMIT:
            answer = _send_submit(client, body)
            if answer.get("run_id") is None:
                raise DatabricksError("runs/submit answered without a run_id", method=endpoint[0],
                                      url=client.host + endpoint[1])
            result["run_id"] = int(answer["run_id"])
        else:
            raise ValueError(f"execute() does not send {endpoint[0]} {endpoint[1]}")
    return result


def _send_submit(client: DatabricksClient, body: Mapping[str, Any]) -> dict[str, Any]:
    """runs/submit; a refusal of the job's identity becomes ``RunAsRefused`` (never resent
    without ``run_as``: the rerun runs as the job or not at all)."""
    try:
        return client.submit_run(body)
    except DatabricksError as exc:
        run_as = body.get("run_as") or {}
        refused = isinstance(exc, DatabricksAuthError) or (
            type(exc) is DatabricksError and exc.status == 400 and any(
                w in (exc.message or "").lower() for w in ("run_as", "run as", "service principal", "serviceprincipal")))
        if not run_as or not refused:
            raise
        who = run_as.get("service_principal_name") or run_as.get("user_name")
        raise RunAsRefused(f"the workspace refused to run as the job's identity {who}: {exc.message}",
                           status=exc.status, error_code=exc.error_code, method=exc.method, url=exc.url) from exc


def _send_repair(client: DatabricksClient, body: Mapping[str, Any]) -> dict[str, Any]:
    try:
        answer = client.repair_run(body)
    except DatabricksError as exc:
        if type(exc) is not DatabricksError or exc.status != 400:
            raise
        run = client.get_run(int(body["run_id"]), include_history=True)
        snap = Snapshot(run=run)
        lcs = snap.state.life_cycle_state
        if snap.latest_repair_id != body.get("latest_repair_id") or lcs not in ("TERMINATED", "SKIPPED",
                                                                                  "INTERNAL_ERROR"):
            raise DatabricksConflict(
                f"run {body['run_id']} changed since the snapshot (latest repair id now "
                f"{snap.latest_repair_id}, sent {body.get('latest_repair_id')}; state {lcs}): {exc.message}",
                status=exc.status, error_code=exc.error_code, method=exc.method, url=exc.url) from exc
        raise
    if answer.get("repair_id") is None:
        raise DatabricksError("runs/repair answered without a repair_id", method=RUNS_REPAIR[0],
                              url=client.host + RUNS_REPAIR[1])
    return {"repair_id": int(answer["repair_id"])}
