"""The sweep's passes over stored decisions survive odd records and runs that cannot be read.

One record the current code cannot read (a category or action from another version of the app,
a field an older writer left empty) must not stop the sweep from moving the others on; and a
retry whose run Databricks no longer shows (deleted, 404) must still reach an end: after the
two days a retry may wait, a person is told, instead of the record waiting for ever. Real parts:
the fake workspace over HTTP, a SQLite store.
"""

from __future__ import annotations

from demo.workspace import status_fault
from shared.app.lifecycle import summarize
from shared.config import Settings
from shared.store import DecisionRecord, now_ms
from shared.triage import act_due, retry_notifications, triage_run
from tests.helpers import corpus_doc

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


class RecordingNotifier:
    def __init__(self, status="sent"):
        self.calls = []
        self.status = status

    def notify(self, snapshot, decision, record):
        self.calls.append((record.decision_key, decision.action.value, list(decision.notes)))
        return {"status": self.status, "to": ["oncall@example.com"], "attempts": 1, "retryable": True}


def _settings():
    return Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_ACTION_ATTEMPTS": "3"})


def _load(fake, case, run_id=None):
    doc = corpus_doc(case)
    doc.pop("history", None)
    if run_id is not None:
        doc["run"]["run_id"] = run_id
    return fake.load(doc)


def _odd(store, run_id, **fields):
    """A decision written by another version of the app: a category this one does not know."""
    fields = {"action": "RETRY", "status": "decided", **fields}
    rec = DecisionRecord(decision_key=f"{run_id}-0", job_id="nojob", run_id=run_id, mode="act",
                         category="SOMETHING_NEWER", created_at=now_ms() + 1000, updated_at=now_ms() + 1000,
                         **fields)
    assert store.claim(rec).won
    return rec


def test_a_record_the_sweep_cannot_read_does_not_stop_the_due_actions_behind_it(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    fake_databricks.inject("runs/repair", *[status_fault(503)] * 10)
    s, notifier = _settings(), RecordingNotifier()
    good = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    assert good.status == "retrying"
    fake_databricks.clear_faults()
    odd = _odd(store, _load(fake_databricks, "dev-043", run_id=run_id + 1))   # newer: listed first
    act_due(s, client=client, store=store, notifier=notifier, now=now_ms() + 2 * HOUR_MS)
    good = store.get(good.decision_key)
    assert good.status == "acted" and good.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    left = store.get(odd.decision_key)                 # the odd one waits, and health names it
    assert left.status == "decided"
    assert odd.decision_key in summarize(store.list(), s, now=now_ms() + 2 * HOUR_MS)["stuck_keys"]


def test_a_record_the_sweep_cannot_read_does_not_stop_the_resends_behind_it(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-015")                     # DATA: SEND_EMAIL
    s = _settings()
    good = triage_run(run_id, s, client=client, store=store, notifier=RecordingNotifier("failed"),
                      act_now=True).record
    assert (good.action, good.status) == ("SEND_EMAIL", "failed")
    _odd(store, _load(fake_databricks, "dev-015", run_id=run_id + 1), action="SEND_EMAIL", status="failed",
         notification={"status": "failed", "attempts": 1, "retryable": True})
    notifier = RecordingNotifier()
    retry_notifications(s, client=client, store=store, notifier=notifier, now=now_ms() + HOUR_MS)
    good = store.get(good.decision_key)
    assert good.status == "acted" and good.notification["status"] == "sent"
    assert [c[0] for c in notifier.calls] == [good.decision_key]


def test_a_retry_whose_run_cannot_be_read_any_more_is_handed_to_a_person_after_two_days(fake_databricks, client,
                                                                                          store):
    run_id = _load(fake_databricks, "dev-043")
    fake_databricks.inject("runs/repair", *[status_fault(503)] * 10)
    s, notifier = _settings(), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    assert rec.status == "retrying"
    fake_databricks.clear_faults()
    fake_databricks.inject("runs/get", *[status_fault(404, error_code="RESOURCE_DOES_NOT_EXIST")] * 200)
    act_due(s, client=client, store=store, notifier=notifier, now=now_ms() + 2 * HOUR_MS)
    assert store.get(rec.decision_key).status == "retrying" and notifier.calls == []   # not yet: it may come back
    act_due(s, client=client, store=store, notifier=notifier, now=now_ms() + 3 * DAY_MS)
    rec = store.get(rec.decision_key)
    assert rec.status == "escalated", rec.action_result
    [(key, action, notes)] = notifier.calls
    assert (key, action) == (rec.decision_key, "ESCALATE")
    assert "cannot be read" in rec.action_result["escalated"] and "404" in rec.action_result["escalated"]
    assert fake_databricks.repairs == []


def test_a_notification_whose_run_is_gone_is_still_resent(fake_databricks, client, store):
    """The first send failed, then the run was deleted (runs/get answers 404 for good): the
    resend goes out from what the decision recorded, instead of waiting for the run for ever."""
    run_id = _load(fake_databricks, "dev-015")                     # DATA: SEND_EMAIL
    s = _settings()
    rec = triage_run(run_id, s, client=client, store=store, notifier=RecordingNotifier("failed"),
                     act_now=True).record
    assert (rec.action, rec.status) == ("SEND_EMAIL", "failed")
    fake_databricks.inject("runs/get", *[status_fault(404, error_code="RESOURCE_DOES_NOT_EXIST")] * 200)
    notifier = RecordingNotifier()
    retry_notifications(s, client=client, store=store, notifier=notifier, now=now_ms() + HOUR_MS)
    rec = store.get(rec.decision_key)
    assert rec.status == "acted" and rec.notification["status"] == "sent"
    assert [c[:2] for c in notifier.calls] == [(rec.decision_key, "SEND_EMAIL")]
