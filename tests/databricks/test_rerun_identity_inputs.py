"""A resized rerun runs as the job's identity with the failed run's inputs, or is not sent:
planned (pure) and sent through the production client to the fake workspace, which checks
run_as, the access control list and the parameters as the Jobs API does."""

from __future__ import annotations

import pytest

from demo.workspace import FakeDatabricks, make_snapshot
from shared.config import Settings
from shared.databricks import DatabricksClient, PatCredential, RetryPolicy
from shared.databricks.actions import execute, plan_action
from shared.databricks.inputs import job_parameter_values, run_as_of, task_inputs
from shared.errors import RunAsRefused
from shared.models import Action, Category, Decision
from shared.snapshot import parse_snapshot
from shared.triage import triage_run

SP = "8f0c1f52-3f7e-4d0e-9a7c-2b9d7d6c1e11"
NOW = 1_700_000_000_000
MAX_RESULT = ("org.apache.spark.SparkException: Job aborted due to stage failure: Total size of serialized "
              "results of 2689 tasks (4.0 GiB) is bigger than spark.driver.maxResultSize (4.0 GiB)")


def cfg(**env) -> Settings:
    return Settings.from_env({"TRIAGE_NODE_TYPE_LADDER": "Standard_E8ds_v5,Standard_E16ds_v5,Standard_E32ds_v5",
                              **{k: str(v) for k, v in env.items()}})


def resize(**params) -> Decision:
    return Decision(Category.RESOURCE, Action.RETRY_WITH_NEW_PARAMS, 0.9, "rules", "test", params=params)


