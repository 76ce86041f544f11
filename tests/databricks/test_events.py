"""Cluster events: read for a failed task's job cluster only when they can change the decision, one
call per cluster, recorded in the snapshot (replay stays offline) and used as evidence. The fake
workspace serves POST /api/2.1/clusters/events over real HTTP."""

import json

import pytest

from shared.config import Settings
from shared.decide.classify import classify
from shared.errors import SnapshotError
from shared.snapshot import parse_snapshot
from shared.triage import triage_run
from tests.helpers import make_snapshot

SHADOW = Settings.from_env({"TRIAGE_MODE": "shadow"})
CLUSTER = "0707-101010-abcd1234"


def _doc(error, events=None, *, code="RUN_EXECUTION_ERROR", type_="CLIENT_ERROR"):
    doc = make_snapshot(error, code=code, type_=type_).to_json()
    task = doc["run"]["tasks"][0]
    task["cluster_instance"] = {"cluster_id": CLUSTER, "spark_context_id": "1"}
    task["start_time"], task["end_time"] = 1_770_000_000_000, 1_770_000_600_000
    doc["history"] = {}
    if events is not None:
        doc["cluster_events"] = {CLUSTER: {"events": events}}
    return doc


def _event(type_, reason=None, ts=1_770_000_500_000):
    e = {"cluster_id": CLUSTER, "timestamp": ts, "type": type_, "details": {}}
    if reason:
        e["details"]["reason"] = {"code": reason, "type": "CLOUD_FAILURE", "parameters": {"instance_id": "i-1"}}
    return e


def test_events_read_when_the_rules_are_unsure_and_decide(fake_databricks, client, store):
    # The text says only that the driver went away; the cluster's events say the spot node was reclaimed.
    doc = _doc("Spark error: the Python process exited", [_event("RUNNING"), _event("NODES_LOST"),
                                                           _event("TERMINATING", "SPOT_INSTANCE_TERMINATION")])
    run_id = fake_databricks.load(doc)
    result = triage_run(run_id, SHADOW, client=client, store=store, use_llm=False)
    calls = fake_databricks.requests_to("/api/2.1/clusters/events", "POST")
    assert len(calls) == 1 and calls[0].body["cluster_id"] == CLUSTER
    assert calls[0].body["order"] == "DESC" and "NODES_LOST" in calls[0].body["event_types"]
    rec = result.record
    assert (rec.category, rec.action) == ("INFRASTRUCTURE", "RETRY")
    assert "cluster event SPOT_INSTANCE_TERMINATION" in rec.decision["evidence"]


def test_events_not_read_when_the_rules_are_firm(fake_databricks, client, store):
    doc = _doc("AnalysisException: [INSUFFICIENT_PERMISSIONS] Insufficient privileges. SQLSTATE: 42501",
               [_event("DRIVER_NOT_RESPONDING")])
    run_id = fake_databricks.load(doc)
    result = triage_run(run_id, SHADOW, client=client, store=store, use_llm=False)
    assert result.record.category == "PERMISSION"
    assert fake_databricks.requests_to("/api/2.1/clusters/events") == []


def test_events_read_failure_is_noted_not_fatal(fake_databricks, client, store):
    doc = _doc("java.lang.OutOfMemoryError: Java heap space")      # RESOURCE: events could say more
    run_id = fake_databricks.load(doc)                             # ...but the cluster is unknown to the API
    result = triage_run(run_id, SHADOW, client=client, store=store, use_llm=False)
    assert result.record.category == "RESOURCE"
    assert len(fake_databricks.requests_to("/api/2.1/clusters/events")) == 1


def test_events_outside_the_task_window_are_ignored():
    late = _event("TERMINATING", "INIT_SCRIPT_FAILURE", ts=1_770_000_600_000 + 3_600_000)
    snap = parse_snapshot(_doc("Spark error: the Python process exited", [late]))
    assert not [e for e in classify(snap).evidence if e.kind.value == "cluster_event"]


def test_events_driver_not_responding_is_resource():
    snap = parse_snapshot(_doc("Spark error: the Python process exited", [_event("DRIVER_NOT_RESPONDING")]))
    c = classify(snap)
    assert c.category.value == "RESOURCE" and c.evidence[0].rule_id == "event.driver-not-responding"


def test_events_snapshot_round_trip_and_bad_section():
    doc = _doc("x", [_event("METASTORE_DOWN")])
    snap = parse_snapshot(doc)
    assert snap.to_json()["cluster_events"][CLUSTER]["events"][0]["type"] == "METASTORE_DOWN"
    assert parse_snapshot(json.loads(json.dumps(snap.to_json()))).cluster_events == snap.cluster_events
    for bad in ([], {CLUSTER: []}, {CLUSTER: {"events": "no"}}):
        with pytest.raises(SnapshotError, match="cluster_events"):
            parse_snapshot({**doc, "cluster_events": bad})


def test_events_fake_workspace_pages_filters_and_orders(fake_databricks, client):
    events = [_event("RUNNING", ts=1), _event("NODES_LOST", ts=3), _event("DBFS_DOWN", ts=2)]
    fake_databricks.load(_doc("x", events))
    newest = client.get_cluster_events(CLUSTER, limit=2)
    assert [e["type"] for e in newest["events"]] == ["NODES_LOST", "DBFS_DOWN"] and newest["total_count"] == 3
    assert newest["next_page"]["offset"] == 2
    only = client.get_cluster_events(CLUSTER, event_types=["DBFS_DOWN"])
    assert [e["type"] for e in only["events"]] == ["DBFS_DOWN"]
    from shared.errors import DatabricksError
    with pytest.raises(DatabricksError, match="does not exist"):
        client.get_cluster_events("no-such-cluster")
