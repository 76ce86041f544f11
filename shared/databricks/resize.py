"""Resizing a cluster spec within policy invariant 3, and the change list in words. Pure.

``bound_cluster_change(old, proposed, settings)`` is the one place the bounds are enforced, for
every path that sends a cluster spec (a one-time run's ``new_cluster``, a ``jobs/update`` of the
job's clusters): workers (or autoscale ``max_workers``) at most x2 per step and never above
``TRIAGE_MAX_WORKERS``, never fewer; ``node_type_id`` exactly one step up
``TRIAGE_NODE_TYPE_LADDER`` (the driver follows when it was the same type);
``driver_node_type_id`` exactly one step up from the driver's current type (the worker type when
none is set); never a node type of a cluster that takes its nodes from an instance pool; Spark
conf keys only from ``TRIAGE_SPARK_CONF_ALLOWLIST``; every other field unchanged.

``resize_cluster(spec, params, settings)`` turns a decision's suggestions into a proposal and
bounds it. ``params`` may name the knob (``shared.decide.knob``: ``knob`` = driver / disk /
executors) and suggest ``num_workers``, ``max_workers`` (autoscale) or ``num_workers_factor``;
``node_type_id`` (alias ``node_type``) or ``node_type_step``; ``driver_node_type_step``;
``driver_max_result_size_factor`` (x the cluster's ``spark.driver.maxResultSize``, else the limit the
error reported, ``driver_max_result_size_seen``, else the Databricks default); ``spark_conf``. Without a knob and without
suggestions: workers x2 and one node type step (the behaviour before knobs).
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any, Mapping

from shared.snapshot import as_int

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings

__all__ = ["bound_cluster_change", "resize_cluster", "next_node", "MAX_RESULT_SIZE_KEY", "DEFAULT_MAX_RESULT_SIZE"]

MAX_RESULT_SIZE_KEY = "spark.driver.maxResultSize"
DEFAULT_MAX_RESULT_SIZE = "4g"     # what a Databricks cluster uses when the conf does not set it
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = "bkmgt"


def next_node(node: str | None, ladder: tuple[str, ...]) -> str | None:
    """The node type one step up the ladder, or None."""
    if node and node in ladder:
        i = ladder.index(node)
        if i + 1 < len(ladder):
            return ladder[i + 1]
    return None


def _driver_of(spec: Mapping[str, Any]) -> str | None:
    return spec.get("driver_node_type_id") or spec.get("node_type_id")


def bound_cluster_change(old: Mapping[str, Any], proposed: Mapping[str, Any],
                         settings: Settings) -> tuple[dict[str, Any], list[str], list[str]]:
    """Apply the allowed part of ``proposed`` to ``old`` (a new_cluster spec).

    Returns ``(cluster, changes, rejected)``: the bounded cluster, what changed (in words, e.g.
    ``driver Standard_E8ds_v5 -> Standard_E16ds_v5``), and what was refused."""
    out = copy.deepcopy(dict(old))
    changes: list[str] = []
    rejected: list[str] = []
    ceiling = int(settings.max_workers)
    ladder = tuple(settings.node_type_ladder)

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
        new_max = grow("autoscale max workers", cur, want)
        out["autoscale"] = {**dict(old["autoscale"]), "max_workers": new_max}
        if isinstance(proposed.get("autoscale"), Mapping) and \
                proposed["autoscale"].get("min_workers", old["autoscale"].get("min_workers")) != \
                old["autoscale"].get("min_workers"):
            rejected.append("autoscale.min_workers: not changed by triage")
        if "num_workers" in proposed:
            rejected.append("num_workers: the cluster autoscales; only autoscale.max_workers may change")
    elif "num_workers" in old:
        cur = as_int(old.get("num_workers")) or 0
        out["num_workers"] = grow("workers", cur, proposed.get("num_workers", cur))
    elif "num_workers" in proposed or "autoscale" in proposed:
        rejected.append("workers: the cluster spec has no num_workers or autoscale to scale")

    pooled = bool(old.get("instance_pool_id") or old.get("driver_instance_pool_id"))
    old_node, new_node = old.get("node_type_id"), proposed.get("node_type_id", old.get("node_type_id"))
    if new_node != old_node:
        step = next_node(old_node, ladder)
        if old.get("instance_pool_id"):
            rejected.append("node_type_id: the cluster takes its nodes from an instance pool")
        elif step is None:
            rejected.append(f"node_type_id: {old_node} has no next step in TRIAGE_NODE_TYPE_LADDER")
        elif new_node != step:
            rejected.append(f"node_type_id: {old_node} -> {new_node} is not one ladder step (next is {step})")
        else:
            out["node_type_id"] = step
            changes.append(f"worker node type {old_node} -> {step}")
            if old.get("driver_node_type_id") == old_node:
                out["driver_node_type_id"] = step
                changes.append(f"driver {old_node} -> {step}")

    old_driver = _driver_of(old)
    want_driver = proposed.get("driver_node_type_id")
    if want_driver is not None and want_driver not in (old.get("driver_node_type_id"), _driver_of(out)):
        step = next_node(old_driver, ladder)
        if pooled:
            rejected.append("driver_node_type_id: the cluster takes its nodes from an instance pool")
        elif step is None:
            rejected.append(f"driver_node_type_id: {old_driver} has no next step in TRIAGE_NODE_TYPE_LADDER")
        elif want_driver != step:
            rejected.append(f"driver_node_type_id: {old_driver} -> {want_driver} is not one ladder step "
                            f"(next is {step})")
        else:
            out["driver_node_type_id"] = step
            changes.append(f"driver {old_driver} -> {step}")

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
        changes.append(f"{key} {before if before is not None else 'unset'} -> {after}")
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


def _size_times(value: str, factor: float) -> str | None:
    """'4g' x 2 -> '8g'; None for '0' (unlimited) or a value that is not a size."""
    m = _SIZE.match(str(value))
    if not m:
        return None
    number, unit = float(m.group(1)), (m.group(2) or "b").lower()
    if number <= 0:
        return None
    scaled = number * factor
    while unit != "t" and scaled >= 1024 and scaled % 1024 == 0:
        scaled, unit = scaled / 1024, _UNITS[_UNITS.index(unit) + 1]
    text = f"{scaled:.0f}" if float(scaled).is_integer() else f"{scaled:g}"
    return f"{text}{'' if unit == 'b' else unit}"


def _propose(spec: Mapping[str, Any], params: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The resize the decision asks for, before bounds."""
    proposed: dict[str, Any] = {}
    ladder = tuple(settings.node_type_ladder)
    knob = params.get("knob")
    wants_workers = knob in (None, "executors") or any(
        params.get(k) is not None for k in ("num_workers", "max_workers", "num_workers_factor"))
    if wants_workers and isinstance(spec.get("autoscale"), Mapping):
        cur = as_int(spec["autoscale"].get("max_workers")) or 0
        proposed["autoscale"] = {**dict(spec["autoscale"]),
                                 "max_workers": _wanted_workers(cur, params, "max_workers", "num_workers")}
    elif wants_workers and "num_workers" in spec:
        cur = as_int(spec.get("num_workers")) or 0
        proposed["num_workers"] = _wanted_workers(cur, params, "num_workers")
    node = params.get("node_type_id") or params.get("node_type")
    if node is None:
        step = as_int(params.get("node_type_step"))
        if (step is not None and step >= 1) or not params:
            node = next_node(spec.get("node_type_id"), ladder)
    if node:
        proposed["node_type_id"] = node
    driver_step = as_int(params.get("driver_node_type_step"))
    if params.get("driver_node_type_id"):
        proposed["driver_node_type_id"] = params["driver_node_type_id"]
    elif driver_step is not None and driver_step >= 1:
        step = next_node(_driver_of(spec), ladder)
        if step:
            proposed["driver_node_type_id"] = step
    conf = dict(params["spark_conf"]) if isinstance(params.get("spark_conf"), Mapping) else {}
    factor = params.get("driver_max_result_size_factor")
    if factor is not None and MAX_RESULT_SIZE_KEY not in conf:
        try:
            factor_f = min(2.0, float(factor))
        except (TypeError, ValueError):
            factor_f = 0.0
        current = (spec.get("spark_conf") or {}).get(MAX_RESULT_SIZE_KEY) \
            or params.get("driver_max_result_size_seen") or DEFAULT_MAX_RESULT_SIZE
        bigger = _size_times(str(current), factor_f) if factor_f > 1 else None
        if bigger:
            conf[MAX_RESULT_SIZE_KEY] = bigger
    if conf:
        proposed["spark_conf"] = {**dict(spec.get("spark_conf") or {}), **conf}
    return proposed


