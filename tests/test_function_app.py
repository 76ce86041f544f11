"""function_app.py: the functions as the host indexes them, and the triggers end to end.

End to end means: a real ``azure.functions.HttpRequest`` to the webhook function, the message it
queues read back from Azurite, a real ``QueueMessage`` built from it for the worker function,
the fake Databricks workspace over HTTP, and the decision read from Azurite tables.
"""

import base64
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

import function_app
from shared.config import Settings
from shared.errors import DatabricksUnavailable
from shared.store import open_store
from demo.workspace import status_fault
from tests.helpers import corpus_doc
from tests.plugins.app import WEBHOOK_PASSWORD, basic

ROOT = Path(__file__).resolve().parents[1]
URL = "http://localhost:7071/api/databricks/webhook"
FUNCTIONS = {f.get_function_name(): f for f in function_app.app.get_functions()}


def _trigger(name):
    return FUNCTIONS[name].get_trigger().get_dict_repr()


def _user(name):
    return FUNCTIONS[name].get_user_function()


# --- indexing ------------------------------------------------------------------------------------

def test_app_indexes_exactly_the_expected_functions():
    assert set(FUNCTIONS) == {"databricks_webhook", "triage_worker", "triage_poison", "triage_sweep", "health",
                              "feedback_post", "feedback_link", "feedback_confirm"}
    for fn in FUNCTIONS.values():   # what the host reads: every binding serialises, one trigger each
        json.loads(fn.get_function_json())
        assert sum(1 for b in fn.get_bindings() if b.get_dict_repr()["type"].endswith("Trigger")) == 1


def test_webhook_binding_is_post_function_key_route():
    t = _trigger("databricks_webhook")
    assert t["type"] == "httpTrigger" and t["route"] == "databricks/webhook"
    assert [str(m.value) for m in t["methods"]] == ["POST"] and t["authLevel"].value == "function"
    outputs = [b.get_dict_repr() for b in FUNCTIONS["databricks_webhook"].get_bindings()
               if b.get_dict_repr()["type"] == "http"]
    assert outputs and outputs[0]["name"] == "$return"


def test_health_binding_is_anonymous_get():
    t = _trigger("health")
    assert (t["type"], t["route"], t["authLevel"].value) == ("httpTrigger", "health", "anonymous")
    assert [str(m.value) for m in t["methods"]] == ["GET"]


def test_worker_and_poison_bindings_listen_on_the_configured_queue():
    worker, poison = _trigger("triage_worker"), _trigger("triage_poison")
    assert worker["type"] == poison["type"] == "queueTrigger"
    assert worker["queueName"] == "%TRIAGE_QUEUE_NAME%"
    assert poison["queueName"] == "%TRIAGE_QUEUE_NAME%-poison"
    assert worker["connection"] == poison["connection"] == "AzureWebJobsStorage"


def test_sweep_binding_is_a_timer_on_the_schedule_setting():
    t = _trigger("triage_sweep")
    assert t["type"] == "timerTrigger" and t["schedule"] == "%TRIAGE_SWEEP_SCHEDULE%"
    assert t["runOnStartup"] is False


def test_every_binding_setting_exists_in_local_settings_example():
    values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    for name in ("TRIAGE_QUEUE_NAME", "TRIAGE_SWEEP_SCHEDULE", "AzureWebJobsStorage"):
        assert values.get(name), name
    assert len(values["TRIAGE_SWEEP_SCHEDULE"].split()) == 6      # NCRONTAB: seconds first
    assert values["TRIAGE_SWEEP_SCHEDULE"] == Settings().sweep_schedule


def test_host_json_queue_retries_and_bundle():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] == 5 and queues["messageEncoding"] == "base64"
    assert {"batchSize", "newBatchThreshold", "visibilityTimeout"} <= set(queues) and host["functionTimeout"]


