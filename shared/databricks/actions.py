"""Carry a decision out: plan the exact Databricks request (pure), then send it.

``plan_action(snapshot, decision, settings, now_ms=...)`` returns an ``ActionPlan``: the HTTP
request(s) that would carry the decision out (method, path, body), when they may be sent
(``not_before``, from a per-category back-off), and, when the decision cannot be carried out as
asked, the fallback and why. Nothing is sent: shadow mode records ``plan.to_dict()``.
``execute(plan, client)`` sends it and returns e.g. ``{"repair_id": 7}`` or ``{"run_id": 42}``.

| decision | request |
|---|---|
| RETRY | ``runs/repair`` with ``rerun_all_failed_tasks`` and ``latest_repair_id`` (when the run has repairs) |
| RETRY_WITH_NEW_PARAMS, job/new clusters | ``runs/submit`` of the failed tasks and their dependents, each with a resized ``new_cluster``; ``idempotency_token`` = the decision key |
| RETRY_WITH_NEW_PARAMS, serverless | ``runs/repair`` with ``performance_target: PERFORMANCE_OPTIMIZED`` |
| RETRY_WITH_NEW_PARAMS, all-purpose cluster | none: SEND_EMAIL with the recommendation (a rerun cannot resize it) |
| SEND_EMAIL / ESCALATE | none: the caller hands the decision to a ``Notifier`` |
| IGNORE | none |

Resizing obeys policy invariant 3, enforced in one place, ``bound_cluster_change()``: workers
(or autoscale ``max_workers``) at most x2 per step and never above ``TRIAGE_MAX_WORKERS``; the
node type only one step up ``TRIAGE_NODE_TYPE_LADDER`` (the driver follows when it was the same
type); Spark conf keys only from ``TRIAGE_SPARK_CONF_ALLOWLIST``; every other field unchanged.

``decision.params`` may suggest ``num_workers``, ``max_workers`` (autoscale) or
``num_workers_factor``; ``node_type_id`` (alias ``node_type``) or ``node_type_step``; and
``spark_conf`` (a mapping). Suggestions are clamped by the same bounds. Workers default to x2;
the node type steps up the ladder only when asked (or when there are no suggestions at all).
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
from shared.errors import DatabricksConflict, DatabricksError
from shared.models import Action, Category, Decision
from shared.snapshot import Snapshot, TaskRun, as_int

if TYPE_CHECKING:  # pragma: no cover
    from shared.databricks.client import DatabricksClient
    from shared.config import Settings

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
    kind: str                          # repair | submit | notify | none
    decision_key: str
    run_id: int
    requests: tuple[dict[str, Any], ...] = ()
    not_before: int = 0                # ms epoch; 0 = at once
    notify: str = ""                   # "" | owner | escalation
    fallback_reason: str = ""
    recommendation: str = ""
    changes: tuple[str, ...] = ()      # human-readable resize changes
    notes: tuple[str, ...] = ()        # rejected suggestions and other remarks

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
    body: dict[str, Any] = {"run_id": snapshot.run_id, "rerun_all_failed_tasks": True}
    if snapshot.latest_repair_id is not None:
        body["latest_repair_id"] = snapshot.latest_repair_id
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


# --- resizing (policy invariant 3) --------------------------------------------------------------

def _next_node(node: str | None, ladder: tuple[str, ...]) -> str | None:
    if node and node in ladder:
        i = ladder.index(node)
        if i + 1 < len(ladder):
            return ladder[i + 1]
    return None


def bound_cluster_change(old: Mapping[str, Any], proposed: Mapping[str, Any],
                         settings: Settings) -> tuple[dict[str, Any], list[str], list[str]]:
    """Apply the allowed part of ``proposed`` to ``old`` (a new_cluster spec).

    Returns ``(cluster, changes, rejected)``: the bounded cluster, what changed, and what was
    refused. Allowed: more workers (fixed size or autoscale ``max_workers``) up to
    min(2 x current, ``settings.max_workers``), never fewer; ``node_type_id`` exactly one step up
    ``settings.node_type_ladder`` (``driver_node_type_id`` follows only when it was equal);
    ``spark_conf`` keys in ``settings.spark_conf_allowlist``. Anything else keeps its old value."""
    out = copy.deepcopy(dict(old))
    changes: list[str] = []
    rejected: list[str] = []
    ceiling = int(settings.max_workers)

    def grow(label: str, current: int, wanted: Any) -> int:
        want = as_int(wanted)
        if want is None:
            rejected.append(f"{label}: {wanted!r} is not a whole number")
            return current
        if want <= current:
            if want < current:
                rejected.append(f"{label}: {current} -> {want} would shrink the cluster")
            return current
        limit = min(2 * current, ceiling)
        if limit <= current:
            rejected.append(f"{label}: {current} is already at the limit "
                            f"({'TRIAGE_MAX_WORKERS ' + str(ceiling) if ceiling <= current else 'x2 of 0'})")
            return current
        new = min(want, limit)
        if new < want:
            rejected.append(f"{label}: {want} capped to {new} (x2 per step, TRIAGE_MAX_WORKERS {ceiling})")
        changes.append(f"{label} {current} -> {new}")
        return new

    if isinstance(old.get("autoscale"), Mapping):
        cur = as_int(old["autoscale"].get("max_workers")) or 0
        want = (proposed.get("autoscale") or {}).get("max_workers", cur) \
            if isinstance(proposed.get("autoscale"), Mapping) else cur
        new_max = grow("autoscale.max_workers", cur, want)
        out["autoscale"] = {**dict(old["autoscale"]), "max_workers": new_max}
        if isinstance(proposed.get("autoscale"), Mapping) and \
                proposed["autoscale"].get("min_workers", old["autoscale"].get("min_workers")) != \
                old["autoscale"].get("min_workers"):
            rejected.append("autoscale.min_workers: not changed by triage")
        if "num_workers" in proposed:
            rejected.append("num_workers: the cluster autoscales; only autoscale.max_workers may change")
    elif "num_workers" in old:
        cur = as_int(old.get("num_workers")) or 0
        out["num_workers"] = grow("num_workers", cur, proposed.get("num_workers", cur))
    elif "num_workers" in proposed or "autoscale" in proposed:
        rejected.append("workers: the cluster spec has no num_workers or autoscale to scale")

    old_node, new_node = old.get("node_type_id"), proposed.get("node_type_id", old.get("node_type_id"))
    if new_node != old_node:
        step = _next_node(old_node, tuple(settings.node_type_ladder))
        if old.get("instance_pool_id"):
            rejected.append("node_type_id: the cluster takes its nodes from an instance pool")
        elif step is None:
            rejected.append(f"node_type_id: {old_node} has no next step in TRIAGE_NODE_TYPE_LADDER")
        elif new_node != step:
            rejected.append(f"node_type_id: {old_node} -> {new_node} is not one ladder step (next is {step})")
        else:
            out["node_type_id"] = step
            changes.append(f"node_type_id {old_node} -> {step}")
            if old.get("driver_node_type_id") == old_node:
                out["driver_node_type_id"] = step
                changes.append(f"driver_node_type_id {old_node} -> {step}")
    if proposed.get("driver_node_type_id", old.get("driver_node_type_id")) not in (
            old.get("driver_node_type_id"), out.get("driver_node_type_id")):
        rejected.append("driver_node_type_id: changes only together with node_type_id")

    allow = set(settings.spark_conf_allowlist)
    old_conf = dict(old.get("spark_conf") or {})
    new_conf = proposed.get("spark_conf", old_conf)
    if not isinstance(new_conf, Mapping):
        rejected.append("spark_conf: not a mapping")
        new_conf = old_conf
    merged = dict(old_conf)          # keys the proposal leaves out keep their value (no removals)
    for key in sorted(new_conf):
        before, after = old_conf.get(key), new_conf[key]
        if after is None or (before is not None and str(after) == str(before)):
            continue
        if key not in allow:
            rejected.append(f"spark_conf.{key}: not in TRIAGE_SPARK_CONF_ALLOWLIST")
            continue
        merged[key] = str(after)
        changes.append(f"spark_conf.{key} {before!r} -> {str(after)!r}")
    if merged != old_conf:
        out["spark_conf"] = merged

    known = {"num_workers", "autoscale", "node_type_id", "driver_node_type_id", "spark_conf"}
    for key in sorted(set(proposed) - known):
        if proposed[key] != old.get(key):
            rejected.append(f"{key}: not a field triage may change")
    return out, changes, rejected


def _wanted_workers(current: int, params: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if params.get(name) is not None:
            return params[name]
    factor = params.get("num_workers_factor")
    if factor is not None:
        try:
            return int(current * float(factor))
        except (TypeError, ValueError):
            return factor          # refused (and noted) by bound_cluster_change
    return 2 * current


def _propose(spec: Mapping[str, Any], params: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The resize the decision asks for, before bounds.

    Workers: ``num_workers`` (or ``max_workers`` for autoscale), else ``num_workers_factor`` x
    current, else x2. Node type: ``node_type_id``/``node_type`` when given; else one ladder step
    when ``node_type_step`` >= 1 or when there are no suggestions at all; else unchanged.
    ``spark_conf``: merged over the current conf."""
    proposed: dict[str, Any] = {}
    if isinstance(spec.get("autoscale"), Mapping):
        cur = as_int(spec["autoscale"].get("max_workers")) or 0
        proposed["autoscale"] = {**dict(spec["autoscale"]),
                                 "max_workers": _wanted_workers(cur, params, "max_workers", "num_workers")}
    elif "num_workers" in spec:
        cur = as_int(spec.get("num_workers")) or 0
        proposed["num_workers"] = _wanted_workers(cur, params, "num_workers")
    node = params.get("node_type_id") or params.get("node_type")
    if node is None:
        step = as_int(params.get("node_type_step"))
        if (step is not None and step >= 1) or not params:
            node = _next_node(spec.get("node_type_id"), tuple(settings.node_type_ladder))
    if node:
        proposed["node_type_id"] = node
    if isinstance(params.get("spark_conf"), Mapping):
        proposed["spark_conf"] = {**dict(spec.get("spark_conf") or {}), **dict(params["spark_conf"])}
    return proposed


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
        new, ch, rej = bound_cluster_change(spec, _propose(spec, params, settings), settings)
        changes.extend(f"{what}: {c}" for c in ch)
        notes.extend(f"{what}: {r}" for r in rej)
        return new

    if legacy:
        included = [tasks[0]]
    else:
        keep = _dependents(tasks, {t.task_key for t in roots if t.task_key})
        included = [t for t in tasks if t.task_key in keep]
    keys = {label[id(t)] for t in included}
    out_tasks: list[dict[str, Any]] = []
    env_keys: set[str] = set()
    for t in included:
        comp = computes[id(t)]
        definition = _task_definition(t.raw)
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

    if not changes:
        return _fallback(
            base, now_ms, "no allowed resize is left: the cluster is at TRIAGE_MAX_WORKERS and its node type "
                          "has no next step in TRIAGE_NODE_TYPE_LADDER",
            "The failure needs more resources than triage may grant: raise the job cluster size or node type, "
            "or reduce the data the task processes.", notes=tuple(notes))

    job_settings = (snapshot.job or {}).get("settings") or {}
    lineage = lineage_of(snapshot.run)
    name = f"{snapshot.job_name}: resized rerun of run {snapshot.run_id}"
    body: dict[str, Any] = {
        "run_name": lineage_run_name(name, lineage),
        "idempotency_token": _idempotency_token(snapshot.decision_key),
        "tasks": out_tasks,
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
    return ActionPlan(action=Action.RETRY_WITH_NEW_PARAMS, kind="submit", requests=(_req(RUNS_SUBMIT, body),),
                      not_before=now_ms + wait_ms, changes=tuple(changes), notes=tuple(notes), **base)


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

def execute(plan: ActionPlan, client: DatabricksClient) -> dict[str, Any]:
    """Send the plan's request(s) through ``client`` (a ``DatabricksClient``).

    Returns ``{"repair_id": N}`` for a repair, ``{"run_id": N}`` for a submit, and
    ``{"status": "nothing to send"}`` for notify/none plans (notifying is the caller's, through a
    ``Notifier``). Raises ``DatabricksError`` subclasses; a repair the workspace refuses because
    the run changed since the snapshot (repaired by someone else, or running again) raises
    ``DatabricksConflict`` -- checked by reading the run again, not by parsing the message."""
    if not plan.requests:
        return {"status": "nothing to send"}
    result: dict[str, Any] = {}
    for req in plan.requests:
        endpoint = (req["method"], req["path"])
        body = req["body"]
        if endpoint == RUNS_REPAIR:
            result.update(_send_repair(client, body))
        elif endpoint == RUNS_SUBMIT:
            answer = client.submit_run(body)
            if answer.get("run_id") is None:
                raise DatabricksError("runs/submit answered without a run_id", method=endpoint[0],
                                      url=client.host + endpoint[1])
            result["run_id"] = int(answer["run_id"])
        else:
            raise ValueError(f"execute() does not send {endpoint[0]} {endpoint[1]}")
    return result


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
