"""Resize in place (job tag triage.resize=update-job): jobs/update, one repair, and the job put back
exactly as it was by the sweep once the repaired tasks have started -- through the production
client against the fake workspace, with the pending restore in the store."""

from __future__ import annotations

import copy

import pytest

from demo.workspace import make_snapshot
from shared.config import Settings
from shared.app.sweep import sweep
from shared.databricks.actions import execute, plan_action
from shared.databricks.inplace import STALE_UPDATING_S, execute_in_place, pending_restores, restore_due
from shared.errors import ResizeRefused
from shared.models import Action, Category, Decision
from shared.snapshot import parse_snapshot
from shared.triage import new_record, triage_run

LADDER = "Standard_E8ds_v5,Standard_E16ds_v5,Standard_E32ds_v5"
NOW_S = 1_800_000_000.0
OOM = "ExecutorLostFailure (executor 4 exited caused by one of the running tasks) Reason: Container killed"


class Recorder:
    def __init__(self):
        self.calls = []

    def notify(self, snapshot, decision, record):
        self.calls.append((record.decision_key, decision.action.value, decision.reason, decision.suggested_fix))
        return {"status": "sent"}


def cfg(**env) -> Settings:
    return Settings.from_env({"TRIAGE_NODE_TYPE_LADDER": LADDER, "TRIAGE_MAX_WORKERS": "16", "TRIAGE_MODE": "act",
                              **{k: str(v) for k, v in env.items()}})


def tagged_job(run_id=7100, error=OOM):
    clusters = [{"job_cluster_key": "etl", "new_cluster": {"spark_version": "15.4.x-scala2.12",
                                                           "node_type_id": "Standard_E8ds_v5", "num_workers": 4,
                                                           "custom_tags": {"team": "data"}}},
                {"job_cluster_key": "small", "new_cluster": {"spark_version": "15.4.x-scala2.12",
                                                             "node_type_id": "Standard_E8ds_v5", "num_workers": 1}}]
    tasks = [{"task_key": "extract", "job_cluster_key": "small"},
             {"task_key": "transform", "result": "FAILED", "depends_on": ["extract"], "job_cluster_key": "etl"},
             {"task_key": "load", "result": "UPSTREAM_FAILED", "depends_on": ["transform"], "job_cluster_key": "small"}]
    doc = make_snapshot(run_id=run_id, tasks=tasks, job_clusters=clusters, error=error,
                        run_as={"service_principal_name": "8f0c1f52-3f7e-4d0e-9a7c-2b9d7d6c1e11"},
                        job_parameters={"run_date": "2026-11-30"},
                        job_settings={"tags": {"team": "data", "triage.resize": "update-job"},
                                      "job_clusters": copy.deepcopy(clusters),
                                      "tasks": [{"task_key": t["task_key"], "job_cluster_key": t["job_cluster_key"],
                                                 "notebook_task": {"notebook_path": f"/etl/{t['task_key']}"}}
                                                for t in tasks]})
    return doc


def resize() -> Decision:
    return Decision(Category.RESOURCE, Action.RETRY_WITH_NEW_PARAMS, 0.9, "rules", "t",
                    params={"knob": "executors", "num_workers_factor": 2})


def test_update_then_one_repair_then_the_clusters_put_back_exactly_and_no_one_time_run(
        fake_databricks, client, store):
    """The issue's third check, end to end: triage (act) and then the sweep."""
    doc = tagged_job()
    fake_databricks.load(doc)
    before = fake_databricks.job(77)["settings"]
    result = triage_run(7100, cfg(), client=client, store=store, act_now=True, use_llm=False)
    assert (result.record.action, result.record.status) == ("RETRY_WITH_NEW_PARAMS", "acted")
    assert result.record.action_result["restore"] == "pending"
    assert [w.endpoint for w in fake_databricks.writes] == ["update", "runs/repair"]
    update, repair = fake_databricks.writes
    assert update.body == {"job_id": 77, "new_settings": {"job_clusters": [
        {**before["job_clusters"][0], "new_cluster": {**before["job_clusters"][0]["new_cluster"], "num_workers": 8}}]}}
    assert repair.body["rerun_all_failed_tasks"] and repair.body["job_parameters"] == {"run_date": "2026-11-30"}
    [launched] = fake_databricks.repairs           # the repair launched with the bigger cluster
    assert [c["new_cluster"]["num_workers"] for c in launched["job_clusters"]] == [8, 1]
    assert fake_databricks.submitted == {} and not fake_databricks.requests_to("runs/submit")
    assert list(pending_restores(store, client.host)) == ["77"]

    # the repaired tasks have not started yet: the sweep leaves the job bigger
    sweep(cfg(), clients_by_workspace={fake_databricks.url: client}, store=store, enqueue=lambda r: None)
    assert [w.endpoint for w in fake_databricks.writes] == ["update", "runs/repair"]

    fake_databricks.start_tasks(7100)
    sweep(cfg(), clients_by_workspace={fake_databricks.url: client}, store=store, enqueue=lambda r: None)
    assert [w.endpoint for w in fake_databricks.writes] == ["update", "runs/repair", "update"]
    assert fake_databricks.job(77)["settings"] == before            # exactly as it was
    assert pending_restores(store, client.host) == {}
    record = store.get(result.record.decision_key, "77")
    assert record.action_result["restore"]["status"] == "restored"
    assert record.action_result["restore"]["restored"] == ["etl"]


