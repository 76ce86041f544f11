"""Tolerant reading of Databricks answers: one typed reader for every field triage reads.

A Jobs API answer is data from outside: a proxy, an old workspace or a bug can put a string where
an object belongs (job tags as ``"a=b"``, ``depends_on: true``, ``spark_conf: "..."``). Every
``runs/get``, ``runs/get-output`` and ``jobs/get`` answer passes through ``read_run``,
``read_output`` and ``read_job`` before anything reads it. Each field triage (or a rerun request)
reads has a declared shape, below, as data; a field with the wrong shape is dropped and a note says
which and why, so the failure is decided from what is valid and the decision says what was
ignored. Fields not declared here are kept verbatim (a snapshot is the answer as it was).

Shapes: ``str``, ``int`` (a number or a numeric string, as ids often are), ``bool``, ``"scalar"``
(a string, number or boolean), ``"any"``;
``Obj({...})`` an object with declared fields; ``List(shape)`` a list whose wrong-shaped items are
dropped; ``Map(shape)`` an object of free keys whose values have one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Obj", "List", "Map", "read", "read_run", "read_output", "read_job", "read_answers", "RUN", "OUTPUT", "JOB"]

_MAX_NOTES = 50


@dataclass(frozen=True)
class Obj:
    fields: Mapping[str, Any] = field(default_factory=dict)
    any_task: bool = False          # also check every ``*_task`` field as an object


@dataclass(frozen=True)
class List:
    item: Any


@dataclass(frozen=True)
class Map:
    value: Any


_DROP = object()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _want(shape: Any) -> str:
    if isinstance(shape, (Obj, Map)):
        return "an object"
    if shape == "scalar":
        return "a string, number or boolean"
    if isinstance(shape, List):
        return "a list"
    return {str: "a string", int: "a whole number", bool: "a boolean"}.get(shape, "a value")


def read(value: Any, shape: Any, where: str, notes: list[str]) -> Any:
    """``value`` with every wrong-shaped part removed (a note each in ``notes``); ``_DROP``
    when ``value`` itself has the wrong shape. Never raises for any JSON value."""
    def drop() -> Any:
        if len(notes) < _MAX_NOTES:
            notes.append(f"{where}: expected {_want(shape)}, found {_kind(value)}; ignored")
        return _DROP

    if shape == "any":
        return value
    if shape == "scalar":
        return value if isinstance(value, (str, int, float, bool)) else drop()
    if shape is str:
        return value if isinstance(value, str) else drop()
    if shape is bool:
        return value if isinstance(value, bool) else drop()
    if shape is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        digits = value.strip().lstrip("-") if isinstance(value, str) else ""
        if digits.isascii() and digits.isdigit() and len(value) < 30:      # not '²': int() refuses it
            return int(value)
        return drop()
    if isinstance(shape, List):
        if not isinstance(value, list):
            return drop()
        out = []
        for i, item in enumerate(value):
            got = read(item, shape.item, f"{where}[{i}]", notes)
            if got is not _DROP:
                out.append(got)
        return out
    if isinstance(shape, Map):
        if not isinstance(value, Mapping):
            return drop()
        out_map = {}
        for k, v in value.items():
            got = read(v, shape.value, f"{where}.{k}", notes)
            if got is not _DROP:
                out_map[str(k)] = got
        return out_map
    if isinstance(shape, Obj):
        if not isinstance(value, Mapping):
            return drop()
        obj = {}
        for k, v in value.items():
            k = str(k)
            sub = shape.fields.get(k)
            if sub is None and shape.any_task and k.endswith("_task"):
                sub = Obj()
            if sub is None:                     # undeclared: kept as it came
                obj[k] = v
                continue
            if v is None:                       # a declared field that is null is absent
                continue
            got = read(v, sub, f"{where}.{k}", notes)
            if got is not _DROP:
                obj[k] = got
        return obj
    raise TypeError(f"unknown shape {shape!r}")    # a bug in the declarations below, not in the data


# --- the shapes triage reads (Jobs API 2.2) ------------------------------------------------------

STATE = Obj({"life_cycle_state": str, "result_state": str, "state_message": str,
             "user_cancelled_or_timedout": bool})
STATUS = Obj({"state": str, "termination_details": Obj({"code": str, "type": str, "message": str})})
CLUSTER = Obj({
    "spark_version": str, "node_type_id": str, "driver_node_type_id": str, "num_workers": int,
    "autoscale": Obj({"min_workers": int, "max_workers": int}), "spark_conf": Map("scalar"),
    "custom_tags": Map(str), "spark_env_vars": Map(str), "instance_pool_id": str,
    "driver_instance_pool_id": str, "policy_id": str, "data_security_mode": str,
    "single_user_name": str, "runtime_engine": str,
})
JOB_CLUSTER = Obj({"job_cluster_key": str, "new_cluster": CLUSTER})
TASK = Obj({
    "task_key": str, "run_id": int, "state": STATE, "status": STATUS,
    "depends_on": List(Obj({"task_key": str, "outcome": str})), "new_cluster": CLUSTER,
    "existing_cluster_id": str, "job_cluster_key": str, "environment_key": str,
    "timeout_seconds": int, "run_page_url": str, "start_time": int, "end_time": int,
    "attempt_number": int, "run_if": str, "libraries": List(Obj()), "description": str,
    "cluster_spec": Obj({"new_cluster": CLUSTER, "existing_cluster_id": str, "job_cluster_key": str}),
}, any_task=True)
REPAIR = Obj({"id": int, "type": str, "start_time": int, "end_time": int, "state": STATE, "status": STATUS,
              "task_run_ids": List(int)})
ENVIRONMENT = Obj({"environment_key": str, "spec": Obj()})
RUN = Obj({
    "run_id": int, "job_id": int, "run_name": str, "run_page_url": str, "creator_user_name": str,
    "start_time": int, "end_time": int, "state": STATE, "status": STATUS, "tasks": List(TASK),
    "job_clusters": List(JOB_CLUSTER), "repair_history": List(REPAIR), "git_source": Obj(),
    "environments": List(ENVIRONMENT), "trigger": str, "run_type": str, "attempt_number": int,
    "original_attempt_run_id": int, "next_page_token": str, "job_parameters": List(Obj()),
    "overriding_parameters": Obj(), "cluster_spec": Obj({"new_cluster": CLUSTER, "existing_cluster_id": str,
                                                          "job_cluster_key": str}),
}, any_task=True)
OUTPUT = Obj({"error": str, "error_trace": str, "logs": str, "logs_truncated": bool, "metadata": TASK,
              "notebook_output": Obj()})
JOB = Obj({
    "job_id": int, "creator_user_name": str, "run_as_user_name": str,
    "settings": Obj({
        "name": str, "tags": Map(str), "tasks": List(TASK), "job_clusters": List(JOB_CLUSTER),
        "email_notifications": Obj({"on_failure": List(str), "on_start": List(str), "on_success": List(str)}),
        "max_concurrent_runs": int, "timeout_seconds": int, "environments": List(ENVIRONMENT),
        "git_source": Obj(), "run_as": Obj({"user_name": str, "service_principal_name": str}),
        "parameters": List(Obj()),
    }),
})


def _top(value: Any, shape: Obj, what: str, notes: list[str]) -> dict[str, Any] | None:
    got = read(value, shape, what, notes)
    return None if got is _DROP else got


def read_run(run: Any, notes: list[str]) -> dict[str, Any] | None:
    """A ``runs/get`` answer with wrong-shaped fields dropped; None when it is not an object."""
    return _top(run, RUN, "run", notes)


def read_output(output: Any, notes: list[str], where: str = "output") -> dict[str, Any] | None:
    """A ``runs/get-output`` answer; None when it is not an object."""
    return _top(output, OUTPUT, where, notes)


def read_job(job: Any, notes: list[str]) -> dict[str, Any] | None:
    """A ``jobs/get`` answer; None when it is not an object."""
    return _top(job, JOB, "job", notes)


def read_answers(run: Any, outputs: Mapping[str, Any], job: Any,
                 notes: list[str]) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, Any] | None]:
    """The three answers a snapshot is made of (``runs/get``, the ``runs/get-output`` answers keyed
    by task run id, ``jobs/get`` or None), each read as above; an output that is not an object
    is left out. Every dropped field is noted in ``notes``."""
    clean_outputs: dict[str, Any] = {}
    for k, v in outputs.items():
        out = read_output(v, notes, where=f"task_outputs.{k}")
        if out is not None:
            clean_outputs[str(k)] = out
    return read_run(run, notes), clean_outputs, (read_job(job, notes) if job is not None else None)