def test_azure_sdk_request_logs_are_not_shipped_at_info():
    """The worker ships every INFO record to the host; the SDKs' per-request dumps stay out."""
    import logging

    for name in ("azure.core.pipeline.policies.http_logging_policy", "azure.identity"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name


def test_importing_function_app_loads_no_cloud_sdk():
    code = ("import sys, function_app\n"
            "heavy = ('openai', 'azure.identity', 'azure.data.tables', 'azure.storage.queue', 'requests')\n"
            "print([m for m in sys.modules if m in heavy or m.startswith(tuple(h + '.' for h in heavy))])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- end to end ------------------------------------------------------------------------------------

def _load(fake, case):
    """A corpus failure with fresh ids (the Azurite tables are shared by the session) that ended a
    minute ago (so the sweep's window holds it)."""
    doc = corpus_doc(case)
    doc.pop("history", None)
    run_id, job_id = random.randrange(10**14, 10**15), random.randrange(10**14, 10**15)
    run = doc["run"]
    duration = int(run.get("end_time", 0)) - int(run.get("start_time", 0))
    run.update(run_id=run_id, job_id=job_id, end_time=int(time.time() * 1000) - 60_000)
    run["start_time"] = run["end_time"] - max(duration, 1000)
    if doc.get("job"):
        doc["job"]["job_id"] = job_id
    fake.load(doc)
    return run_id, job_id


def _notification(run_id, job_id):
    return {"event_type": "jobs.on_failure", "workspace_id": "1234567890123456",
            "run": {"run_id": str(run_id)}, "job": {"job_id": str(job_id), "name": "nightly-etl"}}


def _post_webhook(doc, *, auth=basic(), content_type="application/json"):
    headers = {"Content-Type": content_type}
    if auth:
        headers["Authorization"] = auth
    req = func.HttpRequest(method="POST", url=URL, headers=headers, body=json.dumps(doc).encode())
    return _user("databricks_webhook")(req)


def _drain(env, azurite, queue_name=None):
    """Receive every message of the queue as the host does and build the trigger's QueueMessage."""
    from azure.storage.queue import QueueClient

    messages = []
    with QueueClient.from_connection_string(azurite.connection_string, queue_name or env["TRIAGE_QUEUE_NAME"]) as q:
        for m in q.receive_messages(max_messages=32, visibility_timeout=60):
            body = base64.b64decode(m.content)          # host.json messageEncoding: base64
            messages.append(QueueMessage(id=m.id, body=body, dequeue_count=m.dequeue_count, pop_receipt=m.pop_receipt))
            q.delete_message(m)
    return messages


def _store(env):
    return open_store(Settings.from_env(env))


def test_webhook_to_queue_to_worker_to_tables(app_env, azurite, fake_databricks):
    run_id, job_id = _load(fake_databricks, "dev-001")          # a permission error: SEND_EMAIL
    resp = _post_webhook(_notification(run_id, job_id))
    assert resp.status_code == 202 and resp.mimetype == "application/json"
    answer = json.loads(resp.get_body())
    assert answer["run_id"] == run_id and answer["request_id"]
    assert fake_databricks.requests == []                       # the webhook calls nobody

    [message] = _drain(app_env, azurite)
    request = json.loads(message.get_body())
    assert request["request_id"] == answer["request_id"] and request["workspace"] == fake_databricks.url
    assert _user("triage_worker")(message) is None

    with _store(app_env) as store:
        record = store.get(f"{run_id}-0", str(job_id))
    assert record is not None and record.category == "PERMISSION" and record.action == "SEND_EMAIL"
    assert record.workspace == fake_databricks.url and record.mode == "act"
    assert (record.notification["status"], record.notification["channel"], record.status) == ("sent", "webhook", "acted")
    assert fake_databricks.writes == []


def test_duplicates_webhook_twice_and_sweep_give_one_decision_one_action(app_env, azurite, fake_databricks):
    run_id, job_id = _load(fake_databricks, "dev-055")   # OOM on a job cluster: a resized one-time run, no back-off
    for _ in range(2):
        assert _post_webhook(_notification(run_id, job_id)).status_code == 202
    _user("triage_sweep")(TimerRequest(past_due=False))     # the sweep finds the same failure
    messages = _drain(app_env, azurite)
    assert len(messages) == 3
    assert sorted(json.loads(m.get_body())["source"] for m in messages) == ["sweep", "webhook", "webhook"]
    for message in messages:
        _user("triage_worker")(message)
    assert len(fake_databricks.requests_to("runs/submit")) == 1
    with _store(app_env) as store:
        decisions = [r for r in store.list(job_id=str(job_id))]
    assert len(decisions) == 1 and decisions[0].status == "acted"
    # Once decided, the next sweep queues nothing more for it.
    _user("triage_sweep")(TimerRequest(past_due=False))
    assert _drain(app_env, azurite) == []


def test_duplicates_of_a_backed_off_retry_repair_once(app_env, azurite, fake_databricks):
    from shared.databricks import DatabricksClient, PatCredential
    from shared.triage import act_due

    run_id, job_id = _load(fake_databricks, "dev-043")          # a time-out: RETRY after a back-off
    for _ in range(2):
        _post_webhook(_notification(run_id, job_id))
    _user("triage_sweep")(TimerRequest(past_due=False))
    for message in _drain(app_env, azurite):
        _user("triage_worker")(message)
    settings = Settings.from_env(app_env)
    with _store(app_env) as store, DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token)) as c:
        [record] = store.list(job_id=str(job_id))
        assert record.status == "decided" and record.not_before > 0
        for _ in range(2):      # two sweeps after the back-off
            act_due(settings, client=c, store=store, now=record.not_before + 1000)
    repairs = [r for r in fake_databricks.requests_to("runs/repair") if r.body["run_id"] == run_id]
    assert len(repairs) == 1


