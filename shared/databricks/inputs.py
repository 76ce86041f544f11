"""Who a rerun runs as, and what it computes: the job's identity and the failed run's inputs. Pure.

A resized rerun acts with the job's authority, never the app's, and computes what the failed run
computed, or it is not sent at all (the owner gets the recommendation instead):

- ``run_as_of(snapshot)``: the job's identity, from ``jobs/get``: ``settings.run_as``
  (``user_name`` or ``service_principal_name``), else the top-level ``run_as_user_name``, else the
  job's creator (a job without ``run_as`` runs as its creator). A run without a job (a one-time
  run) has no identity we may borrow: ``None``.
- ``owners_acl(snapshot, run_as)``: the one-time run's ``access_control_list``: CAN_MANAGE for the
  job's identity and its creator, so the people who own the job see and manage the rerun.
- ``job_parameter_values(run)``: the job parameters the failed run used (``job_parameters[].value``,
  else the default), with the run's ``overriding_parameters.job_parameters`` on top.
- ``task_inputs(raw_task, run, params, included)``: a task's ``*_task`` object as the run had it:
  the run's overriding parameters applied (``notebook_params`` merged into ``base_parameters``,
  ``python_params``/``jar_params``/``spark_submit_params`` replacing ``parameters`` ...), the
  task's ``resolved_values`` when the run recorded them, job parameters pushed down into key-value
  parameters (they win over a task parameter of the same name, as in Databricks) and every
  ``{{job.parameters.<name>}}`` reference replaced by the value the run used. What cannot be
  reproduced from the run's record is returned as a problem: a job parameter the run has no value
  for, and any other dynamic value reference (``{{job.start_time...}}``, ``{{job.id}}``,
  ``{{run.id}}``, task values of a task that is not rerun ...) -- a one-time run would resolve it
  differently. Secret references (``{{secrets/scope/key}}``) and ``{{task.name}}`` resolve the
  same in the rerun and are kept.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping

from shared.snapshot import Snapshot

__all__ = [
    "RunAs",
    "run_as_of",
    "owners_acl",
    "job_parameter_values",
    "repair_parameters",
    "task_inputs",
]

_REF = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_JOB_PARAM = re.compile(r"job\.parameters\.([A-Za-z0-9_.\-]+)$")
_SAME_IN_RERUN = re.compile(r"(secrets/[^{}]+|task\.name|task\.key)$")
_TASK_VALUE = re.compile(r"tasks\.([^.]+)\.")
_UUIDISH = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# run-now/repair overrides and what they do to a task: (override field, task type, task field, merge?)
_OVERRIDES = (
    ("notebook_params", "notebook_task", "base_parameters", True),
    ("python_params", "spark_python_task", "parameters", False),
    ("python_params", "python_wheel_task", "parameters", False),
    ("python_named_params", "python_wheel_task", "named_parameters", False),
    ("jar_params", "spark_jar_task", "parameters", False),
    ("spark_submit_params", "spark_submit_task", "parameters", False),
    ("sql_params", "sql_task", "parameters", True),
    ("dbt_commands", "dbt_task", "commands", False),
    ("pipeline_params", "pipeline_task", "full_refresh", False),
)
# Task fields that take key-value parameters, where job parameters are pushed down.
_KEY_VALUE = (("notebook_task", "base_parameters"), ("sql_task", "parameters"),
              ("python_wheel_task", "named_parameters"))
# Repair accepts these overrides again (a repair does not carry the original run's overrides).
REPAIR_OVERRIDES = ("notebook_params", "python_params", "python_named_params", "jar_params",
                    "spark_submit_params", "sql_params", "dbt_commands", "pipeline_params")


class RunAs(dict):
    """``{"user_name": ...}`` or ``{"service_principal_name": ...}``, with where it came from."""

    source: str = ""

    @property
    def principal(self) -> str:
        return str(self.get("service_principal_name") or self.get("user_name") or "")

    @property
    def kind(self) -> str:
        return "service principal" if "service_principal_name" in self else "user"


def _run_as(key: str, value: str, source: str) -> RunAs:
    out = RunAs({key: value})
    out.source = source
    return out


def run_as_of(snapshot: Snapshot) -> RunAs | None:
    """The identity the job runs as (see the module docstring), or None when it is not known."""
    job = snapshot.job if isinstance(snapshot.job, Mapping) else None
    if not job:
        return None
    settings = job.get("settings") if isinstance(job.get("settings"), Mapping) else {}
    declared = settings.get("run_as") if isinstance(settings.get("run_as"), Mapping) else {}
    for key in ("service_principal_name", "user_name"):
        value = declared.get(key)
        if isinstance(value, str) and value.strip():
            return _run_as(key, value.strip(), "job settings.run_as")
    named = job.get("run_as_user_name")
    if isinstance(named, str) and named.strip():
        value = named.strip()
        key = "service_principal_name" if _UUIDISH.match(value) else "user_name"
        return _run_as(key, value, "job run_as_user_name")
    creator = job.get("creator_user_name")
    if isinstance(creator, str) and creator.strip():
        value = creator.strip()
        key = "service_principal_name" if _UUIDISH.match(value) else "user_name"
        return _run_as(key, value, "job creator (the job declares no run_as)")
    return None


def owners_acl(snapshot: Snapshot, run_as: RunAs) -> list[dict[str, str]]:
    """CAN_MANAGE on the one-time run for the job's identity and its creator (once each)."""
    entries: list[dict[str, str]] = []
    seen: set[str] = set()

    def add(key: str, value: str) -> None:
        if value and value not in seen:
            seen.add(value)
            entries.append({key: value, "permission_level": "CAN_MANAGE"})

    add("service_principal_name" if "service_principal_name" in run_as else "user_name", run_as.principal)
    creator = (snapshot.job or {}).get("creator_user_name") if isinstance(snapshot.job, Mapping) else None
    if isinstance(creator, str) and creator.strip():
        value = creator.strip()
        add("service_principal_name" if _UUIDISH.match(value) else "user_name", value)
    return entries