def test_shadow_mode_shows_the_update_and_the_repair_and_sends_nothing(fake_databricks, client, store):
    fake_databricks.load(tagged_job())
    result = triage_run(7100, cfg(TRIAGE_MODE="shadow"), client=client, store=store, use_llm=False)
    req = result.record.action_request
    assert req["kind"] == "update_repair"
    assert [r["path"] for r in req["requests"]] == ["/api/2.2/jobs/update", "/api/2.2/jobs/runs/repair"]
    assert req["changes"] == ["job cluster etl: workers 4 -> 8"]
    assert fake_databricks.writes == []


def test_someone_elses_edit_is_never_clobbered_and_the_owner_is_told(fake_databricks, client, store):
    doc = tagged_job()
    fake_databricks.load(doc)
    plan = plan_action(parse_snapshot(doc), resize(), cfg(), now_ms=0)
    execute(plan, client, store=store)
    fake_databricks.start_tasks(7100)
    edited = copy.deepcopy(fake_databricks.job(77)["settings"]["job_clusters"][0])
    edited["new_cluster"]["num_workers"] = 12                     # the owner resized it by hand meanwhile
    fake_databricks.edit_job(77, {"job_clusters": [edited]})
    store.claim(new_record(parse_snapshot(doc), resize(), cfg()))
    notifier = Recorder()
    [outcome] = restore_due(client, store, notifier)
    assert outcome["status"] == "edited since: not restored" and outcome["left_alone"] == ["job cluster etl"]
    assert [w.endpoint for w in fake_databricks.writes] == ["update", "runs/repair"]   # no third write
    assert fake_databricks.job(77)["settings"]["job_clusters"][0] == edited
    [(key, action, reason, fix)] = notifier.calls
    assert key == "7100-0-restore" and action == "SEND_EMAIL" and "workers 4 -> 8" in fix
    assert pending_restores(store, client.host) == {}


def test_a_job_changed_since_the_failure_is_not_updated(fake_databricks, client, store):
    doc = tagged_job()
    fake_databricks.load(doc)
    plan = plan_action(parse_snapshot(doc), resize(), cfg(), now_ms=0)
    other = copy.deepcopy(fake_databricks.job(77)["settings"]["job_clusters"][0])
    other["new_cluster"]["spark_version"] = "16.4.x-scala2.12"
    fake_databricks.edit_job(77, {"job_clusters": [other]})
    with pytest.raises(ResizeRefused, match="changed since the failure"):
        execute(plan, client, store=store)
    assert fake_databricks.writes == [] and pending_restores(store, client.host) == {}


def test_a_second_resize_waits_for_the_first_restore(fake_databricks, client, store):
    doc = tagged_job()
    fake_databricks.load(doc)
    execute(plan_action(parse_snapshot(doc), resize(), cfg(), now_ms=0), client, store=store)
    fake_databricks.finish_run(7100, "FAILED")
    again = parse_snapshot({**doc, "job": fake_databricks.job(77)})
    with pytest.raises(ResizeRefused, match="still waiting"):
        execute(plan_action(again, resize(), cfg(), now_ms=0), client, store=store)


class Crash(BaseException):
    """The process dies (not an error anyone handles)."""