def sp_job(**kw):
    """A job owned by a service principal whose notebook reads {{job.parameters.run_date}}."""
    tasks = kw.pop("tasks", None) or [
        {"task_key": "load", "result": "FAILED",
         "notebook_task": {"notebook_path": "/Workspace/etl/load",
                           "base_parameters": {"day": "{{job.parameters.run_date}}", "mode": "full"}}},
        {"task_key": "publish", "result": "UPSTREAM_FAILED", "depends_on": ["load"],
         "spark_python_task": {"python_file": "/Workspace/etl/publish.py",
                               "parameters": ["--day", "{{job.parameters.run_date}}"]}},
    ]
    cluster = {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_E8ds_v5", "num_workers": 4}
    return make_snapshot(run_id=5100, tasks=tasks, run_as={"service_principal_name": SP},
                         job_parameters=kw.pop("job_parameters", {"run_date": "2026-11-30"}),
                         job_clusters=[{"job_cluster_key": "main", "new_cluster": cluster}], error=MAX_RESULT, **kw)


@pytest.fixture
def workspace():
    """A fake workspace whose app identity holds servicePrincipal.user on SP only."""
    with FakeDatabricks(may_run_as={SP}) as fake:
        yield fake


@pytest.fixture
def api(workspace):
    with DatabricksClient(workspace.url, PatCredential(workspace.token),
                          retry=RetryPolicy(deadline_s=5, sleep=lambda s: None, jitter=False)) as c:
        yield c


# --- identity -----------------------------------------------------------------------------------

def test_identity_is_the_jobs_run_as_then_run_as_user_name_then_creator():
    assert run_as_of(parse_snapshot(sp_job())) == {"service_principal_name": SP}
    doc = make_snapshot()
    assert run_as_of(parse_snapshot(doc)) == {"user_name": "owner@example.com"}
    doc["job"].pop("run_as_user_name")
    doc["job"]["creator_user_name"] = SP
    assert run_as_of(parse_snapshot(doc)) == {"service_principal_name": SP}
    assert run_as_of(parse_snapshot(make_snapshot(with_job=False))) is None


def test_resized_rerun_of_a_service_principal_job_runs_as_it_with_the_runs_parameter(workspace, api, store):
    """The issue's first check, end to end: the rerun carries the job's run_as and the job
    parameter value the failed run used."""
    doc = sp_job()
    workspace.load(doc)
    result = triage_run(5100, cfg(TRIAGE_MODE="act"), client=api, store=store, act_now=True, use_llm=False)
    assert (result.record.action, result.record.status) == ("RETRY_WITH_NEW_PARAMS", "acted")
    [submit] = workspace.requests_to("runs/submit")
    assert submit.status == 200
    body = submit.body
    assert body["run_as"] == {"service_principal_name": SP}
    assert {"service_principal_name": SP, "permission_level": "CAN_MANAGE"} in body["access_control_list"]
    assert {"user_name": "owner@example.com", "permission_level": "CAN_MANAGE"} in body["access_control_list"]
    load, publish = body["tasks"]
    assert load["notebook_task"]["base_parameters"] == {"day": "2026-11-30", "mode": "full", "run_date": "2026-11-30"}
    assert publish["spark_python_task"]["parameters"] == ["--day", "2026-11-30"]
    run = workspace.run(result.record.action_result["run_id"])
    assert run["run_as_user_name"] == SP and run["creator_user_name"] == "triage-app"


def test_a_refused_identity_falls_back_to_the_owner_never_to_the_app(store):
    class Recorder:
        calls: list = []

        def notify(self, snapshot, decision, record):
            self.calls.append((decision.action.value, decision.suggested_fix))
            return {"status": "sent"}

    with FakeDatabricks(may_run_as=set()) as fake, DatabricksClient(
            fake.url, PatCredential(fake.token), retry=RetryPolicy(deadline_s=5, sleep=lambda s: None)) as api:
        fake.load(sp_job())
        notifier = Recorder()
        result = triage_run(5100, cfg(TRIAGE_MODE="act"), client=api, store=store, notifier=notifier,
                            act_now=True, use_llm=False)
        assert [w.status for w in fake.writes] == [403]          # refused, and never sent again without run_as
        assert fake.submitted == {}
    rec = result.record
    assert (rec.action, rec.status, rec.action_result["fallback"]) == ("SEND_EMAIL", "acted", "SEND_EMAIL")
    assert "RunAsRefused" in rec.action_result["error"]
    [(action, fix)] = notifier.calls
    assert action == "SEND_EMAIL" and "driver Standard_E8ds_v5 -> Standard_E16ds_v5" in fix


def test_execute_raises_run_as_refused_for_a_user_owned_job(workspace, api):
    doc = make_snapshot(run_id=5200)
    workspace.load(doc)
    plan = plan_action(parse_snapshot(doc), resize(), cfg(), now_ms=NOW)
    assert plan.request["body"]["run_as"] == {"user_name": "owner@example.com"}
    with pytest.raises(RunAsRefused, match="owner@example.com"):
        execute(plan, api)


def test_no_known_identity_means_no_rerun():
    plan = plan_action(parse_snapshot(make_snapshot(with_job=False)), resize(), cfg(), now_ms=NOW)
    assert plan.action is Action.SEND_EMAIL and not plan.requests
    assert "identity" in plan.fallback_reason and "workers 2 -> 4" in plan.recommendation


# --- inputs -------------------------------------------------------------------------------------

def test_a_parameter_the_run_has_no_value_for_means_no_rerun():
    doc = sp_job(job_parameters={"other": "x"})
    plan = plan_action(parse_snapshot(doc), resize(knob="executors", num_workers_factor=2), cfg(), now_ms=NOW)
    assert plan.action is Action.SEND_EMAIL and not plan.requests
    assert "run_date" in plan.fallback_reason and "cannot be reproduced" in plan.fallback_reason
    assert "workers 4 -> 8" in plan.recommendation


@pytest.mark.parametrize("ref", ["{{job.start_time.iso_date}}", "{{run.id}}", "{{job.id}}",
                                 "{{tasks.extract.values.rows}}"])
def test_a_reference_a_new_run_would_resolve_differently_means_no_rerun(ref):
    tasks = [{"task_key": "load", "result": "FAILED",
              "notebook_task": {"notebook_path": "/x", "base_parameters": {"day": ref}}}]
    plan = plan_action(parse_snapshot(sp_job(tasks=tasks)), resize(), cfg(), now_ms=NOW)
    assert plan.action is Action.SEND_EMAIL and ref in plan.fallback_reason


def test_references_that_resolve_the_same_are_kept():
    raw = {"task_key": "t", "notebook_task": {"notebook_path": "/x", "base_parameters": {
        "k": "{{secrets/etl/key}}", "name": "{{task.name}}", "rows": "{{tasks.t0.values.rows}}"}}}
    out, problems = task_inputs(raw, {}, {}, {"t", "t0"})
    assert problems == [] and out["notebook_task"]["base_parameters"]["k"] == "{{secrets/etl/key}}"


def test_overriding_parameters_and_resolved_values_are_what_the_run_had():
    run = {"job_parameters": [{"name": "d", "default": "x", "value": "2026-01-02"}],
           "overriding_parameters": {"notebook_params": {"limit": "10"}, "python_params": ["--fast"],
                                     "job_parameters": {"d": "2026-01-03"}}}
    params = job_parameter_values(run)
    assert params == {"d": "2026-01-03"}
    nb = {"task_key": "a", "notebook_task": {"notebook_path": "/a", "base_parameters": {"limit": "1", "x": "y"}}}
    out, problems = task_inputs(nb, run, params, {"a"})
    assert problems == [] and out["notebook_task"]["base_parameters"] == {"limit": "10", "x": "y", "d": "2026-01-03"}
    py = {"task_key": "b", "spark_python_task": {"python_file": "/b.py", "parameters": ["--slow"]},
          "resolved_values": {"spark_python_task": {"parameters": ["--fast", "2026-01-03T00:00"]}}}
    out, problems = task_inputs(py, run, params, {"b"})
    assert out["spark_python_task"]["parameters"] == ["--fast", "2026-01-03T00:00"]


def test_repairs_send_the_runs_job_parameters_again(workspace, api):
    doc = sp_job()
    workspace.load(doc)
    plan = plan_action(parse_snapshot(doc), Decision(Category.TIMEOUT, Action.RETRY, 0.9, "rules", "t"), cfg(),
                       now_ms=NOW)
    execute(plan, api)
    [repair] = workspace.requests_to("runs/repair")
    assert repair.status == 200 and repair.body["job_parameters"] == {"run_date": "2026-11-30"}
