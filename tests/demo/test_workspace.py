"""The fake Databricks workspace itself: its answers and its validation, checked with plain HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from demo.workspace import (
    FakeDatabricks,
    drop_fault,
    lost_answer_fault,
    make_snapshot,
    make_token,
    malformed_fault,
    slow_fault,
    status_fault,
)

ROOT = Path(__file__).resolve().parents[2]
API = "/api/2.2/jobs/"


class Api:
    def __init__(self, fake: FakeDatabricks, token: str | None = None):
        self.fake = fake
        self.session = requests.Session()
        self.token = fake.token if token is None else token

    def _headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, endpoint, **params):
        return self.session.get(self.fake.url + API + endpoint, params=params, headers=self._headers(), timeout=5)

    def post(self, endpoint, body):
        return self.session.post(self.fake.url + API + endpoint, json=body, headers=self._headers(), timeout=5)


@pytest.fixture
def api(fake_databricks):
    a = Api(fake_databricks)
    yield a
    a.session.close()


def failed_run(run_id=10, **kw):
    return make_snapshot(run_id=run_id, tasks=[
        {"task_key": "a"},
        {"task_key": "b", "result": "FAILED", "depends_on": ["a"]},
        {"task_key": "c", "result": "UPSTREAM_FAILED", "depends_on": ["b"]},
    ], **kw)


def error_of(resp):
    return resp.status_code, resp.json()["error_code"]


def notebook_task(key, **extra):
    return {"task_key": key, "notebook_task": {"notebook_path": f"/{key}"}, **extra}


CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", "num_workers": 2}


# --- auth and routing ---------------------------------------------------------------------------

def test_fake_requires_a_bearer_token(fake_databricks):
    fake_databricks.load(failed_run())
    missing = Api(fake_databricks, token="")
    wrong = Api(fake_databricks, token=make_token())
    assert error_of(missing.get("runs/get", run_id=10)) == (401, "UNAUTHENTICATED")
    assert error_of(wrong.get("runs/get", run_id=10)) == (403, "PERMISSION_DENIED")
    assert [r.auth for r in fake_databricks.requests] == ["missing", "invalid"]
    assert all("Authorization" not in r.headers and "authorization" not in r.headers
               for r in fake_databricks.requests)


def test_fake_unknown_endpoint_and_method(api):
    assert error_of(api.get("runs/nothing")) == (404, "ENDPOINT_NOT_FOUND")
    assert api.post("runs/get", {}).status_code == 405


def test_fake_records_query_and_body(api, fake_databricks):
    fake_databricks.load(failed_run())
    api.get("runs/get", run_id=10, include_history="true")
    api.post("runs/repair", {"run_id": 10, "rerun_all_failed_tasks": True})
    get, post = fake_databricks.requests
    assert (get.method, get.endpoint, get.query, get.status) == ("GET", "runs/get",
                                                                 {"run_id": "10", "include_history": "true"}, 200)
    assert (post.method, post.body, post.auth) == ("POST", {"run_id": 10, "rerun_all_failed_tasks": True}, "valid")
    assert fake_databricks.writes == [post]


# --- reads --------------------------------------------------------------------------------------

def test_fake_runs_get_paginates_arrays(api, fake_databricks):
    fake_databricks.page_size = 2
    fake_databricks.load(failed_run(repair_ids=(1,)))
    first = api.get("runs/get", run_id=10, include_history="true").json()
    assert [t["task_key"] for t in first["tasks"]] == ["a", "b"]
    assert len(first["repair_history"]) == 2 and len(first["job_clusters"]) == 1
    second = api.get("runs/get", run_id=10, include_history="true", page_token=first["next_page_token"]).json()
    assert [t["task_key"] for t in second["tasks"]] == ["c"]
    assert second["repair_history"] == [] and second["job_clusters"] == []
    assert "next_page_token" not in second
    assert error_of(api.get("runs/get", run_id=10, page_token="garbage!")) == (400, "INVALID_PARAMETER_VALUE")


def test_fake_runs_get_unknown_run(api):
    assert error_of(api.get("runs/get", run_id=1)) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(api.get("runs/get")) == (400, "INVALID_PARAMETER_VALUE")


def test_fake_get_output_refuses_a_multi_task_parent(api, fake_databricks):
    fake_databricks.load(failed_run(error="boom"))
    resp = api.get("runs/get-output", run_id=10)
    assert error_of(resp) == (400, "INVALID_PARAMETER_VALUE") and "multiple tasks" in resp.json()["message"]
    assert api.get("runs/get-output", run_id=1002).json()["error"] == "boom"
    assert api.get("runs/get-output", run_id=1001).json()["metadata"]["task_key"] == "a"
    assert error_of(api.get("runs/get-output", run_id=77)) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_fake_get_output_of_a_legacy_run(api, fake_databricks):
    fake_databricks.load(make_snapshot(run_id=20, legacy=True, error="legacy boom"))
    assert api.get("runs/get-output", run_id=20).json()["error"] == "legacy boom"


def test_fake_jobs_get(api, fake_databricks):
    fake_databricks.load(failed_run(job_id=5))
    assert api.get("get", job_id=5).json()["settings"]["name"] == "nightly-etl"
    resp = api.get("get", job_id=6)
    assert error_of(resp) == (400, "INVALID_PARAMETER_VALUE") and resp.json()["message"] == "Job 6 does not exist."


def test_fake_runs_list_pages_and_filters(api, fake_databricks):
    for i in range(3):
        fake_databricks.load(failed_run(run_id=30 + i, start_time=100 + i, job_id=1 + i % 2))
    page = api.get("runs/list", limit=2, expand_tasks="true").json()
    assert [r["run_id"] for r in page["runs"]] == [32, 31] and page["has_more"] is True
    assert "tasks" in page["runs"][0] and "repair_history" not in page["runs"][0]
    rest = api.get("runs/list", limit=2, page_token=page["next_page_token"]).json()
    assert [r["run_id"] for r in rest["runs"]] == [30] and rest["has_more"] is False
    assert "tasks" not in rest["runs"][0] and "prev_page_token" in rest
    assert [r["run_id"] for r in api.get("runs/list", job_id=1).json()["runs"]] == [32, 30]
    assert [r["run_id"] for r in api.get("runs/list", start_time_from=101, start_time_to=101).json()["runs"]] == [31]
    assert api.get("runs/list", job_id=9).json() == {"has_more": False}        # empty arrays are left out
    assert len(api.get("runs/list", limit=0).json()["runs"]) == 3              # 0 means the maximum


def test_fake_runs_list_validation(api):
    assert error_of(api.get("runs/list", limit=26)) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.get("runs/list", active_only="true", completed_only="true")) == (400, "INVALID_PARAMETER_VALUE")


def test_fake_runs_list_active_and_completed(api, fake_databricks):
    fake_databricks.load(failed_run(run_id=40))
    fake_databricks.load(failed_run(run_id=41))
    api.post("runs/repair", {"run_id": 41, "rerun_all_failed_tasks": True})
    assert [r["run_id"] for r in api.get("runs/list", completed_only="true").json()["runs"]] == [40]
    assert [r["run_id"] for r in api.get("runs/list", active_only="true").json()["runs"]] == [41]


# --- runs/repair --------------------------------------------------------------------------------

@pytest.mark.parametrize("body, fragment", [
    ({"run_id": 10, "rerun_all_failed_tasks": True, "cluster": {}}, "unknown field(s): cluster"),
    ({"run_id": 10, "rerun_all_failed_tasks": True, "rerun_tasks": ["b"]}, "Exactly one"),
    ({"run_id": 10}, "Exactly one"),
    ({"run_id": 10, "rerun_tasks": ["zz"]}, "zz"),
    ({"run_id": 10, "rerun_tasks": []}, "non-empty"),
    ({"run_id": 10, "rerun_all_failed_tasks": True, "latest_repair_id": 3}, "no repair"),
    ({"run_id": 10, "rerun_all_failed_tasks": True, "performance_target": "FAST"}, "performance_target"),
    ({"rerun_all_failed_tasks": True}, "run_id"),
])
def test_fake_repair_validation(api, fake_databricks, body, fragment):
    fake_databricks.load(failed_run())
    resp = api.post("runs/repair", body)
    assert error_of(resp) == (400, "INVALID_PARAMETER_VALUE") and fragment in resp.json()["message"]
    assert "repair_history" not in fake_databricks.run(10)


def test_fake_repair_requires_the_latest_repair_id(api, fake_databricks):
    fake_databricks.load(failed_run(repair_ids=(7, 8)))
    missing = api.post("runs/repair", {"run_id": 10, "rerun_all_failed_tasks": True})
    assert error_of(missing) == (400, "INVALID_PARAMETER_VALUE") and "latest repair ID" in missing.json()["message"]
    stale = api.post("runs/repair", {"run_id": 10, "rerun_all_failed_tasks": True, "latest_repair_id": 7})
    assert error_of(stale) == (400, "INVALID_PARAMETER_VALUE")
    ok = api.post("runs/repair", {"run_id": 10, "rerun_all_failed_tasks": True, "latest_repair_id": 8})
    assert ok.status_code == 200 and ok.json()["repair_id"] not in (7, 8)


def test_fake_repair_appends_history_and_runs_again(api, fake_databricks):
    fake_databricks.load(failed_run())
    repair_id = api.post("runs/repair", {"run_id": 10, "rerun_tasks": ["b"]}).json()["repair_id"]
    run = fake_databricks.run(10)
    assert [(h["type"], h.get("id")) for h in run["repair_history"]] == [("ORIGINAL", None), ("REPAIR", repair_id)]
    assert run["repair_history"][1]["task_run_ids"] == [1002]
    assert run["state"]["life_cycle_state"] == "RUNNING"
    busy = api.post("runs/repair", {"run_id": 10, "rerun_all_failed_tasks": True, "latest_repair_id": repair_id})
    assert error_of(busy) == (400, "INVALID_STATE")
    fake_databricks.finish_run(10, "FAILED")
    again = api.post("runs/repair", {"run_id": 10, "rerun_all_failed_tasks": True, "latest_repair_id": repair_id})
    assert again.status_code == 200


def test_fake_repair_unknown_run(api):
    assert error_of(api.post("runs/repair", {"run_id": 5, "rerun_all_failed_tasks": True})) == (
        404, "RESOURCE_DOES_NOT_EXIST")


# --- runs/submit and run-now --------------------------------------------------------------------

@pytest.mark.parametrize("body, fragment", [
    ({"tasks": [notebook_task("a", new_cluster=CLUSTER)], "tags": {}}, "unknown field(s): tags"),
    ({"tasks": []}, "non-empty"),
    ({"tasks": [notebook_task("a", job_cluster_key="main")]}, "Shared job cluster"),
    ({"tasks": [{"task_key": "a", "spark_jar_task": {"main_class_name": "M"}}]}, "cluster is required"),
    ({"tasks": [notebook_task("a", new_cluster=CLUSTER, depends_on=[{"task_key": "x"}])]}, "not in this submission"),
    ({"tasks": [notebook_task("a", new_cluster=CLUSTER), notebook_task("a", new_cluster=CLUSTER)]}, "unique"),
    ({"tasks": [notebook_task("a", new_cluster=CLUSTER, run_id=5)]}, "unknown field(s): run_id"),
    ({"tasks": [notebook_task("a", new_cluster={"num_workers": 2, "node_type_id": "x"})]}, "spark_version"),
    ({"tasks": [notebook_task("a", new_cluster={**CLUSTER, "num_workers": -1})]}, "num_workers"),
    ({"tasks": [notebook_task("a", new_cluster={**CLUSTER, "autoscale": {"min_workers": 1, "max_workers": 2}})]},
     "both"),
    ({"tasks": [notebook_task("a", new_cluster=CLUSTER, existing_cluster_id="c")]}, "only one"),
    ({"tasks": [notebook_task("a", environment_key="env")]}, "not defined"),
    ({"tasks": [{"task_key": "a", "new_cluster": CLUSTER}]}, "exactly one task type"),
    ({"tasks": [notebook_task("a", new_cluster=CLUSTER)], "idempotency_token": "x" * 65}, "64"),
])
def test_fake_submit_validation(api, fake_databricks, body, fragment):
    resp = api.post("runs/submit", body)
    assert error_of(resp) == (400, "INVALID_PARAMETER_VALUE") and fragment in resp.json()["message"]
    assert fake_databricks.submitted == {}


def test_fake_submit_creates_a_one_time_run_once_per_token(api, fake_databricks):
    body = {"run_name": "retry", "idempotency_token": "10-0",
            "tasks": [notebook_task("a", new_cluster=CLUSTER),
                      notebook_task("b", new_cluster=CLUSTER, depends_on=[{"task_key": "a"}]),
                      notebook_task("c")]}                          # serverless notebook: no compute needed
    first = api.post("runs/submit", body).json()["run_id"]
    assert api.post("runs/submit", body).json()["run_id"] == first
    assert list(fake_databricks.submitted) == [first]
    run = fake_databricks.run(first)
    assert run["run_type"] == "SUBMIT_RUN" and run["run_name"] == "retry" and len(run["tasks"]) == 3
    assert api.get("runs/get", run_id=first).status_code == 200


def test_fake_submit_without_serverless_needs_a_cluster(fake_databricks):
    strict = FakeDatabricks(serverless_enabled=False).start()
    try:
        resp = Api(strict).post("runs/submit", {"tasks": [notebook_task("a")]})
        assert error_of(resp) == (400, "INVALID_PARAMETER_VALUE")
    finally:
        strict.stop()


def test_fake_run_now(api, fake_databricks):
    fake_databricks.load(failed_run(job_id=3))
    assert error_of(api.post("run-now", {"job_id": 4})) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.post("run-now", {"job_id": 3, "tasks": []})) == (400, "INVALID_PARAMETER_VALUE")
    one = api.post("run-now", {"job_id": 3, "idempotency_token": "t"}).json()["run_id"]
    assert api.post("run-now", {"job_id": 3, "idempotency_token": "t"}).json()["run_id"] == one
    assert fake_databricks.run(one)["job_id"] == 3


def test_fake_rejects_a_body_that_is_not_json(api, fake_databricks):
    resp = api.session.post(fake_databricks.url + API + "runs/submit", data=b"{nope",
                            headers={"Authorization": f"Bearer {fake_databricks.token}"}, timeout=5)
    assert error_of(resp) == (400, "MALFORMED_REQUEST")


# --- faults -------------------------------------------------------------------------------------

def test_fake_faults_are_used_in_order_then_normal_answers(api, fake_databricks):
    fake_databricks.load(failed_run())
    fake_databricks.inject("runs/get", status_fault(429, retry_after=7), 503)
    first = api.get("runs/get", run_id=10)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert first.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert error_of(api.get("runs/get", run_id=10)) == (503, "TEMPORARILY_UNAVAILABLE")
    assert api.get("runs/get", run_id=10).status_code == 200
    assert [r.fault for r in fake_databricks.requests] == ["status", "status", None]


def test_fake_faults_cleared_the_service_answers_again(api, fake_databricks):
    fake_databricks.load(failed_run())
    fake_databricks.inject("runs/get", *[503] * 50)
    fake_databricks.inject("get", 500)
    assert api.get("runs/get", run_id=10).status_code == 503
    fake_databricks.clear_faults("runs/get")              # only that path's
    assert api.get("runs/get", run_id=10).status_code == 200
    fake_databricks.clear_faults()                        # every path's
    assert api.get("get", job_id=1).status_code == 400


def test_fake_fault_for_any_path(api, fake_databricks):
    fake_databricks.inject("*", 500)
    assert api.get("get", job_id=1).status_code == 500
    assert api.get("get", job_id=1).status_code == 400


def test_fake_malformed_and_drop_faults(api, fake_databricks):
    fake_databricks.load(failed_run())
    fake_databricks.inject("runs/get", malformed_fault(), drop_fault())
    resp = api.get("runs/get", run_id=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/html"
    with pytest.raises(requests.ConnectionError):
        api.get("runs/get", run_id=10)
    assert fake_databricks.requests[-1].status is None


def test_fake_slow_fault_delays_the_answer(api, fake_databricks):
    fake_databricks.load(failed_run())
    fake_databricks.inject("runs/get", slow_fault(1.0))
    with pytest.raises(requests.ReadTimeout):
        api.session.get(fake_databricks.url + API + "runs/get", params={"run_id": 10},
                        headers={"Authorization": f"Bearer {fake_databricks.token}"}, timeout=0.2)


def test_fake_lost_answer_still_applies_the_write(api, fake_databricks):
    fake_databricks.load(failed_run())
    fake_databricks.inject("runs/repair", lost_answer_fault())
    with pytest.raises(requests.ConnectionError):
        api.post("runs/repair", {"run_id": 10, "rerun_all_failed_tasks": True})
    assert fake_databricks.run(10)["repair_history"][-1]["type"] == "REPAIR"


def test_fake_loads_snapshot_files_and_the_corpus(fake_databricks):
    ids = fake_databricks.load_all([ROOT / "tests" / "corpus" / "dev"])
    assert len(ids) == len(set(ids)) == len(list((ROOT / "tests" / "corpus" / "dev").glob("*.json")))


def test_fake_runs_standalone():
    token = make_token()
    snap = ROOT / "tests" / "corpus" / "dev" / "dev-001.json"
    proc = subprocess.Popen([sys.executable, "-m", "demo.workspace", "--snapshots", str(snap),
                             "--token", token], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        resp = requests.get(url + API + "runs/get", params={"run_id": 2707385833224991},
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert resp.json()["run_name"] == "nightly-etl"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