def test_a_crash_between_update_and_repair_is_put_back_by_the_sweep(fake_databricks, client, store):
    doc = tagged_job()
    fake_databricks.load(doc)
    before = fake_databricks.job(77)["settings"]
    plan = plan_action(parse_snapshot(doc), resize(), cfg(), now_ms=0)

    def dies(client, body):
        raise Crash()

    with pytest.raises(Crash):
        execute_in_place(plan.requests, plan.restore, client, store, send_repair=dies, now_s=NOW_S)
    assert fake_databricks.job(77)["settings"] != before and pending_restores(store, client.host)["77"]["state"] == \
        "updating"
    assert restore_due(client, store, now_s=NOW_S + 5) == []                 # maybe still in flight elsewhere
    [outcome] = restore_due(client, store, now_s=NOW_S + STALE_UPDATING_S + 1)
    assert outcome["status"] == "restored" and fake_databricks.job(77)["settings"] == before
    assert not fake_databricks.requests_to("runs/repair")


def test_a_refused_repair_puts_the_job_back_at_once(fake_databricks, client, store):
    doc = tagged_job()
    fake_databricks.load(doc)
    before = fake_databricks.job(77)["settings"]
    plan = plan_action(parse_snapshot(doc), resize(), cfg(), now_ms=0)
    fake_databricks.inject("runs/repair", 403)
    with pytest.raises(Exception):
        execute(plan, client, store=store)
    assert [w.endpoint for w in fake_databricks.writes] == ["update", "runs/repair", "update"]
    assert fake_databricks.job(77)["settings"] == before and pending_restores(store, client.host) == {}


def test_driver_failure_in_place_changes_only_the_driver(fake_databricks, client, store):
    doc = tagged_job(error="Total size of serialized results of 88 tasks (4.1 GiB) is bigger than "
                           "spark.driver.maxResultSize (4.0 GiB)")
    fake_databricks.load(doc)
    result = triage_run(7100, cfg(), client=client, store=store, act_now=True, use_llm=False)
    [update] = fake_databricks.requests_to("update")
    [etl] = update.body["new_settings"]["job_clusters"]
    nc = etl["new_cluster"]
    assert nc["num_workers"] == 4 and nc["node_type_id"] == "Standard_E8ds_v5"
    assert nc["driver_node_type_id"] == "Standard_E16ds_v5"
    assert "job cluster etl: driver Standard_E8ds_v5 -> Standard_E16ds_v5" in result.record.action_request["changes"]


def test_the_store_keeps_no_job_inputs_and_the_conf_is_put_back_exactly(fake_databricks, client, store):
    doc = tagged_job(error="Total size of serialized results of 88 tasks (4.1 GiB) is bigger than "
                           "spark.driver.maxResultSize (4.0 GiB)")
    secret_env = "s3cr3t-value-in-env"
    for jc in doc["job"]["settings"]["job_clusters"] + doc["run"]["job_clusters"]:
        jc["new_cluster"]["spark_env_vars"] = {"API_TOKEN": secret_env}
        jc["new_cluster"]["spark_conf"] = {"spark.hadoop.secret.conf": "hidden-conf-value"}
    fake_databricks.load(doc)
    before = fake_databricks.job(77)["settings"]
    plan = plan_action(parse_snapshot(doc), Decision(Category.RESOURCE, Action.RETRY_WITH_NEW_PARAMS, 0.9, "rules",
                                                     "t", params={"knob": "driver", "driver_node_type_step": 1,
                                                                  "driver_max_result_size_factor": 2}),
                       cfg(), now_ms=0)
    execute(plan, client, store=store)
    kept = repr(store.state_get("resize_restore", client.host).value)
    assert secret_env not in kept and "hidden-conf-value" not in kept and "/etl/" not in kept
    during = fake_databricks.job(77)["settings"]["job_clusters"][0]["new_cluster"]
    assert during["spark_conf"] == {"spark.hadoop.secret.conf": "hidden-conf-value", "spark.driver.maxResultSize": "8g"}
    fake_databricks.start_tasks(7100)
    [outcome] = restore_due(client, store)
    assert outcome["status"] == "restored" and fake_databricks.job(77)["settings"] == before


