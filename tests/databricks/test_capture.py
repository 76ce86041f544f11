"""shared.databricks.capture: the snapshot of a live run, built through the real client and the fake workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.databricks.capture import capture_snapshot, lineage_of, lineage_run_name
from shared.databricks import DatabricksClient, PatCredential, RetryPolicy
from shared.errors import DatabricksAuthError, DatabricksNotFound
from shared.snapshot import load_snapshot
from demo.workspace import make_snapshot, status_fault

CORPUS = Path(__file__).parents[1] / "corpus" / "dev"


class RetryCounts:
    """The one Store method capture uses: retries(lineage)."""

    def __init__(self, counts):
        self.counts = counts
        self.asked: list[str] = []

    def retries(self, lineage: str) -> int:
        self.asked.append(lineage)
        return self.counts.get(lineage, 0)


@pytest.fixture
def client(fake_databricks):
    c = DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token),
                         retry=RetryPolicy(backoff_base_s=0, max_attempts=2))
    yield c
    c.close()


def three_tasks(**kw):
    return make_snapshot(run_id=3000, tasks=[
        {"task_key": "extract"},
        {"task_key": "transform", "result": "FAILED", "depends_on": ["extract"]},
        {"task_key": "load", "result": "UPSTREAM_FAILED", "depends_on": ["transform"]},
    ], error="java.lang.OutOfMemoryError: Java heap space", **kw)


def test_capture_snapshot_makes_one_call_per_part(fake_databricks, client):
    fake_databricks.load(three_tasks())
    snap = capture_snapshot(client, 3000, workspace_host=client.host)
    assert [r.endpoint for r in fake_databricks.requests] == ["runs/get", "runs/get-output", "get"]
    assert fake_databricks.requests[1].query == {"run_id": "300002"}     # transform only, not load
    assert list(snap.task_outputs) == ["300002"]
    assert snap.failed_tasks[0].error == "java.lang.OutOfMemoryError: Java heap space"
    assert snap.job["settings"]["name"] == "nightly-etl"
    assert snap.workspace_host == client.host
    assert snap.history == {"prior_retries": 0, "lineage": "3000"}


def test_capture_snapshot_follows_task_pagination(fake_databricks, client):
    fake_databricks.page_size = 2
    tasks = [{"task_key": f"t{i}", "result": "FAILED" if i in (1, 6) else "SUCCESS"} for i in range(7)]
    fake_databricks.load(make_snapshot(run_id=3100, tasks=tasks))
    snap = capture_snapshot(client, 3100, workspace_host=client.host)
    assert [t.task_key for t in snap.tasks] == [f"t{i}" for i in range(7)]
    assert sorted(snap.task_outputs) == ["310002", "310007"]
    assert len(fake_databricks.requests_to("runs/get")) == 4


def test_capture_snapshot_legacy_single_task_run_reads_output_of_the_run(fake_databricks, client):
    fake_databricks.load(make_snapshot(run_id=3200, legacy=True, error="Connection reset"))
    snap = capture_snapshot(client, 3200, workspace_host=client.host)
    assert fake_databricks.requests_to("runs/get-output")[0].query == {"run_id": "3200"}
    assert snap.tasks[0].error == "Connection reset"


def test_capture_snapshot_records_a_failed_get_output_and_goes_on(fake_databricks, client):
    fake_databricks.load(make_snapshot(run_id=3300, tasks=[{"task_key": "a", "result": "FAILED"},
                                                            {"task_key": "b", "result": "FAILED"}]))
    fake_databricks.inject("runs/get-output", status_fault(400, error_code="INVALID_PARAMETER_VALUE",
                                                           message="Run output expired"))
    snap = capture_snapshot(client, 3300, workspace_host=client.host)
    assert list(snap.task_outputs) == ["330002"]
    [note] = snap.history["capture_errors"]
    assert note["call"] == "runs/get-output" and note["task_key"] == "a" and note["run_id"] == 330001
    assert note["status"] == 400 and note["error_code"] == "INVALID_PARAMETER_VALUE"
    assert note["message"] == "Run output expired"


def test_capture_snapshot_missing_job_leaves_job_none(fake_databricks, client):
    fake_databricks.load(make_snapshot(run_id=3400, job_id=404, with_job=False))
    snap = capture_snapshot(client, 3400, workspace_host=client.host)
    assert snap.job is None
    assert snap.history["capture_errors"][0]["call"] == "jobs/get"


def test_capture_snapshot_one_time_run_has_no_jobs_get(fake_databricks, client):
    fake_databricks.load(make_snapshot(run_id=3500, job_id=None))
    capture_snapshot(client, 3500, workspace_host=client.host)
    assert [r.endpoint for r in fake_databricks.requests] == ["runs/get", "runs/get-output"]


def test_capture_snapshot_job_permission_error_is_raised(fake_databricks, client):
    fake_databricks.load(three_tasks())
    fake_databricks.inject("get", status_fault(403, error_code="PERMISSION_DENIED"))
    with pytest.raises(DatabricksAuthError):
        capture_snapshot(client, 3000, workspace_host=client.host)


def test_capture_snapshot_missing_run_raises_not_found(fake_databricks, client):
    with pytest.raises(DatabricksNotFound):
        capture_snapshot(client, 999, workspace_host=client.host)


def test_capture_snapshot_reads_prior_retries_from_store_by_lineage(fake_databricks, client):
    doc = three_tasks()
    doc["run"]["run_name"] = lineage_run_name("nightly-etl: resized rerun of run 2999", "2999")
    doc["run"]["run_type"] = "SUBMIT_RUN"          # the one-time run we submitted: it has no job
    doc["run"].pop("job_id")
    doc.pop("job")
    fake_databricks.load(doc)
    store = RetryCounts({"2999": 2})
    snap = capture_snapshot(client, 3000, workspace_host=client.host, store=store, case_id="c-1")
    assert store.asked == ["2999"]
    assert snap.history["prior_retries"] == 2 and snap.history["lineage"] == "2999"
    assert snap.case_id == "c-1"


def test_capture_snapshot_round_trips_through_json(fake_databricks, client, tmp_path):
    fake_databricks.load(three_tasks(repair_ids=(71,)))
    snap = capture_snapshot(client, 3000, workspace_host=client.host)
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snap.to_json()), encoding="utf-8")
    again = load_snapshot(path)
    assert again.decision_key == "3000-1" and again.latest_repair_id == 71
    assert dict(again.task_outputs) == dict(snap.task_outputs)


def test_capture_snapshot_reproduces_every_corpus_failure(fake_databricks, client):
    paths = sorted(CORPUS.glob("*.json"))
    for path in paths:
        fake_databricks.load(path)
    for path in paths:
        original = load_snapshot(path)
        fake_databricks.clear_requests()
        snap = capture_snapshot(client, original.run_id, workspace_host=original.workspace_host)
        assert snap.run_id == original.run_id
        roots = [t for t in original.failed_tasks if not t.state.upstream]
        assert len(fake_databricks.requests) == 1 + len(roots) + (1 if original.job_id else 0), path.name
        for before, after in zip(original.failed_tasks, snap.failed_tasks):
            assert after.text == before.text, path.name


@pytest.mark.parametrize("run, lineage", [
    ({"run_id": 5, "run_name": "nightly"}, "5"),
    ({"run_id": 9, "run_name": "nightly: resized rerun of run 5 [triage retry of run 5]"}, "5"),
    ({"run_id": 9}, "9"),
    ({"run_id": 9, "run_type": "SUBMIT_RUN", "job_id": 4, "run_name": "x [triage retry of run 5]"}, "5"),
    ({"run_id": 9, "run_type": "JOB_RUN", "job_id": 4, "run_name": "x [triage retry of run 5]"}, "9"),
    ({"run_id": 9, "job_id": 4, "run_name": "x [triage retry of run 5]"}, "9"),
])
def test_lineage_of(run, lineage):
    assert lineage_of(run) == lineage


def test_lineage_run_name_replaces_an_old_marker():
    name = lineage_run_name(lineage_run_name("etl", "5"), "5")
    assert name == "etl [triage retry of run 5]"
    assert lineage_of({"run_id": 1, "run_name": name}) == "5"
    assert len(lineage_run_name("x" * 5000, "5")) <= 4096
