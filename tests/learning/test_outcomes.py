"""shared.learning.outcomes against the fake Databricks workspace, on both store backends."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.databricks import DatabricksClient, PatCredential, RetryPolicy
from shared.learning.outcomes import (SHADOW_RECHECK_S, SHADOW_WINDOW_S, agreement, check_outcomes,
                                      failure_times, hopeless_key)
from shared.store import DecisionRecord, Store
from tests.plugins.learning import JOB_ID, decision, failed_run, now_ms

SETTINGS = Settings(hopeless_after=3)


def FIRST_CHECK() -> int:   # noqa: N802 - reads like the constant it stands for
    """The first check time of a shadow decision made now."""
    return now_ms() + SHADOW_RECHECK_S * 1000 + 1000


@pytest.fixture
def client(fake_databricks):
    with DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token),
                          retry=RetryPolicy(backoff_base_s=0, max_attempts=2)) as c:
        yield c


def _hopeless(store, fingerprint="fp-net-1", job=JOB_ID) -> int:
    entry = store.state_get("hopeless", f"{job}:{fingerprint}")
    return int(entry.value.get("count", 0)) if entry else 0


def _repaired(fake, client, run_id: int) -> int:
    fake.load(failed_run(run_id))
    return int(client.repair_run({"run_id": run_id, "rerun_all_failed_tasks": True})["repair_id"])


class RacingStore(Store):
    """Delegates to a real store; just before the first decision update, another writer (a
    person's feedback) changes the same decision, so that update meets a stale etag."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.raced = 0

    def claim(self, record):
        return self.inner.claim(record)

    def get(self, decision_key, job_id=None):
        return self.inner.get(decision_key, job_id)

    def update(self, record):
        if not self.raced:
            self.raced += 1
            other = self.inner.get(record.decision_key, job_id=record.job_id)
            other.feedback = {"verdict": "correct", "source": "cli", "at": 1}
            assert self.inner.update(other).ok
        return self.inner.update(record)

    def list(self, job_id=None, since_ms=None, until_ms=None, limit=None):
        return self.inner.list(job_id, since_ms, until_ms, limit)

    def state_get(self, kind, key):
        return self.inner.state_get(kind, key)

    def state_put(self, kind, key, value, *, etag=None, if_absent=False, ttl_s=None):
        return self.inner.state_put(kind, key, value, etag=etag, if_absent=if_absent, ttl_s=ttl_s)


def _claim(store, record: DecisionRecord) -> DecisionRecord:
    claim = store.claim(record)
    assert claim.won
    return claim.record


# --- acted retries --------------------------------------------------------------------------------

def test_check_outcomes_repair_running_then_succeeded(learning_store, fake_databricks, client):
    repair_id = _repaired(fake_databricks, client, 1001)
    learning_store.state_put("hopeless", f"{JOB_ID}:fp-net-1", {"count": 2})
    _claim(learning_store, decision("1001-0", action_result={"repair_id": repair_id}))

    first = check_outcomes(SETTINGS, client=client, store=learning_store)
    assert [r.outcome["result"] for r in first] == ["running"]
    assert first[0].outcome["final"] is False
    assert check_outcomes(SETTINGS, client=client, store=learning_store) == []   # nothing new: no write

    fake_databricks.finish_run(1001, "SUCCESS")
    assert check_outcomes(SETTINGS, client=client, store=learning_store) == []   # not due: the back-off
    done = check_outcomes(SETTINGS, client=client, store=learning_store, now_ms=now_ms() + SHADOW_RECHECK_S * 1000)
    assert len(done) == 1
    out = learning_store.get("1001-0", job_id=str(JOB_ID)).outcome
    assert out["result"] == "succeeded" and out["final"] is True
    assert out["attempt"] == {"kind": "repair", "repair_id": repair_id}
    assert 30 <= out["recovered_after_s"] <= 600     # the failure ended a minute before the test
    assert _hopeless(learning_store) == 0            # a retry that worked resets the counter
    assert check_outcomes(SETTINGS, client=client, store=learning_store,
                          now_ms=now_ms() + SHADOW_WINDOW_S * 1000) == []   # final: not checked again


def test_check_outcomes_repair_failed_again_counts_once(learning_store, fake_databricks, client):
    repair_id = _repaired(fake_databricks, client, 1002)
    _claim(learning_store, decision("1002-0", run_id=1002, action_result={"repair_id": repair_id}))
    fake_databricks.finish_run(1002, "FAILED", "Connection refused")

    written = check_outcomes(SETTINGS, client=client, store=learning_store)
    assert [r.outcome["result"] for r in written] == ["failed"]
    assert "recovered_after_s" not in written[0].outcome
    assert _hopeless(learning_store) == 1
    check_outcomes(SETTINGS, client=client, store=learning_store)
    assert _hopeless(learning_store) == 1


def test_check_outcomes_submitted_run_succeeded(learning_store, fake_databricks, client):
    fake_databricks.load(failed_run(1003))
    body = {"run_name": "nightly-etl resized", "idempotency_token": "1003-0", "tasks": [{
        "task_key": "main", "notebook_task": {"notebook_path": "/Repos/etl/main"},
        "new_cluster": {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS4_v2", "num_workers": 4}}]}
    submitted = int(client.submit_run(body)["run_id"])
    _claim(learning_store, decision("1003-0", run_id=1003, category="RESOURCE", action="RETRY_WITH_NEW_PARAMS",
                                    fingerprint="fp-oom", action_result={"run_id": submitted}))
    fake_databricks.finish_run(submitted, "SUCCESS")

    [record] = check_outcomes(SETTINGS, client=client, store=learning_store)
    assert record.outcome["result"] == "succeeded"
    assert record.outcome["attempt"] == {"kind": "submit", "run_id": submitted}
    assert record.outcome["recovered_after_s"] >= 0


def test_check_outcomes_conflicting_writer_keeps_both_and_counts_once(learning_store, fake_databricks, client):
    repair_id = _repaired(fake_databricks, client, 1004)
    _claim(learning_store, decision("1004-0", run_id=1004, action_result={"repair_id": repair_id}))
    fake_databricks.finish_run(1004, "FAILED")

    racing = RacingStore(learning_store)
    written = check_outcomes(SETTINGS, client=client, store=racing)
    assert racing.raced == 1 and len(written) == 1
    stored = learning_store.get("1004-0", job_id=str(JOB_ID))
    assert stored.outcome["result"] == "failed"
    assert stored.feedback["verdict"] == "correct"
    assert _hopeless(learning_store) == 1


def test_check_outcomes_other_workspace_not_checked(learning_store, fake_databricks, client):
    repair_id = _repaired(fake_databricks, client, 1005)
    _claim(learning_store, decision("1005-0", run_id=1005, workspace="https://adb-1.1.azuredatabricks.net",
                                    action_result={"repair_id": repair_id}))
    fake_databricks.clear_requests()
    assert check_outcomes(SETTINGS, client=client, store=learning_store) == []
    assert fake_databricks.requests == []


def test_check_outcomes_not_acted_not_checked(learning_store, fake_databricks, client):
    _claim(learning_store, decision("1006-0", run_id=1006, status="failed", action_result={"error": "x"}))
    _claim(learning_store, decision("1007-0", run_id=1007, action="IGNORE", category="CANCELED", mode="shadow",
                                    status="decided"))
    assert check_outcomes(SETTINGS, client=client, store=learning_store) == []
    assert fake_databricks.requests == []


# --- shadow mode ------------------------------------------------------------------------------------

def test_check_outcomes_shadow_human_repair_succeeded(learning_store, fake_databricks, client):
    fake_databricks.load(failed_run(2001))
    _claim(learning_store, decision("2001-0", run_id=2001, mode="shadow", status="decided"))            # RETRY
    client.repair_run({"run_id": 2001, "rerun_all_failed_tasks": True})       # a person, from the UI
    fake_databricks.finish_run(2001, "SUCCESS")

    assert check_outcomes(SETTINGS, client=client, store=learning_store) == []   # not due yet
    [record] = check_outcomes(SETTINGS, client=client, store=learning_store, now_ms=FIRST_CHECK())
    out = record.outcome
    assert (out["human_action"], out["human_result"]) == ("repair", "succeeded")
    assert out["agreed"] is True and out["final"] is True
    assert out["recovered_after_s"] >= 0
    assert "result" not in out and _hopeless(learning_store) == 0   # people's reruns do not feed the counter


def test_check_outcomes_shadow_email_but_rerun_worked_disagrees(learning_store, fake_databricks, client):
    fake_databricks.load(failed_run(2002))
    _claim(learning_store, decision("2002-0", run_id=2002, mode="shadow", status="decided", category="DATA",
                                    action="SEND_EMAIL"))
    client.repair_run({"run_id": 2002, "rerun_all_failed_tasks": True})
    fake_databricks.finish_run(2002, "SUCCESS")

    [record] = check_outcomes(SETTINGS, client=client, store=learning_store, now_ms=FIRST_CHECK())
    assert (record.outcome["human_action"], record.outcome["agreed"]) == ("repair", False)


def test_check_outcomes_shadow_human_new_run(learning_store, fake_databricks, client):
    fake_databricks.load(failed_run(2003))
    _claim(learning_store, decision("2003-0", run_id=2003, mode="shadow", status="decided", category="UNKNOWN",
                                    action="ESCALATE"))
    new_run = int(client.run_now({"job_id": JOB_ID})["run_id"])     # "Run now" in the UI

    [pending] = check_outcomes(SETTINGS, client=client, store=learning_store, now_ms=FIRST_CHECK())
    assert (pending.outcome["human_action"], pending.outcome["human_result"]) == ("new_run", "running")
    assert pending.outcome["final"] is False and pending.outcome["agreed"] is None

    fake_databricks.finish_run(new_run, "FAILED")
    later = now_ms() + 3600 * 1000    # the next check time
    [record] = check_outcomes(SETTINGS, client=client, store=learning_store, now_ms=later)
    out = record.outcome
    assert (out["human_action"], out["human_run_id"], out["human_result"]) == ("new_run", new_run, "failed")
    assert out["agreed"] is True and out["final"] is True     # a plain rerun failed: it needed a person


def test_check_outcomes_shadow_scheduled_run_is_not_a_person(learning_store, fake_databricks, client):
    doc = failed_run(2004)
    fake_databricks.load(doc)
    scheduled = failed_run(2005, end_time=now_ms() + 1000, trigger="PERIODIC")
    scheduled["run"]["start_time"] = now_ms()
    fake_databricks.load(scheduled)
    created = now_ms()
    record = decision("2004-0", run_id=2004, mode="shadow", status="decided", category="CODE",
                      action="SEND_EMAIL", created_at=created)
    record.decision["run_times"] = failure_times(doc["run"])    # as the pipeline records it
    _claim(learning_store, record)

    fake_databricks.clear_requests()
    assert check_outcomes(SETTINGS, client=client, store=learning_store, now_ms=created + 1000) == []
    assert fake_databricks.requests == []       # before the first check time: not looked at
    first = created + SHADOW_RECHECK_S * 1000
    [young] = check_outcomes(SETTINGS, client=client, store=learning_store, now_ms=first)
    assert young.outcome["human_action"] == "none" and young.outcome["final"] is False
    assert young.outcome["agreed"] is None      # no evidence yet: someone may still rerun it
    assert [r.path.rsplit("/", 1)[-1] for r in fake_databricks.requests] == ["list"]   # no runs/get

    # between check times: not looked at again; at the next one, nothing changed: no write
    fake_databricks.clear_requests()
    assert check_outcomes(SETTINGS, client=client, store=learning_store, now_ms=first + 5 * 60_000) == []
    assert fake_databricks.requests == []
    assert check_outcomes(SETTINGS, client=client, store=learning_store, now_ms=created + 3600_000 + 1) == []
    assert len(fake_databricks.requests) == 1
    assert learning_store.get("2004-0", str(JOB_ID)).outcome["checked_at"] == first

    [old] = check_outcomes(SETTINGS, client=client, store=learning_store,
                           now_ms=created + SHADOW_WINDOW_S * 1000 + 1000)
    assert (old.outcome["human_action"], old.outcome["agreed"], old.outcome["final"]) == ("none", True, True)


@pytest.mark.parametrize("action,human,result,expected", [
    ("RETRY", "repair", "succeeded", True),
    ("RETRY", "new_run", "failed", False),
    ("RETRY", "none", None, None),
    ("RETRY_WITH_NEW_PARAMS", "repair", "succeeded", True),
    ("SEND_EMAIL", "none", None, True),
    ("SEND_EMAIL", "repair", "succeeded", False),
    ("ESCALATE", "new_run", "failed", True),
    ("ESCALATE", "repair", "running", None),
    ("IGNORE", "new_run", "succeeded", None),
])
def test_agreement_table(action, human, result, expected):
    assert agreement(action, human, result) is expected


@pytest.mark.parametrize("job,expected", [(4242, "4242:fp"), ("4242", "4242:fp"), ("nojob", "None:fp"),
                                          ("", "None:fp"), (None, "None:fp")])
def test_hopeless_key_matches_triage(job, expected):
    assert hopeless_key(job, "fp") == expected