def test_defaults_the_workspace_fills_in_do_not_count_as_an_edit(fake_databricks, client, store):
    doc = tagged_job()
    fake_databricks.load(doc)
    execute(plan_action(parse_snapshot(doc), resize(), cfg(), now_ms=0), client, store=store)
    filled = copy.deepcopy(fake_databricks.job(77)["settings"]["job_clusters"][0])
    filled["new_cluster"]["enable_elastic_disk"] = True           # as if the workspace normalised the spec
    fake_databricks.edit_job(77, {"job_clusters": [filled]})
    fake_databricks.finish_run(7100, "SUCCESS")
    [outcome] = restore_due(client, store)
    assert outcome["status"] == "restored"
    now = fake_databricks.job(77)["settings"]["job_clusters"][0]["new_cluster"]
    assert now["num_workers"] == 4 and now["enable_elastic_disk"] is True


def test_tasks_that_start_at_once_get_the_job_put_back_without_waiting_for_the_sweep(fake_databricks, client, store):
    fake_databricks.load(tagged_job())
    fake_databricks.start_repaired_tasks = True
    before = fake_databricks.job(77)["settings"]
    result = triage_run(7100, cfg(), client=client, store=store, act_now=True, use_llm=False)
    assert result.record.action_result["restore"] == "restored"
    assert store.get(result.record.decision_key, "77").status == "acted"
    assert [w.endpoint for w in fake_databricks.writes] == ["update", "runs/repair", "update"]
    assert fake_databricks.job(77)["settings"] == before and pending_restores(store, client.host) == {}
    assert fake_databricks.repairs[0]["job_clusters"][0]["new_cluster"]["num_workers"] == 8


def test_the_pending_restore_survives_a_crash_on_each_store_backend(fake_databricks, client, learning_store):
    """The pending restore lives in the store (SQLite and Table Storage): a process that dies after
    jobs/update leaves it, and a sweep on a fresh process puts the job back."""
    doc = tagged_job()
    fake_databricks.load(doc)
    before = fake_databricks.job(77)["settings"]
    plan = plan_action(parse_snapshot(doc), resize(), cfg(), now_ms=0)

    def dies(client, body):
        raise Crash()

    with pytest.raises(Crash):
        execute_in_place(plan.requests, plan.restore, client, learning_store, send_repair=dies, now_s=NOW_S)
    assert pending_restores(learning_store, client.host)["77"]["state"] == "updating"
    [outcome] = restore_due(client, learning_store, now_s=NOW_S + STALE_UPDATING_S + 1)
    assert outcome["status"] == "restored" and fake_databricks.job(77)["settings"] == before
    assert pending_restores(learning_store, client.host) == {}


def test_an_edit_to_the_task_since_the_failure_is_not_reverted_by_the_update(fake_databricks, client, store):
    """A task with its own cluster is replaced whole by jobs/update: the update must carry the task
    as the job has it now (the owner's later edit to its code or parameters kept), not as the
    snapshot saw it, and the repair must run the owner's current code."""
    cluster = {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_E8ds_v5", "num_workers": 4}
    tasks = [{"task_key": "transform", "result": "FAILED", "new_cluster": copy.deepcopy(cluster)}]
    doc = make_snapshot(run_id=7300, tasks=tasks, error=OOM,
                        run_as={"service_principal_name": "8f0c1f52-3f7e-4d0e-9a7c-2b9d7d6c1e11"},
                        job_settings={"tags": {"triage.resize": "update-job"},
                                      "tasks": [{"task_key": "transform", "new_cluster": copy.deepcopy(cluster),
                                                 "notebook_task": {"notebook_path": "/etl/transform_v1"}}]})
    fake_databricks.load(doc)
    job_id = int(doc["job"]["job_id"])
    plan = plan_action(parse_snapshot(doc), resize(), cfg(), now_ms=0)
    assert plan.kind == "update_repair"
    fixed = copy.deepcopy(fake_databricks.job(job_id)["settings"]["tasks"][0])
    fixed["notebook_task"]["notebook_path"] = "/etl/transform_v2"      # the owner fixed the code meanwhile
    fake_databricks.edit_job(job_id, {"tasks": [fixed]})
    execute(plan, client, store=store)
    [update] = fake_databricks.requests_to("update")
    [sent] = update.body["new_settings"]["tasks"]
    assert sent["notebook_task"]["notebook_path"] == "/etl/transform_v2"
    assert sent["new_cluster"]["num_workers"] == 8
    now = fake_databricks.job(job_id)["settings"]["tasks"][0]
    assert now["notebook_task"]["notebook_path"] == "/etl/transform_v2"
    fake_databricks.start_tasks(7300)
    [outcome] = restore_due(client, store)
    assert outcome["status"] == "restored"
    assert fake_databricks.job(job_id)["settings"]["tasks"][0] == fixed
