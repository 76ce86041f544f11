"""The queue worker, the poison trigger and the timer sweep through the real worker: messages read
from Azurite and delivered as the queue extension delivers them, decisions read back from Azurite's
tables, actions against the fake Databricks workspace."""

import base64

import pytest

pytest.importorskip("azure_functions_runtime", reason="the Functions Python worker library needs Python 3.13+ "
                    "(make test runs tests/host in .venv-worker)")

from demo.workspace import status_fault
from shared.config import Settings
from shared.store import open_store
from tests.host.test_http import assert_no_secret_in_logs, load_failure, notification, peek, post_webhook


def _store(env):
    return open_store(Settings.from_env(env))


def _send_raw(azurite, queue, text):
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient

    with QueueClient.from_connection_string(azurite.connection_string, queue) as q:
        try:
            q.create_queue()
        except ResourceExistsError:
            pass
        q.send_message(text)


def test_webhook_to_queue_to_worker_decides_the_failure(host, app_env, azurite, fake_databricks):
    run_id, job_id = load_failure(fake_databricks, "dev-001")      # a permission error: SEND_EMAIL
    assert post_webhook(host, notification(run_id, job_id)).status == 202
    [inv] = host.drain_queue(azurite.connection_string, app_env["TRIAGE_QUEUE_NAME"])
    assert inv.function == "triage_worker" and inv.ok, inv.exception
    assert inv.return_value is None and inv.outputs == {}
    assert peek(azurite, app_env["TRIAGE_QUEUE_NAME"]) == []       # completed messages are deleted
    with _store(app_env) as store:
        record = store.get(f"{run_id}-0", str(job_id))
    assert record is not None and record.category == "PERMISSION" and record.action == "SEND_EMAIL"
    assert record.mode == "act" and record.workspace == fake_databricks.url
    assert fake_databricks.writes == []
    assert any(f"{run_id}-0" in e.message for e in inv.logs)
    assert_no_secret_in_logs(host, app_env)
    # What the worker ships to the host is the app's own account, not a dump of every storage call.
    assert [e.category for e in inv.logs if e.category.startswith("azure.core")] == []


def test_worker_acts_once_on_duplicates_running_concurrently(host, app_env, azurite, fake_databricks):
    """Four copies of one notification arrive in one batch (host.json batchSize 4): the worker runs
    them at the same time on its thread pool; one decision, one action."""
    run_id, job_id = load_failure(fake_databricks, "dev-055")      # OOM on a job cluster: a resized one-time run
    for _ in range(4):
        assert post_webhook(host, notification(run_id, job_id)).status == 202
    invocations = host.drain_queue(azurite.connection_string, app_env["TRIAGE_QUEUE_NAME"])
    assert len(invocations) == 4 and all(i.ok for i in invocations), [i.exception for i in invocations]
    assert len({i.response.invocation_id for i in invocations}) == 4
    assert len(fake_databricks.requests_to("runs/submit")) == 1
    with _store(app_env) as store:
        [record] = store.list(job_id=str(job_id))
    assert record.status == "acted" and record.action == "RETRY_WITH_NEW_PARAMS"


def test_transient_failure_is_retried_by_the_queue_then_poisoned_then_escalated(host, app_env, azurite,
                                                                               fake_databricks):
    run_id, job_id = load_failure(fake_databricks, "dev-001")
    assert post_webhook(host, notification(run_id, job_id)).status == 202
    fake_databricks.inject("runs/get", *[status_fault(503, retry_after=0) for _ in range(200)])
    queue = app_env["TRIAGE_QUEUE_NAME"]
    attempts = host.drain_queue(azurite.connection_string, queue)
    assert [i.ok for i in attempts] == [False] * 5                   # host.json maxDequeueCount
    # The exception as the host records it: type, message and the stack.
    assert attempts[0].exception.startswith("DatabricksUnavailable:")
    assert "Traceback" in attempts[0].stack_trace and "blueprints/worker.py" in attempts[0].stack_trace
    # The dequeue count reached the function as a number: the worker logs the attempt.
    assert any("(attempt 5)" in e.message for e in attempts[-1].logs)
    assert peek(azurite, queue) == []
    [poisoned] = peek(azurite, queue + "-poison")
    assert poisoned["run_id"] == run_id

    [escalation] = host.drain_queue(azurite.connection_string, queue + "-poison")
    assert escalation.function == "triage_poison" and escalation.ok, escalation.exception
    with _store(app_env) as store:
        record = store.get(f"{run_id}-triage-failed", str(job_id))
    assert record.action == "ESCALATE" and f"triage failed for run {run_id}" in record.reason
    assert "DatabricksUnavailable" in record.reason
    assert record.action_result["retriage"]["state"] == "waiting"     # later sweeps place the run


def test_a_message_that_is_not_a_request_is_dropped_not_retried(host, app_env, azurite):
    queue = app_env["TRIAGE_QUEUE_NAME"]
    _send_raw(azurite, queue, base64.b64encode(b"not a request").decode())
    [inv] = host.drain_queue(azurite.connection_string, queue)
    assert inv.ok and any("dropped" in e.message for e in inv.logs)
    assert peek(azurite, queue) == [] and peek(azurite, queue + "-poison") == []


def test_a_message_that_is_not_base64_never_reaches_the_worker(host, app_env, azurite):
    """A message the trigger cannot decode (host.json messageEncoding) fails in the binding, before
    any Python runs, and ends in the poison queue."""
    from azure.storage.queue import QueueClient

    queue = app_env["TRIAGE_QUEUE_NAME"]
    _send_raw(azurite, queue, "{plain json, not base64}")
    assert host.drain_queue(azurite.connection_string, queue) == []
    assert peek(azurite, queue) == []
    with QueueClient.from_connection_string(azurite.connection_string, queue + "-poison") as q:
        assert [m.content for m in q.peek_messages()] == ["{plain json, not base64}"]


def test_timer_sweep_finds_a_missed_failure_and_the_worker_decides_it(host, app_env, azurite, fake_databricks):
    run_id, job_id = load_failure(fake_databricks, "dev-001")
    tick = host.timer("triage_sweep")
    assert tick.ok, tick.exception
    [queued] = peek(azurite, app_env["TRIAGE_QUEUE_NAME"])
    assert queued["run_id"] == run_id and queued["source"] == "sweep"
    [inv] = host.drain_queue(azurite.connection_string, app_env["TRIAGE_QUEUE_NAME"])
    assert inv.ok
    with _store(app_env) as store:
        assert store.get(f"{run_id}-0", str(job_id)).action == "SEND_EMAIL"
    again = host.timer("triage_sweep", past_due=True)
    assert again.ok and peek(azurite, app_env["TRIAGE_QUEUE_NAME"]) == []
    assert any("past due" in e.message for e in again.logs)


def test_timer_sweep_that_cannot_reach_databricks_fails_the_invocation(host, app_env, fake_databricks):
    fake_databricks.inject("runs/list", *[status_fault(503, retry_after=0) for _ in range(50)])
    tick = host.timer("triage_sweep")
    assert not tick.ok and tick.exception.startswith("TriageError:")
    assert "sweep finished with errors" in tick.exception