def job_parameter_values(run: Mapping[str, Any]) -> dict[str, str]:
    """Name -> the value the run used, for every job parameter the run records."""
    out: dict[str, str] = {}
    for p in run.get("job_parameters") or []:
        if not isinstance(p, Mapping) or not p.get("name"):
            continue
        value = p.get("value", p.get("default"))
        if value is None:
            continue
        out[str(p["name"])] = value if isinstance(value, str) else _json(value)
    overriding = run.get("overriding_parameters") if isinstance(run.get("overriding_parameters"), Mapping) else {}
    for name, value in (overriding.get("job_parameters") or {}).items():
        out[str(name)] = value if isinstance(value, str) else _json(value)
    return out


def repair_parameters(run: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a repair must carry to rerun with the failed run's inputs: a repair does not
    reuse the original run's job parameters or overrides unless they are sent again."""
    out: dict[str, Any] = {}
    params = job_parameter_values(run)
    if params:
        out["job_parameters"] = params
    overriding = run.get("overriding_parameters") if isinstance(run.get("overriding_parameters"), Mapping) else {}
    for key in REPAIR_OVERRIDES:
        if overriding.get(key) not in (None, {}, []):
            out[key] = copy.deepcopy(overriding[key])
    return out


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def task_inputs(raw: Mapping[str, Any], run: Mapping[str, Any], params: Mapping[str, str],
                included: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The task's ``*_task`` objects with the run's inputs (see the module docstring), and the
    problems that keep the run from being reproduced faithfully (empty when it can be)."""
    key = str(raw.get("task_key") or "")
    types = {k: copy.deepcopy(dict(v)) for k, v in raw.items() if k.endswith("_task") and isinstance(v, Mapping)}
    overriding = run.get("overriding_parameters") if isinstance(run.get("overriding_parameters"), Mapping) else {}
    for field, task_type, task_field, merge in _OVERRIDES:
        value = overriding.get(field)
        if task_type not in types or value in (None, {}, []):
            continue
        if field == "pipeline_params":
            if isinstance(value, Mapping) and "full_refresh" in value:
                types[task_type]["full_refresh"] = value["full_refresh"]
            continue
        if merge and isinstance(value, Mapping):
            types[task_type][task_field] = {**dict(types[task_type].get(task_field) or {}), **dict(value)}
        else:
            types[task_type][task_field] = copy.deepcopy(value)
    resolved = raw.get("resolved_values") if isinstance(raw.get("resolved_values"), Mapping) else {}
    for task_type, values in resolved.items():
        if task_type in types and isinstance(values, Mapping):
            for field, value in values.items():
                types[task_type][field] = copy.deepcopy(value)
    for task_type, field in _KEY_VALUE:
        if task_type in types and params and (task_type != "python_wheel_task" or field in types[task_type]):
            types[task_type][field] = {**dict(types[task_type].get(field) or {}), **dict(params)}
    problems: list[str] = []
    out = {t: _substitute(v, params, included, problems, f"task {key}") for t, v in types.items()}
    return out, sorted(set(problems))


def _substitute(value: Any, params: Mapping[str, str], included: set[str], problems: list[str], where: str) -> Any:
    if isinstance(value, Mapping):
        return {k: _substitute(v, params, included, problems, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, included, problems, where) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value

    def one(m: re.Match[str]) -> str:
        ref = m.group(1)
        jp = _JOB_PARAM.match(ref)
        if jp:
            name = jp.group(1)
            if name in params:
                found = params[name]
                if "{{" in found and any(not _SAME_IN_RERUN.match(r) for r in _REF.findall(found)):
                    problems.append(f"{where}: job parameter '{name}' was recorded unresolved ({found!r})")
                return found
            problems.append(f"{where}: job parameter '{name}' has no value in the run's record")
            return m.group(0)
        if _SAME_IN_RERUN.match(ref):
            return m.group(0)
        tv = _TASK_VALUE.match(ref)
        if tv and tv.group(1) in included:
            return m.group(0)        # the task that sets it is rerun too
        problems.append(f"{where}: '{{{{{ref}}}}}' would resolve differently in a new run")
        return m.group(0)

    return _REF.sub(one, value)
