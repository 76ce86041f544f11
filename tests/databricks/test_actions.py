"""shared.databricks.actions: planning (pure) and executing against the fake workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

import shared.databricks.actions as actions
from shared.notify import NullNotifier
from shared.databricks.actions import (
    ActionPlan,
    backoff_seconds,
    bound_cluster_change,
    effective_decision,
    execute,
    plan_action,
)
from shared.databricks.capture import lineage_of
from shared.config import Settings
from shared.databricks import DatabricksClient, PatCredential, RetryPolicy
from shared.errors import DatabricksConflict
from shared.models import Action, Category, Decision
from shared.snapshot import load_snapshot, parse_snapshot
from demo.workspace import make_snapshot

CORPUS = Path(__file__).parents[1] / "corpus" / "dev"
LADDER = "Standard_DS3_v2,Standard_DS4_v2,Standard_DS5_v2"
NOW = 1_700_000_000_000


def cfg(**env) -> Settings:
    return Settings.from_env({k: str(v) for k, v in env.items()})


def decide(action: Action, category: Category = Category.RESOURCE, **kw) -> Decision:
    return Decision(category=category, action=action, confidence=0.9, decided_by="rules", reason="test", **kw)


def snap(doc) -> "actions.Snapshot":
    return parse_snapshot(doc)


def three_tasks(**kw):
    return make_snapshot(run_id=3000, tasks=[
        {"task_key": "extract"},
        {"task_key": "transform", "result": "FAILED", "depends_on": ["extract"]},
        {"task_key": "load", "result": "UPSTREAM_FAILED", "depends_on": ["transform"]},
    ], **kw)


def cluster(**kw):
    return {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", **kw}


def submit_body(plan: ActionPlan) -> dict:
    assert plan.kind == "submit"
    assert plan.request["method"] == "POST" and plan.request["path"] == "/api/2.2/jobs/runs/submit"
    return plan.request["body"]


@pytest.fixture
def client(fake_databricks):
    c = DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token),
                         retry=RetryPolicy(backoff_base_s=0, max_attempts=2))
    yield c
    c.close()


# --- no request ---------------------------------------------------------------------------------

@pytest.mark.parametrize("action, kind, notify", [
    (Action.IGNORE, "none", ""),
    (Action.SEND_EMAIL, "notify", "owner"),
    (Action.ESCALATE, "notify", "escalation"),
])
def test_plan_action_without_request(action, kind, notify):
    plan = plan_action(snap(three_tasks()), decide(action), cfg(), now_ms=NOW)
    assert (plan.action, plan.kind, plan.notify, plan.requests, plan.not_before) == (action, kind, notify, (), NOW)
    assert plan.decision_key == "3000-0" and plan.run_id == 3000


# --- RETRY --------------------------------------------------------------------------------------

def test_plan_action_retry_repairs_all_failed_tasks_after_backoff():
    plan = plan_action(snap(three_tasks()), decide(Action.RETRY, Category.TIMEOUT), cfg(), now_ms=NOW)
    assert plan.kind == "repair"
    assert plan.request == {"method": "POST", "path": "/api/2.2/jobs/runs/repair",
                            "body": {"run_id": 3000, "rerun_all_failed_tasks": True}}
    assert plan.not_before == NOW + 60_000


def test_plan_action_retry_carries_latest_repair_id():
    plan = plan_action(snap(three_tasks(repair_ids=(41, 42))), decide(Action.RETRY, Category.NETWORK), cfg(),
                       now_ms=NOW)
    assert plan.request["body"]["latest_repair_id"] == 42
    assert plan.decision_key == "3000-2"


@pytest.mark.parametrize("category, prior, seconds", [
    (Category.TIMEOUT, 0, 60), (Category.NETWORK, 0, 60), (Category.CONCURRENCY, 0, 120),
    (Category.INFRASTRUCTURE, 0, 300), (Category.RESOURCE, 0, 0), (Category.TIMEOUT, 2, 240),
    (Category.INFRASTRUCTURE, 9, 3600), (Category.UNKNOWN, 0, 60), ("NOT_A_CATEGORY", 0, 60),
])
def test_backoff_seconds_table(category, prior, seconds):
    assert backoff_seconds(category, prior) == seconds


def test_plan_action_retry_backoff_grows_with_repairs():
    plan = plan_action(snap(three_tasks(repair_ids=(1,))), decide(Action.RETRY, Category.TIMEOUT), cfg(),
                       now_ms=NOW)
    assert plan.not_before == NOW + 120_000


# --- RETRY_WITH_NEW_PARAMS: submit --------------------------------------------------------------

def test_plan_action_resize_submits_failed_task_and_dependents():
    plan = plan_action(snap(three_tasks()), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW)
    body = submit_body(plan)
    assert [t["task_key"] for t in body["tasks"]] == ["transform", "load"]
    transform, load = body["tasks"]
    assert "depends_on" not in transform                      # extract is not in the submission
    assert load["depends_on"] == [{"task_key": "transform"}]
    for t in body["tasks"]:
        assert "job_cluster_key" not in t and "run_id" not in t and "state" not in t
        assert t["new_cluster"]["num_workers"] == 4
        assert t["notebook_task"]["notebook_path"]
    assert body["idempotency_token"] == "3000-0"
    assert "run 3000" in body["run_name"] and lineage_of({"run_id": 1, "run_name": body["run_name"]}) == "3000"
    assert plan.changes == ("job cluster main: workers 2 -> 4",)
    assert plan.not_before == NOW      # RESOURCE: no back-off


def test_plan_action_resize_caps_workers_at_ceiling():
    doc = three_tasks(job_clusters=[{"job_cluster_key": "main", "new_cluster": cluster(num_workers=12)}])
    body = submit_body(plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(TRIAGE_MAX_WORKERS=16),
                                   now_ms=NOW))
    assert body["tasks"][0]["new_cluster"]["num_workers"] == 16


def test_plan_action_resize_doubles_autoscale_max_only():
    doc = three_tasks(job_clusters=[{"job_cluster_key": "main",
                                     "new_cluster": cluster(autoscale={"min_workers": 2, "max_workers": 6})}])
    body = submit_body(plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW))
    assert body["tasks"][0]["new_cluster"]["autoscale"] == {"min_workers": 2, "max_workers": 12}
    assert "num_workers" not in body["tasks"][0]["new_cluster"]


def test_plan_action_resize_steps_node_type_and_equal_driver():
    doc = three_tasks(job_clusters=[{"job_cluster_key": "main", "new_cluster": cluster(
        num_workers=2, driver_node_type_id="Standard_DS3_v2")}])
    plan = plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(TRIAGE_NODE_TYPE_LADDER=LADDER), now_ms=NOW)
    nc = submit_body(plan)["tasks"][0]["new_cluster"]
    assert nc["node_type_id"] == "Standard_DS4_v2" and nc["driver_node_type_id"] == "Standard_DS4_v2"


def test_plan_action_resize_keeps_a_different_driver_type():
    doc = three_tasks(job_clusters=[{"job_cluster_key": "main", "new_cluster": cluster(
        num_workers=2, driver_node_type_id="Standard_E8_v3")}])
    plan = plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(TRIAGE_NODE_TYPE_LADDER=LADDER), now_ms=NOW)
    nc = submit_body(plan)["tasks"][0]["new_cluster"]
    assert nc["node_type_id"] == "Standard_DS4_v2" and nc["driver_node_type_id"] == "Standard_E8_v3"


def test_plan_action_resize_leaves_node_type_outside_the_ladder():
    doc = three_tasks(job_clusters=[{"job_cluster_key": "main", "new_cluster": cluster(
        num_workers=2, node_type_id="Standard_L8s")}])
    plan = plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(TRIAGE_NODE_TYPE_LADDER=LADDER), now_ms=NOW)
    assert submit_body(plan)["tasks"][0]["new_cluster"]["node_type_id"] == "Standard_L8s"


def test_plan_action_resize_at_ceiling_falls_back_to_email():
    doc = three_tasks(job_clusters=[{"job_cluster_key": "main", "new_cluster": cluster(
        num_workers=16, node_type_id="Standard_DS5_v2")}])
    plan = plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(TRIAGE_NODE_TYPE_LADDER=LADDER), now_ms=NOW)
    assert (plan.action, plan.kind, plan.notify, plan.requests) == (Action.SEND_EMAIL, "notify", "owner", ())
    assert "TRIAGE_MAX_WORKERS" in plan.fallback_reason and plan.recommendation
    assert plan.requested is Action.RETRY_WITH_NEW_PARAMS


def test_plan_action_resize_on_existing_cluster_falls_back_to_email():
    doc = make_snapshot(run_id=3600, tasks=[{"task_key": "adhoc", "result": "FAILED",
                                             "existing_cluster_id": "0101-123456-abcdef"}])
    plan = plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW)
    assert plan.action is Action.SEND_EMAIL and plan.requests == ()
    assert "all-purpose" in plan.fallback_reason and "0101-123456-abcdef" in plan.fallback_reason
    assert "adhoc" in plan.recommendation


def test_plan_action_resize_serverless_repairs_performance_optimized():
    doc = make_snapshot(run_id=3700, tasks=[{"task_key": "sl", "result": "FAILED", "serverless": True}],
                        repair_ids=(5,))
    plan = plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW)
    assert plan.kind == "repair" and plan.action is Action.RETRY_WITH_NEW_PARAMS
    assert plan.request["body"] == {"run_id": 3700, "rerun_all_failed_tasks": True, "latest_repair_id": 5,
                                    "performance_target": "PERFORMANCE_OPTIMIZED"}


def test_plan_action_resize_inline_new_cluster():
    doc = make_snapshot(run_id=3800, tasks=[{"task_key": "a", "result": "FAILED",
                                             "new_cluster": cluster(num_workers=3)}])
    body = submit_body(plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW))
    assert body["tasks"][0]["new_cluster"]["num_workers"] == 6


def test_plan_action_resize_only_the_undersized_cluster():
    doc = make_snapshot(run_id=3900, tasks=[
        {"task_key": "big", "result": "FAILED", "job_cluster_key": "heavy"},
        {"task_key": "report", "result": "UPSTREAM_FAILED", "depends_on": ["big"], "job_cluster_key": "light"},
        {"task_key": "audit", "result": "UPSTREAM_FAILED", "depends_on": ["report"],
         "existing_cluster_id": "0101-shared"},
    ], job_clusters=[{"job_cluster_key": "heavy", "new_cluster": cluster(num_workers=4)},
                     {"job_cluster_key": "light", "new_cluster": cluster(num_workers=1)}])
    body = submit_body(plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW))
    by_key = {t["task_key"]: t for t in body["tasks"]}
    assert by_key["big"]["new_cluster"]["num_workers"] == 8
    assert by_key["report"]["new_cluster"]["num_workers"] == 1
    assert by_key["audit"]["existing_cluster_id"] == "0101-shared"


def test_plan_action_resize_uses_job_settings_clusters_when_the_run_lacks_them():
    doc = three_tasks(job_clusters=[], job_settings={"job_clusters": [
        {"job_cluster_key": "main", "new_cluster": cluster(num_workers=5)}]})
    body = submit_body(plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW))
    assert body["tasks"][0]["new_cluster"]["num_workers"] == 10


def test_plan_action_resize_unknown_job_cluster_falls_back():
    doc = three_tasks(job_clusters=[])
    plan = plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW)
    assert plan.action is Action.SEND_EMAIL and "could not be determined" in plan.fallback_reason


def test_plan_action_resize_legacy_single_task_run():
    doc = make_snapshot(run_id=4000, legacy=True)
    body = submit_body(plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW))
    [task] = body["tasks"]
    assert task["task_key"] == "main" and task["new_cluster"]["num_workers"] == 4
    assert task["notebook_task"] == {"notebook_path": "/Workspace/etl/main"}


def test_plan_action_resize_applies_bounded_suggestions():
    doc = three_tasks(job_clusters=[{"job_cluster_key": "main", "new_cluster": cluster(
        num_workers=4, spark_conf={"spark.sql.shuffle.partitions": "200", "spark.other": "x"})}])
    params = {"num_workers": 100, "node_type_id": "Standard_DS5_v2",
              "spark_conf": {"spark.sql.shuffle.partitions": 400, "spark.executor.cores": "8", "spark.other": "y"}}
    plan = plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS, params=params),
                       cfg(TRIAGE_NODE_TYPE_LADDER=LADDER), now_ms=NOW)
    nc = submit_body(plan)["tasks"][0]["new_cluster"]
    assert nc["num_workers"] == 8                                  # x2, not 100
    assert nc["node_type_id"] == "Standard_DS3_v2"                 # two steps asked: refused
    assert nc["spark_conf"] == {"spark.sql.shuffle.partitions": "400", "spark.other": "x"}
    notes = " ".join(plan.notes)
    assert "spark.executor.cores" in notes and "spark.other" in notes and "not one ladder step" in notes


def test_plan_action_resize_idempotency_token_is_bounded():
    doc = three_tasks()
    s = snap(doc)
    assert len(actions._idempotency_token("x" * 100)) <= 64
    assert submit_body(plan_action(s, decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW))[
        "idempotency_token"] == s.decision_key


def test_plan_to_dict_is_json_serialisable():
    plan = plan_action(snap(three_tasks()), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW)
    d = json.loads(json.dumps(plan.to_dict()))
    assert d["action"] == "RETRY_WITH_NEW_PARAMS" and d["kind"] == "submit"
    assert d["requests"][0]["body"]["idempotency_token"] == "3000-0"


# --- bounds (policy invariant 3) ----------------------------------------------------------------

def test_bound_cluster_change_refuses_fields_outside_the_allow_list():
    old = cluster(num_workers=2, spark_version="15.4.x-scala2.12", custom_tags={"a": "b"})
    proposed = {**old, "spark_version": "16.0.x", "custom_tags": {}, "driver_node_type_id": "Standard_E64"}
    out, changes, rejected = bound_cluster_change(old, proposed, cfg())
    assert out == old and changes == []
    assert len(rejected) == 3


def test_bound_cluster_change_never_shrinks():
    out, changes, rejected = bound_cluster_change(cluster(num_workers=8), {"num_workers": 2}, cfg())
    assert out["num_workers"] == 8 and changes == [] and "shrink" in rejected[0]


def test_bound_cluster_change_single_node_cannot_double_workers():
    out, changes, _ = bound_cluster_change(cluster(num_workers=0), {"num_workers": 4}, cfg())
    assert out["num_workers"] == 0 and changes == []


def test_bound_cluster_change_instance_pool_keeps_node_type():
    old = cluster(num_workers=2, instance_pool_id="pool-1")
    out, _, rejected = bound_cluster_change(old, {"node_type_id": "Standard_DS4_v2"},
                                            cfg(TRIAGE_NODE_TYPE_LADDER=LADDER))
    assert out["node_type_id"] == "Standard_DS3_v2" and "instance pool" in rejected[0]


workers = st.integers(min_value=0, max_value=64)
nodes = st.sampled_from(["Standard_DS3_v2", "Standard_DS4_v2", "Standard_DS5_v2", "Standard_L8s", None])
conf_keys = st.sampled_from(["spark.sql.shuffle.partitions", "spark.driver.maxResultSize", "spark.other",
                             "spark.executor.cores"])


@hsettings(max_examples=300, deadline=None)
@given(old_workers=workers, autoscale=st.booleans(), old_node=nodes, want_workers=st.one_of(workers, st.text(max_size=3)),
       want_node=nodes, want_driver=nodes, conf=st.dictionaries(conf_keys, st.text(max_size=4), max_size=4),
       ceiling=st.integers(min_value=1, max_value=40))
def test_bound_cluster_change_invariants(old_workers, autoscale, old_node, want_workers, want_node, want_driver,
                                         conf, ceiling):
    s = cfg(TRIAGE_MAX_WORKERS=ceiling, TRIAGE_NODE_TYPE_LADDER=LADDER)
    old = {"spark_version": "15.4", "spark_conf": {"spark.other": "keep"}}
    if old_node:
        old["node_type_id"] = old_node
    if autoscale:
        old["autoscale"] = {"min_workers": 1, "max_workers": old_workers}
        proposed = {"autoscale": {"min_workers": 0, "max_workers": want_workers}}
    else:
        old["num_workers"] = old_workers
        proposed = {"num_workers": want_workers}
    proposed.update({"node_type_id": want_node, "driver_node_type_id": want_driver, "spark_conf": conf,
                     "spark_version": "99"})
    out, _, _ = bound_cluster_change(old, proposed, s)
    before = old["autoscale"]["max_workers"] if autoscale else old["num_workers"]
    after = out["autoscale"]["max_workers"] if autoscale else out["num_workers"]
    assert after == before or before < after <= min(2 * before, ceiling)
    if autoscale:
        assert out["autoscale"]["min_workers"] == 1
    ladder = LADDER.split(",")
    if out.get("node_type_id") != old.get("node_type_id"):
        assert ladder.index(out["node_type_id"]) == ladder.index(old["node_type_id"]) + 1
    # the driver: unset, following the worker type, or exactly one ladder step up from its old type
    driver = out.get("driver_node_type_id")
    assert driver in (None, out.get("node_type_id")) or ladder.index(driver) == ladder.index(old["node_type_id"]) + 1
    changed = {k for k in set(out["spark_conf"]) | set(old["spark_conf"])
               if out["spark_conf"].get(k) != old["spark_conf"].get(k)}
    assert changed <= set(s.spark_conf_allowlist)
    assert out["spark_version"] == "15.4"


# --- effective decision and notifier ------------------------------------------------------------

def test_effective_decision_after_fallback_carries_the_recommendation():
    doc = make_snapshot(run_id=3600, tasks=[{"task_key": "adhoc", "result": "FAILED", "existing_cluster_id": "c-1"}])
    d = decide(Action.RETRY_WITH_NEW_PARAMS, suggested_fix="Give it more memory.")
    plan = plan_action(snap(doc), d, cfg(), now_ms=NOW)
    eff = effective_decision(d, plan)
    assert eff.action is Action.SEND_EMAIL and d.action is Action.RETRY_WITH_NEW_PARAMS
    assert plan.recommendation in eff.suggested_fix and eff.suggested_fix.startswith("Give it more memory.")
    assert "RETRY_WITH_NEW_PARAMS -> SEND_EMAIL" in eff.notes[-1]


def test_effective_decision_without_fallback_is_the_decision():
    d = decide(Action.RETRY, Category.TIMEOUT)
    assert effective_decision(d, plan_action(snap(three_tasks()), d, cfg(), now_ms=NOW)) is d


def test_null_notifier_reports_not_configured():
    s = snap(three_tasks())
    assert NullNotifier().notify(s, decide(Action.SEND_EMAIL), None) == {"status": "not configured"}


# --- execute against the fake workspace ---------------------------------------------------------

def test_execute_repair(fake_databricks, client):
    fake_databricks.load(three_tasks(repair_ids=(41,)))
    plan = plan_action(snap(three_tasks(repair_ids=(41,))), decide(Action.RETRY, Category.TIMEOUT), cfg(), now_ms=NOW)
    result = execute(plan, client)
    assert result == {"repair_id": fake_databricks.run(3000)["repair_history"][-1]["id"]}
    [write] = fake_databricks.writes
    assert write.body == {"run_id": 3000, "rerun_all_failed_tasks": True, "latest_repair_id": 41}


def test_execute_submit_is_accepted_and_idempotent(fake_databricks, client):
    s = snap(three_tasks())
    plan = plan_action(s, decide(Action.RETRY_WITH_NEW_PARAMS), cfg(TRIAGE_NODE_TYPE_LADDER=LADDER), now_ms=NOW)
    first = execute(plan, client)
    second = execute(plan, client)
    assert first == second and list(fake_databricks.submitted) == [first["run_id"]]
    assert [r.status for r in fake_databricks.writes] == [200, 200]
    run = fake_databricks.run(first["run_id"])
    assert lineage_of(run) == "3000"


def test_execute_serverless_repair(fake_databricks, client):
    doc = make_snapshot(run_id=3700, tasks=[{"task_key": "sl", "result": "FAILED", "serverless": True}])
    fake_databricks.load(doc)
    result = execute(plan_action(snap(doc), decide(Action.RETRY_WITH_NEW_PARAMS), cfg(), now_ms=NOW), client)
    assert "repair_id" in result
    assert fake_databricks.writes[0].body["performance_target"] == "PERFORMANCE_OPTIMIZED"


def test_execute_stale_latest_repair_id_is_conflict(fake_databricks, client):
    fake_databricks.load(three_tasks())
    plan = plan_action(snap(three_tasks()), decide(Action.RETRY, Category.TIMEOUT), cfg(), now_ms=NOW)
    client.repair_run({"run_id": 3000, "rerun_all_failed_tasks": True})   # someone else repaired first
    fake_databricks.finish_run(3000, "FAILED")
    with pytest.raises(DatabricksConflict, match="changed since the snapshot"):
        execute(plan, client)
    assert len(fake_databricks.writes) == 2


def test_execute_repair_of_a_running_run_is_conflict(fake_databricks, client):
    fake_databricks.load(three_tasks())
    plan = plan_action(snap(three_tasks()), decide(Action.RETRY, Category.TIMEOUT), cfg(), now_ms=NOW)
    execute(plan, client)
    with pytest.raises(DatabricksConflict):
        execute(plan, client)
    assert len([h for h in fake_databricks.run(3000)["repair_history"] if h["type"] == "REPAIR"]) == 1


@pytest.mark.parametrize("action", [Action.IGNORE, Action.SEND_EMAIL, Action.ESCALATE])
def test_execute_sends_nothing_for_notify_and_ignore(fake_databricks, client, action):
    plan = plan_action(snap(three_tasks()), decide(action), cfg(), now_ms=NOW)
    assert execute(plan, client) == {"status": "nothing to send"}
    assert fake_databricks.requests == []


def test_execute_every_corpus_retry_is_accepted_by_the_workspace(fake_databricks, client):
    s = cfg(TRIAGE_NODE_TYPE_LADDER=LADDER)
    for path in sorted(CORPUS.glob("*.json")):
        original = load_snapshot(path)
        for action in (Action.RETRY, Action.RETRY_WITH_NEW_PARAMS):
            fake_databricks.load(path)            # a fresh, failed run each time
            plan = plan_action(original, decide(action, Category.RESOURCE), s, now_ms=NOW)
            if not plan.sends:
                continue
            result = execute(plan, client)
            assert result.get("repair_id") or result.get("run_id"), path.name
    assert all(r.status == 200 for r in fake_databricks.writes)
    assert len(fake_databricks.submitted) > 0


@pytest.mark.parametrize("params, workers, node", [
    ({}, 4, "Standard_DS4_v2"),                                          # no suggestions: x2 and one step
    ({"num_workers_factor": 2}, 4, "Standard_DS3_v2"),                   # the rules' policy: workers only
    ({"num_workers_factor": 2, "node_type_step": 1}, 4, "Standard_DS4_v2"),
    ({"num_workers_factor": 1.5}, 3, "Standard_DS3_v2"),
    ({"num_workers": 3}, 3, "Standard_DS3_v2"),
    ({"node_type": "Standard_DS4_v2"}, 4, "Standard_DS4_v2"),           # the LLM's key name
    ({"node_type_step": 0}, 4, "Standard_DS3_v2"),
])
def test_plan_action_resize_reads_policy_and_llm_suggestions(params, workers, node):
    plan = plan_action(snap(three_tasks()), decide(Action.RETRY_WITH_NEW_PARAMS, params=params),
                       cfg(TRIAGE_NODE_TYPE_LADDER=LADDER), now_ms=NOW)
    nc = submit_body(plan)["tasks"][0]["new_cluster"]
    assert (nc["num_workers"], nc["node_type_id"]) == (workers, node)