def test_task_level_notification_triages_the_parent_run(app_env, azurite, fake_databricks):
    run_id, job_id = _load(fake_databricks, "dev-001")
    doc = _notification(123456789, job_id)
    doc["task"] = {"task_key": "ingest"}
    doc["run"]["parent_run_id"] = run_id
    assert _post_webhook(doc).status_code == 202
    [message] = _drain(app_env, azurite)
    body = json.loads(message.get_body())
    assert (body["run_id"], body["task_run_id"], body["task_key"]) == (run_id, 123456789, "ingest")


def test_webhook_http_answers_for_bad_requests(app_env):
    resp = _post_webhook(_notification(1, 2), auth=basic(password="wrong"))
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
    assert WEBHOOK_PASSWORD not in resp.get_body().decode()
    resp = _post_webhook({"event_type": "jobs.on_start", "run": {"run_id": "1"}})
    assert resp.status_code == 200 and json.loads(resp.get_body())["status"] == "ignored"
    resp = _post_webhook(_notification(1, 2), content_type="text/plain")
    assert resp.status_code == 415
    req = func.HttpRequest(method="POST", url=URL, headers={"Authorization": basic()}, body=b"{oops")
    resp = _user("databricks_webhook")(req)
    assert resp.status_code == 400 and "Traceback" not in resp.get_body().decode()


def test_webhook_http_storage_down_is_503_try_again(app_env, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                       "AccountKey=" + base64.b64encode(b"k").decode() + ";QueueEndpoint=http://127.0.0.1:9/x;")
    resp = _post_webhook(_notification(1, 2))
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert "try again" in json.loads(resp.get_body())["error"]


def test_webhook_http_misconfigured_app_is_503(app_env, monkeypatch):
    monkeypatch.setenv("TRIAGE_MODE", "sometimes")
    assert _post_webhook(_notification(1, 2)).status_code == 503


def test_worker_transient_failure_raises_then_poison_escalates(app_env, azurite, fake_databricks):
    run_id, job_id = _load(fake_databricks, "dev-001")
    _post_webhook(_notification(run_id, job_id))
    [message] = _drain(app_env, azurite)
    fake_databricks.inject("runs/get", *[status_fault(503, retry_after=0) for _ in range(8)])
    with pytest.raises(DatabricksUnavailable):
        _user("triage_worker")(message)         # the host retries, then moves it to <queue>-poison
    poisoned = QueueMessage(id="p1", body=message.get_body(), dequeue_count=1)
    _user("triage_poison")(poisoned)
    with _store(app_env) as store:
        record = store.get(f"{run_id}-triage-failed", str(job_id))
    assert record.action == "ESCALATE" and f"triage failed for run {run_id}" in record.reason
    assert "DatabricksUnavailable" in record.reason


def test_worker_permanent_failure_escalates_at_once(app_env, azurite, fake_databricks):
    _post_webhook(_notification(777000111, 5))              # a run the workspace does not have
    [message] = _drain(app_env, azurite)
    _user("triage_worker")(message)                         # no raise: retrying cannot help
    with _store(app_env) as store:
        record = store.get("777000111-triage-failed", "5")
    assert record.action == "ESCALATE" and "DatabricksNotFound" in record.reason


def test_worker_drops_a_malformed_message(app_env, caplog):
    _user("triage_worker")(QueueMessage(id="m1", body=b"not a request", dequeue_count=1))
    assert "m1" in caplog.text and "dropped" in caplog.text


def test_health_reports_booleans_and_no_secrets(app_env, monkeypatch):
    monkeypatch.setenv("KEY_VAULT_URL", "https://kv-example.vault.azure.net")
    resp = _user("health")(func.HttpRequest(method="GET", url="http://localhost:7071/api/health", body=b""))
    assert resp.status_code == 200
    text = resp.get_body().decode()
    body = json.loads(text)
    assert body["status"] == "ok" and body["mode"] == "act" and body["version"]
    assert body["integrations"]["databricks"] is True and body["integrations"]["key_vault"] is True
    assert body["integrations"]["llm"] is False
    assert body["channels"] == {"notify_via": ["webhook"], "escalate_via": ["webhook"]}
    for name in ("TRIAGE_WEBHOOK_URL", "AzureWebJobsStorage", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "TRIAGE_WEBHOOK_PASSWORD"):
        assert app_env[name] not in text, name
    assert "vault.azure.net" not in text and "127.0.0.1" not in text


def test_health_with_bad_settings_is_503_without_details(monkeypatch):
    monkeypatch.setenv("TRIAGE_MODE", "sometimes")
    resp = _user("health")(func.HttpRequest(method="GET", url="http://localhost:7071/api/health", body=b""))
    assert resp.status_code == 503 and "sometimes" not in resp.get_body().decode()
