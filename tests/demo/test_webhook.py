"""demo/webhook.py: a sample notification through the real handler, then the worker."""

from shared.config import Settings
from demo.webhook import MemoryQueue, post_notification, sample_notification
from shared.app.runtime import open_runtime
from shared.app.webhook import WebhookCredentials
from shared.app.worker import process_request
from tests.helpers import corpus_doc


def test_post_sample_failure_is_queued_and_the_worker_triages_it(fake_databricks, fake_databricks_env, tmp_path):
    run_id = fake_databricks.load(corpus_doc("dev-001"))
    settings = Settings.from_env({**fake_databricks_env, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"})
    queue = MemoryQueue()
    delivery = post_notification(sample_notification(run_id, job_id=7, job_name="nightly"), settings, queue=queue)
    assert delivery.status == 202 and delivery.request.run_id == run_id
    assert queue.requests() == [delivery.request]
    with open_runtime(settings) as rt:
        outcome = process_request(delivery.request, settings, runtime=rt)
        assert outcome.status == "decided" and rt.store.get(outcome.decision_key).category == "PERMISSION"


def test_sample_task_notification_and_credentials():
    settings = Settings.from_env({"DATABRICKS_HOST": "https://ws.example.com"})
    creds = WebhookCredentials("u", "p" * 12)
    doc = sample_notification(10, task_key="load", task_run_id=11)
    assert doc["run"] == {"run_id": "11", "parent_run_id": "10"} and "job_id" not in doc["job"]
    delivery = post_notification(doc, settings, credentials=creds)
    assert delivery.status == 202 and (delivery.request.run_id, delivery.request.task_run_id) == (10, 11)
    ignored = post_notification(sample_notification(10, event_type="jobs.on_success"), settings)
    assert ignored.status == 200 and ignored.request is None