def resize_cluster(spec: Mapping[str, Any], params: Mapping[str, Any],
                   settings: Settings) -> tuple[dict[str, Any], list[str], list[str]]:
    """The bounded resize of ``spec`` that ``params`` ask for: ``(cluster, changes, rejected)``.
    On the executors' knob, when the workers are already at their bound, the worker node type
    goes one ladder step up instead."""
    if params.get("knob") == "driver":
        # where the failure hit is firm evidence: more workers cannot help the driver, whoever asks
        asked = [k for k in ("num_workers", "max_workers", "num_workers_factor") if params.get(k) is not None]
        params = {k: v for k, v in params.items() if k not in asked}
    else:
        asked = []
    new, changes, rejected = bound_cluster_change(spec, _propose(spec, params, settings), settings)
    rejected = [f"{k}: the failure hit the driver; more workers cannot help it" for k in asked] + rejected
    if not changes and params.get("knob") == "executors" and params.get("node_type_step") is None:
        again = {k: v for k, v in params.items() if k not in ("num_workers", "max_workers", "num_workers_factor")}
        new2, changes2, rejected2 = bound_cluster_change(
            spec, _propose(spec, {**again, "knob": "disk", "node_type_step": 1}, settings), settings)
        if changes2:
            return new2, changes2, rejected + rejected2
    return new, changes, rejected
