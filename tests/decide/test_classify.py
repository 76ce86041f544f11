from shared.decide.classify import classify
from shared.models import Category
from tests.helpers import corpus_doc, make_snapshot
from shared.snapshot import parse_snapshot


def _task(key, result, code="RUN_EXECUTION_ERROR", run_id=None, deps=()):
    return {
        "run_id": run_id or abs(hash(key)) % 10**6,
        "task_key": key,
        "job_cluster_key": "main",
        "depends_on": [{"task_key": d} for d in deps],
        "state": {"life_cycle_state": "TERMINATED", "result_state": result},
        "status": {"termination_details": {"code": code, "type": "CLIENT_ERROR"}},
    }


def _multi(outputs_by_key, tasks):
    snap = make_snapshot(tasks=tasks)
    doc = snap.to_json()
    doc["task_outputs"] = {str(t["run_id"]): {"error": outputs_by_key[t["task_key"]]}
                           for t in tasks if t["task_key"] in outputs_by_key}
    return parse_snapshot(doc)


def test_classify_upstream_failed_tasks_do_not_decide():
    tasks = [_task("a", "FAILED", run_id=11), _task("b", "UPSTREAM_FAILED", run_id=12, deps=["a"])]
    snap = _multi({"a": "java.net.SocketException: Connection reset", "b": "PERMISSION_DENIED: nope"}, tasks)
    c = classify(snap)
    assert c.category is Category.NETWORK and c.deciding_task == "a"
    assert [t.task_key for t in c.tasks if t.upstream_only] == ["b"]


def test_classify_deterministic_failure_outweighs_transient():
    tasks = [_task("a", "FAILED", run_id=11), _task("b", "FAILED", run_id=12)]
    snap = _multi({"a": "java.net.SocketException: Connection reset",
                   "b": "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `x` cannot be found."}, tasks)
    c = classify(snap)
    assert c.category is Category.DATA and c.deciding_task == "b"
    assert "outweighs" in c.note


def test_classify_timed_out_run_is_timeout():
    snap = make_snapshot("", result_state="TIMEDOUT", code="CANCELED", type_="SUCCESS")
    assert classify(snap).category is Category.TIMEOUT


def test_classify_user_canceled_run_is_canceled():
    snap = make_snapshot("", result_state="CANCELED", code="USER_CANCELED", type_="SUCCESS")
    assert classify(snap).category is Category.CANCELED


def test_classify_cloud_failure_termination_type_cited():
    snap = make_snapshot("", code="CLUSTER_ERROR", type_="CLOUD_FAILURE", state_message="Cluster launch failed")
    c = classify(snap)
    assert c.category is Category.INFRASTRUCTURE
    assert any(e.cite() == "termination type CLOUD_FAILURE" for e in c.evidence)


def test_classify_nothing_matches_is_unknown_with_low_confidence():
    c = classify(make_snapshot("Something odd happened in the flux capacitor"))
    assert c.category is Category.UNKNOWN and c.confidence < 0.5


def test_classify_dependency_package_source_unreachable_is_retryable():
    snap = parse_snapshot(corpus_doc("dev-027"))
    c = classify(snap)
    assert c.category is Category.DEPENDENCY and c.retryable_hint is True


def test_classify_dependency_missing_package_is_not_retryable():
    c = classify(make_snapshot("ERROR: No matching distribution found for pandas==99.0"))
    assert c.category is Category.DEPENDENCY and c.retryable_hint is False


def test_classify_legacy_single_task_run_uses_state_message():
    doc = corpus_doc("dev-001")
    doc["run"].pop("tasks")
    doc["run"].pop("status", None)
    doc["run"]["state"]["state_message"] = "Notebook not found: /Repos/etl/x"
    doc["task_outputs"] = {}
    assert classify(parse_snapshot(doc)).category is Category.CONFIGURATION


def test_classify_excerpt_bounded_for_huge_trace():
    trace = "java.lang.OutOfMemoryError: Java heap space\n" + ("\tat a.b.C.d(C.java:1)\n" * 250_000)
    c = classify(make_snapshot("Job aborted", trace=trace))
    assert c.category is Category.RESOURCE
    assert len(c.excerpt) <= 2000
