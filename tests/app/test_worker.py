"""shared/app/worker.py: which failures retry, which escalate at once, and the poison escalation."""

import pytest

from shared.config import Settings
from shared.errors import DatabricksUnavailable, StoreUnavailable
from shared.app.runtime import open_runtime
from shared.app.messages import TriageRequest
from shared.app.worker import is_transient, process_message, process_poison, process_request
from demo.workspace import status_fault
from tests.helpers import corpus_doc


class RecordingNotifier:
    def __init__(self):
        self.calls = []

    def notify(self, snapshot, decision, record):
        self.calls.append((snapshot.run_id, decision.action.value))
        return {"status": "sent"}


@pytest.fixture
def env(fake_databricks, tmp_path):
    return {"DATABRICKS_HOST": fake_databricks.url, "DATABRICKS_TOKEN": fake_databricks.token,
            "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}


@pytest.fixture
def runtime(env):
    notifier = RecordingNotifier()
    with open_runtime(Settings.from_env(env), notifier=notifier) as rt:
        yield rt


def _request(fake, run_id, **kw):
    return TriageRequest(run_id=run_id, workspace=fake.url, request_id="r1", **kw)


def test_process_request_decides_and_second_delivery_is_duplicate(fake_databricks, env, runtime):
    run_id = fake_databricks.load(corpus_doc("dev-001"))
    settings = Settings.from_env(env)
    first = process_request(_request(fake_databricks, run_id), settings, runtime=runtime)
    second = process_request(_request(fake_databricks, run_id), settings, runtime=runtime)
    assert (first.status, second.status) == ("decided", "duplicate")
    assert first.decision_key == second.decision_key == f"{run_id}-0"


def test_process_request_transient_raises_and_remembers_the_error(fake_databricks, env, runtime):
    run_id = fake_databricks.load(corpus_doc("dev-001"))
    fake_databricks.inject("runs/get", *[status_fault(503, retry_after=0) for _ in range(8)])
    with pytest.raises(DatabricksUnavailable):
        process_request(_request(fake_databricks, run_id), Settings.from_env(env), runtime=runtime)
    assert "DatabricksUnavailable" in runtime.store.state_get("triage_error", str(run_id)).value["error"]
    assert runtime.notifier.calls == []


def test_process_request_permanent_escalates_once(fake_databricks, env, runtime):
    settings = Settings.from_env(env)
    outcome = process_request(_request(fake_databricks, 4242), settings, runtime=runtime)
    assert outcome.status == "escalated" and outcome.decision_key == "4242-triage-failed"
    process_request(_request(fake_databricks, 4242), settings, runtime=runtime)
    assert runtime.notifier.calls == [(4242, "ESCALATE")]


def test_process_request_unknown_workspace_escalates(fake_databricks, env, runtime):
    request = TriageRequest(run_id=5, workspace="https://elsewhere.example.com")
    outcome = process_request(request, Settings.from_env(env), runtime=runtime)
    assert outcome.status == "escalated" and "not configured" in outcome.message
    assert fake_databricks.requests == []


def test_process_poison_escalates_with_the_last_error(fake_databricks, env, runtime):
    runtime.store.state_put("triage_error", "77", {"error": "DatabricksUnavailable: gave up"})
    outcome = process_poison(_request(fake_databricks, 77, job_id=9).to_message(), Settings.from_env(env),
                             runtime=runtime)
    record = runtime.store.get(outcome.decision_key, "9")
    assert "triage failed for run 77" in record.reason and "gave up" in record.reason
    assert runtime.notifier.calls == [(77, "ESCALATE")]


def test_process_request_odd_answer_is_decided_not_poisoned(fake_databricks, env, runtime):
    doc = corpus_doc("dev-001")
    doc["run"]["state"] = "not an object"           # an answer whose run state cannot be read
    doc["run"].pop("status", None)
    run_id = fake_databricks.load(doc)
    outcome = process_request(_request(fake_databricks, run_id), Settings.from_env(env), runtime=runtime)
    assert outcome.status == "decided"
    record = runtime.store.get(outcome.decision_key)
    assert any("odd answer from Databricks" in n and "run.state" in n for n in record.decision["notes"])


def test_capture_outage_is_retried_then_the_poison_path_escalates_it(fake_databricks, env, runtime):
    """get-output down for longer than the queue retries: no blind decision on any attempt; the
    poison trigger escalates "triage failed" with the last error, so a person is told."""
    run_id = fake_databricks.load(corpus_doc("dev-001"))
    settings = Settings.from_env(env)
    for attempt in range(1, 4):
        fake_databricks.inject("runs/get-output", *[status_fault(503, retry_after=0) for _ in range(8)])
        with pytest.raises(DatabricksUnavailable):
            process_request(_request(fake_databricks, run_id), settings, runtime=runtime, dequeue_count=attempt)
    assert runtime.store.get(f"{run_id}-0") is None
    outcome = process_poison(_request(fake_databricks, run_id).to_message(), settings, runtime=runtime)
    assert "last error: DatabricksUnavailable" in outcome.message and "runs/get-output" in outcome.message
    assert runtime.notifier.calls == [(run_id, "ESCALATE")]


def test_process_message_drops_what_is_not_a_request(env, caplog):
    outcome = process_message(b"\x00garbage", Settings.from_env(env), message_id="m9")
    assert outcome.status == "malformed" and "m9" in caplog.text


def test_is_transient():
    assert is_transient(DatabricksUnavailable("x")) and is_transient(StoreUnavailable("x"))
    assert not is_transient(ValueError("x"))
