"""Cluster events: what the platform saw happen to a failed task's job cluster.

For a failed task that ran on a job cluster, ``POST /api/2.1/clusters/events`` for its
``cluster_instance.cluster_id`` tells what the error text often does not: the driver stopped
answering (``DRIVER_NOT_RESPONDING``), nodes were lost (``NODES_LOST``, spot reclaims), an init
script failed, DBFS or the metastore went down, and the termination reason code with its
parameters. The triage reads them only when they can change the decision — the rules are unsure, or
the failure looks like infrastructure or resources — with one call per cluster and at most
``MAX_CLUSTERS`` per run (the API budget). What they said is kept in the snapshot's optional
``cluster_events`` section (so a replay stays offline) and becomes evidence for the rules
(kind ``cluster_event`` in ``shared.decide.rules``). A failed read is recorded in
``history.capture_errors`` and never fails the triage.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shared.errors import DatabricksError
from shared.models import Category, Classification

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.databricks.client import DatabricksClient
    from shared.snapshot import Snapshot

__all__ = ["EVENT_TYPES", "MAX_CLUSTERS", "EVENTS_PER_CLUSTER", "clusters_to_read", "with_cluster_events"]

log = logging.getLogger(__name__)

# The event types that can say why a task failed (the rest — RUNNING, RESIZING, ... — cannot).
EVENT_TYPES = ("TERMINATING", "DRIVER_NOT_RESPONDING", "DRIVER_UNAVAILABLE", "NODES_LOST", "DBFS_DOWN",
               "METASTORE_DOWN", "INIT_SCRIPTS_FINISHED", "SPARK_EXCEPTION", "ADD_NODES_FAILED",
               "FAILED_TO_EXPAND_DISK", "DECOMMISSION_STARTED", "NODE_EXCLUDED_DECOMMISSIONED")
MAX_CLUSTERS = 2          # clusters read per run, at most (one call each)
EVENTS_PER_CLUSTER = 50   # newest first: the failure is at the end of the cluster's life
_LOOKS_LIKE_PLATFORM = frozenset({Category.INFRASTRUCTURE, Category.RESOURCE, Category.UNKNOWN})


def clusters_to_read(snapshot: Snapshot, classification: Classification, settings: Settings) -> list[str]:
    """The job clusters of the failed tasks whose events can change this decision: the rules are
    unsure, or the failure looks like infrastructure or resources. Nothing already in the snapshot."""
    unsure = classification.confidence < float(settings.llm_min_rule_confidence)
    if not unsure and classification.category not in _LOOKS_LIKE_PLATFORM:
        return []
    ids: list[str] = []
    for task in snapshot.failed_tasks:
        cid = task.cluster_id
        if task.state.upstream or not cid or task.compute not in ("job_cluster", "new_cluster"):
            continue
        if cid not in ids and cid not in snapshot.cluster_events:
            ids.append(cid)
    return ids[:MAX_CLUSTERS]


def with_cluster_events(client: DatabricksClient, snapshot: Snapshot, cluster_ids: list[str]) -> Snapshot:
    """The snapshot with the events of ``cluster_ids`` (one call each); a failed read is noted."""
    if not cluster_ids:
        return snapshot
    events: dict[str, Any] = dict(snapshot.cluster_events)
    notes: list[dict[str, Any]] = []
    for cid in cluster_ids:
        try:
            answer = client.get_cluster_events(cid, event_types=EVENT_TYPES, limit=EVENTS_PER_CLUSTER)
        except DatabricksError as exc:
            log.warning("clusters/events for cluster %s failed: %s", cid, exc)
            notes.append({"call": "clusters/events", "cluster_id": cid, "status": exc.status,
                          "error_code": exc.error_code, "error": type(exc).__name__, "message": exc.message})
            continue
        kept = [e for e in (answer.get("events") or []) if isinstance(e, dict)]
        events[cid] = {"events": kept}
    history = dict(snapshot.history)
    if notes:
        history["capture_errors"] = [*(history.get("capture_errors") or []), *notes]
    return replace(snapshot, cluster_events=events, history=history)
