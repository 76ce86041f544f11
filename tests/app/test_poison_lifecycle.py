"""A "triage failed" escalation (the poison path) whose process died after claiming it: nothing
to do in Databricks, so the due actions leave it alone (it used to be marked ``duplicate`` after
a useless ``runs/get``), and the notification sweep sends it, in shadow mode too (where it used
to be lost: a shadow record counted as an end). Until then health counts it past its deadline."""

from __future__ import annotations

import pytest

from shared.app.lifecycle import summarize
from shared.config import Settings
from shared.store import DecisionRecord, now_ms
from shared.triage import act_due, retry_notifications

MINUTE_MS = 60_000


class RecordingNotifier:
    def __init__(self):
        self.calls = []

    def notify(self, snapshot, decision, record):
        self.calls.append((record.decision_key, decision.action.value))
        return {"status": "sent", "to": ["oncall@example.com"]}


@pytest.mark.parametrize("mode", ["act", "shadow"])
def test_a_poison_escalation_left_unsent_is_sent_by_the_sweep(fake_databricks, client, store, mode):
    rec = DecisionRecord(decision_key="4242-triage-failed", job_id="nojob", run_id=4242, category="UNKNOWN",
                         action="ESCALATE", decided_by="policy", reason="triage failed for run 4242: boom",
                         mode=mode, status="decided", created_at=now_ms() - 20 * MINUTE_MS)
    assert store.claim(rec).won                           # what a poison process killed after its claim leaves
    settings = Settings.from_env({"TRIAGE_MODE": mode})
    now = now_ms()
    summary = summarize(store.list(), settings, now=now)
    assert summary["past_deadline"] == 1 and summary["stuck_keys"] == [rec.decision_key]

    notifier = RecordingNotifier()
    assert act_due(settings, client=client, store=store, notifier=notifier, now=now) == []
    assert store.get(rec.decision_key).status == "decided" and fake_databricks.requests == []
    [done] = retry_notifications(settings, client=client, store=store, notifier=notifier, now=now)
    assert notifier.calls == [(rec.decision_key, "ESCALATE")]
    assert done.status == "acted" and done.notification["status"] == "sent"
    assert summarize(store.list(), settings, now=now)["past_deadline"] == 0
    retry_notifications(settings, client=client, store=store, notifier=notifier, now=now + 60 * MINUTE_MS)
    assert len(notifier.calls) == 1                       # once


def test_an_undelivered_poison_escalation_counts_in_shadow_mode(store):
    rec = DecisionRecord(decision_key="4343-triage-failed", job_id="nojob", run_id=4343, action="ESCALATE",
                         mode="shadow", status="failed", notification={"status": "failed", "attempts": 5})
    assert store.claim(rec).won
    summary = summarize(store.list(), Settings.from_env({}), now=now_ms())
    assert summary["undelivered"] == 1
