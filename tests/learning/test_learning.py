"""The learning loop end to end, on both store backends: retries of one failure fingerprint that
keep failing (seen by shared.learning.outcomes against the fake workspace) make the policy
(shared.triage.decide) escalate instead of retrying again."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.databricks import DatabricksClient, PatCredential, RetryPolicy
from shared.models import Action
from shared.learning.outcomes import check_outcomes
from shared.snapshot import parse_snapshot
from shared.store import DecisionRecord
from shared.triage import decide
from tests.plugins.learning import JOB_ID, failed_run

ERROR = "java.net.ConnectException: Connection refused (Connection refused)"
SETTINGS = Settings(hopeless_after=3, hopeless_window_s=7 * 86400)


@pytest.fixture
def client(fake_databricks):
    with DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token),
                          retry=RetryPolicy(backoff_base_s=0, max_attempts=2)) as c:
        yield c


def _fail_and_retry(store, fake, client, run_id: int, *, retry_result: str, job_id: int = JOB_ID):
    """A run fails; the app decides, repairs it (act mode) and records the decision; the repair
    ends with ``retry_result``; the sweep checks outcomes. Returns the decision."""
    doc = failed_run(run_id, job_id=job_id, message=ERROR)
    fake.load(doc)
    snapshot = parse_snapshot(doc)
    d = decide(snapshot, SETTINGS, store=store, use_llm=False)
    if d.action is not Action.RETRY:
        return d
    repair_id = int(client.repair_run({"run_id": run_id, "rerun_all_failed_tasks": True})["repair_id"])
    assert store.claim(DecisionRecord(
        decision_key=snapshot.decision_key, job_id=str(job_id), run_id=run_id, category=d.category.value,
        action=d.action.value, confidence=d.confidence, fingerprint=d.fingerprint, excerpt=d.excerpt,
        mode="act", status="acted", decision=d.to_dict(), action_result={"repair_id": repair_id})).won
    fake.finish_run(run_id, retry_result, ERROR if retry_result == "FAILED" else "")
    check_outcomes(SETTINGS, client=client, store=store)
    return d


def test_hopeless_fingerprint_escalated_after_n_failed_retries(learning_store, fake_databricks, client):
    decisions = [_fail_and_retry(learning_store, fake_databricks, client, 3000 + i, retry_result="FAILED")
                 for i in range(SETTINGS.hopeless_after)]
    assert [d.action for d in decisions] == [Action.RETRY] * 3     # retried while the count was below N
    fp = decisions[0].fingerprint
    assert {d.fingerprint for d in decisions} == {fp}
    assert learning_store.state_get("hopeless", f"{JOB_ID}:{fp}").value["count"] == 3

    nth = _fail_and_retry(learning_store, fake_databricks, client, 3100, retry_result="FAILED")
    assert nth.action is Action.ESCALATE
    assert any("failure fingerprint failed 3 times" in n for n in nth.notes)
    assert fake_databricks.requests_to("runs/repair")[-1].body["run_id"] == 3002   # no 4th repair

    # the counter is per job: the same failure in another job is still retried
    other = _fail_and_retry(learning_store, fake_databricks, client, 3200, retry_result="SUCCESS", job_id=777)
    assert other.action is Action.RETRY


def test_successful_retry_resets_the_count(learning_store, fake_databricks, client):
    for i in range(SETTINGS.hopeless_after - 1):
        _fail_and_retry(learning_store, fake_databricks, client, 4000 + i, retry_result="FAILED")
    ok = _fail_and_retry(learning_store, fake_databricks, client, 4010, retry_result="SUCCESS")
    assert learning_store.state_get("hopeless", f"{JOB_ID}:{ok.fingerprint}").value["count"] == 0
    again = _fail_and_retry(learning_store, fake_databricks, client, 4020, retry_result="FAILED")
    assert again.action is Action.RETRY
