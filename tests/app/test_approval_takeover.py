"""An approval whose process dies is carried on by the sweep (docs/lifecycle.md, "approving").

A person approves a proposed retry; the process carrying it out (``python -m shared approve``,
or the function behind the email's button) dies. Before it recorded ``acting`` the approval is
left ``approving``: past TRIAGE_ACTING_TIMEOUT the sweep takes it over, asks Databricks, and
carries the approval out once; meanwhile ``health`` counts it, and past its deadline as stuck.
After ``acting`` was recorded the action's own lifecycle reconciles it from ``repair_history``.
The approval request comes from a hostile model on a held-out PERMISSION failure (the model
proposes a retry the policy will not make), over real HTTP against the fake workspace.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from demo.workspace import hold_fault
from shared.app.approvals import approval_state, resume_approvals
from shared.app.lifecycle import approving_since, deadline_ms, summarize
from shared.config import Settings
from shared.store import now_ms, open_store
from shared.triage import act_due, triage_run
from tests.plugins.crash import ROOT, crash_env, kill_while_held

MINUTE_MS = 60_000
HELD_OUT = Path(__file__).resolve().parents[1] / "corpus" / "validation" / "val-001.json"   # PERMISSION


def _held_out() -> dict:
    return json.loads(HELD_OUT.read_text())


class RecordingNotifier:
    def __init__(self):
        self.calls = []

    def notify(self, snapshot, decision, record):
        self.calls.append(decision.action.value)
        return {"status": "sent", "to": ["owner@example.com"]}



def _model_env(model):
    return {"AZURE_OPENAI_ENDPOINT": model.url, "AZURE_OPENAI_DEPLOYMENT": model.deployment,
            "AZURE_OPENAI_API_KEY": model.api_key, "TRIAGE_LLM_MIN_RULE_CONFIDENCE": "1.0"}


def _pending(fake, client, store, settings):
    """A decision waiting for a person's approval of a proposed repair (RETRY)."""
    doc = _held_out()                                  # PERMISSION; the model says retry
    doc.pop("history", None)
    doc["run"]["run_id"] = 7_000_000_000 + uuid.uuid4().int % 1_000_000_000   # unique in a shared Azurite
    run_id = fake.load(doc)
    writes = len(fake.writes)
    rec = triage_run(run_id, settings, client=client, store=store, notifier=RecordingNotifier(), act_now=True).record
    assert (rec.action, rec.status, approval_state(rec)) == ("SEND_EMAIL", "acted", "pending")
    assert rec.decision["proposed_action"] == "RETRY" and len(fake.writes) == writes
    return rec


def _left_approving(store, rec, *, minutes_ago, by="owner@example.com"):
    """What a process that died after recording the approval leaves: ``approving``, nothing sent."""
    rec = store.get(rec.decision_key, rec.job_id)
    at = now_ms() - minutes_ago * MINUTE_MS
    rec.decision = {**rec.decision, "approval": "approving",
                    "approval_history": [*rec.decision.get("approval_history", []),
                                         {"state": "approving", "by": by, "at": at}]}
    rec.updated_at = at
    assert store.update(rec).ok
    return store.get(rec.decision_key, rec.job_id)


def test_a_stuck_approval_is_counted_then_taken_over_and_carried_out_once(fake_databricks, client, store,
                                                                             hostile_model):
    settings = Settings.from_env({"TRIAGE_MODE": "act", **_model_env(hostile_model)})
    rec = _pending(fake_databricks, client, store, settings)
    notifier = RecordingNotifier()

    stuck = _left_approving(store, rec, minutes_ago=5)
    assert resume_approvals(settings, client=client, store=store, notifier=notifier) == []   # its owner may live
    assert approval_state(store.get(rec.decision_key)) == "approving" and fake_databricks.writes == []
    summary = summarize([stuck], settings, now=now_ms())
    assert (summary["approving"], summary["past_deadline"]) == (1, 0)
    late = deadline_ms(stuck, settings) + 1                      # nobody moved it on: health says stuck
    summary = summarize([stuck], settings, now=late)
    assert (summary["approving"], summary["past_deadline"]) == (1, 1)
    assert summary["stuck_keys"] == [rec.decision_key]

    stuck = _left_approving(store, rec, minutes_ago=20)          # past TRIAGE_ACTING_TIMEOUT (15 min)
    since = approving_since(stuck)
    [done] = resume_approvals(settings, client=client, store=store, notifier=notifier)
    assert (done.action, done.status, done.decided_by) == ("RETRY", "acted", "person")
    assert approval_state(done) == "approved"
    assert done.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    takeover = [h for h in done.decision["approval_history"] if h["by"] == "sweep"]
    assert takeover and takeover[0]["approver"] == "owner@example.com" and takeover[0]["since"] == since
    assert "approved by owner@example.com" in done.reason
    assert deadline_ms(done, settings) is None and summarize([done], settings, now=late)["approving"] == 0

    later = now_ms() + 60 * MINUTE_MS                            # later sweeps change nothing
    assert resume_approvals(settings, client=client, store=store, notifier=notifier, now=later) == []
    act_due(settings, client=client, store=store, notifier=notifier, now=later)
    assert len(fake_databricks.requests_to("runs/repair")) == 1 and notifier.calls == []


def test_a_stuck_approval_of_a_run_repaired_meanwhile_is_refused_without_a_write(fake_databricks, client, store,
                                                                                  hostile_model):
    settings = Settings.from_env({"TRIAGE_MODE": "act", **_model_env(hostile_model)})
    rec = _pending(fake_databricks, client, store, settings)
    _left_approving(store, rec, minutes_ago=20)
    client.repair_run({"run_id": rec.run_id, "rerun_all_failed_tasks": True})   # someone repaired it by hand
    writes = len(fake_databricks.writes)
    [done] = resume_approvals(settings, client=client, store=store, notifier=RecordingNotifier())
    assert approval_state(done) == "refused" and done.decision["approval_history"][-1]["reason"] == "the run moved on"
    assert (done.action, done.status) == ("SEND_EMAIL", "acted")  # the decision stays what the owner was told
    assert len(fake_databricks.writes) == writes and deadline_ms(done, settings) is None


def test_a_stuck_approval_in_shadow_mode_is_recorded_and_nothing_sent(fake_databricks, client, store, hostile_model):
    settings = Settings.from_env({"TRIAGE_MODE": "shadow", **_model_env(hostile_model)})
    doc = _held_out()
    doc.pop("history", None)
    run_id = fake_databricks.load(doc)
    rec = triage_run(run_id, settings, client=client, store=store, notifier=RecordingNotifier()).record
    assert rec.mode == "shadow" and approval_state(rec) == "pending"
    _left_approving(store, rec, minutes_ago=20)
    [done] = resume_approvals(settings, client=client, store=store, notifier=RecordingNotifier())
    assert approval_state(done) == "approved" and fake_databricks.writes == []


# --- a real approving process killed with SIGKILL ------------------------------------------------

@pytest.mark.parametrize("point", ["approving", "acting"])
def test_approve_process_killed_ends_with_exactly_one_repair(fake_databricks, client, storage, channels,
                                                             hostile_model, point):
    """``approving``: killed while it reads the run (before anything is sent); ``acting``: killed
    after Databricks ran the repair, before the answer reached it. Then the sweeps run with the
    clock past TRIAGE_ACTING_TIMEOUT (1 min here)."""
    env = {**crash_env(fake_databricks, storage, channels), **_model_env(hostile_model)}
    settings = Settings.from_env(env)
    with open_store(settings) as store:
        rec = _pending(fake_databricks, client, store, settings)
    fake_databricks.clear_requests()
    if point == "approving":
        fake_databricks.inject("runs/get", hold_fault(processed=False))
    else:
        fake_databricks.inject("runs/repair", hold_fault(processed=True))
    proc = subprocess.Popen([sys.executable, "-m", "shared", "approve", rec.decision_key, "--by", "owner", "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_while_held(fake_databricks, proc)
    with open_store(settings) as store:
        left = store.get(rec.decision_key)
        if point == "approving":
            assert approval_state(left) == "approving" and left.status == "acted" and fake_databricks.repairs == []
        else:
            assert approval_state(left) == "approved" and left.status == "acting"
            assert len(fake_databricks.repairs) == 1
        notifier = RecordingNotifier()
        for minutes in (2, 5):                              # the sweeps that follow (sweep.py's order)
            later = now_ms() + minutes * MINUTE_MS
            act_due(settings, client=client, store=store, notifier=notifier, now=later)
            resume_approvals(settings, client=client, store=store, notifier=notifier, now=later)
        done = store.get(rec.decision_key)
    assert (done.action, done.status, done.decided_by, approval_state(done)) == ("RETRY", "acted", "person", "approved")
    assert len(fake_databricks.repairs) == 1
    assert done.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    assert len([r for r in fake_databricks.requests_to("runs/repair") if r.status == 200]) <= 1
    assert notifier.calls == []


# --- an approval of an older decision ----------------------------------------------------------------

def test_an_approval_days_after_its_decision_is_followed_to_its_end(fake_databricks, client, store, hostile_model):
    """Approval links live 14 days; the sweep reads the last week of decisions. An approved
    repair of a 10-day-old decision that meets a 503 is still sent again (not escalated as a
    retry too old to send: it was approved just now), counted, and forgotten once it ended."""
    from demo.workspace import status_fault
    from shared.app.approvals import approve, open_approvals
    from shared.app.lifecycle import HEALTH_KEY, HEALTH_KIND
    from shared.app.sweep import sweep

    settings = Settings.from_env({"TRIAGE_MODE": "act", **_model_env(hostile_model)})
    rec = _pending(fake_databricks, client, store, settings)
    old = store.get(rec.decision_key)
    old.created_at = now_ms() - 10 * 86400 * 1000
    assert store.update(old).ok
    fake_databricks.inject("runs/repair", *[status_fault(503, retry_after=0)] * 10)
    result = approve(store, rec.decision_key, settings, client_for=lambda r: client, by="owner")
    assert result.record.status == "retrying" and open_approvals(store) == [(rec.decision_key, rec.job_id)]
    fake_databricks._faults.clear()
    due = result.record.action_result["next_at"] + 1
    assert act_due(settings, client=client, store=store, now=due) == []     # outside the last week

    report = sweep(settings, clients_by_workspace={fake_databricks.url: client}, store=store,
                   enqueue=lambda r: None, now_ms=due)
    done = store.get(rec.decision_key)
    assert (done.action, done.status, approval_state(done)) == ("RETRY", "acted", "approved"), report.errors
    assert done.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    assert len(fake_databricks.repairs) == 1 and open_approvals(store) == []   # ended: forgotten
    assert store.state_get(HEALTH_KIND, HEALTH_KEY).value["past_deadline"] == 0


def test_a_stuck_approval_of_an_older_decision_is_taken_over_and_counted(fake_databricks, client, store,
                                                                         hostile_model):
    from demo.workspace import status_fault
    from shared.app.approvals import open_approvals
    from shared.app.lifecycle import HEALTH_KEY, HEALTH_KIND
    from shared.app.sweep import sweep

    settings = Settings.from_env({"TRIAGE_MODE": "act", **_model_env(hostile_model)})
    rec = _pending(fake_databricks, client, store, settings)
    old = store.get(rec.decision_key)
    old.created_at = now_ms() - 10 * 86400 * 1000          # older than health's week, within the links' 14 days
    assert store.update(old).ok
    from shared.app.approvals import _edit_open
    _edit_open(store, settings, add=(rec.decision_key, rec.job_id))   # what approving notes first
    _left_approving(store, rec, minutes_ago=60)
    fake_databricks.inject("runs/get", *[status_fault(503, retry_after=0)] * 40)   # Databricks is down
    sweep(settings, clients_by_workspace={fake_databricks.url: client}, store=store, enqueue=lambda r: None)
    summary = store.state_get(HEALTH_KIND, HEALTH_KEY).value
    assert summary["approving"] == 1 and summary["past_deadline"] == 1 and summary["stuck_keys"] == [rec.decision_key]
    fake_databricks._faults.clear()
    sweep(settings, clients_by_workspace={fake_databricks.url: client}, store=store, enqueue=lambda r: None,
          now_ms=now_ms() + 20 * MINUTE_MS)
    done = store.get(rec.decision_key)
    assert (done.status, approval_state(done)) == ("acted", "approved") and len(fake_databricks.repairs) == 1
    assert open_approvals(store) == []


def test_an_approved_retry_is_too_late_only_two_days_after_the_approval(fake_databricks, client, store,
                                                                        hostile_model):
    """A retry still unsent two days after its decision goes to a person; for an approved
    proposal the two days count from the person's approval, not from the decision."""
    from demo.workspace import status_fault
    from shared.app.approvals import approve

    settings = Settings.from_env({"TRIAGE_MODE": "act", **_model_env(hostile_model)})
    rec = _pending(fake_databricks, client, store, settings)
    old = store.get(rec.decision_key)
    old.created_at = now_ms() - 3 * 86400 * 1000
    assert store.update(old).ok
    fake_databricks.inject("runs/repair", *[status_fault(503, retry_after=0)] * 10)
    result = approve(store, rec.decision_key, settings, client_for=lambda r: client, by="owner")
    assert result.record.status == "retrying"
    fake_databricks._faults.clear()
    notifier = RecordingNotifier()
    [done] = act_due(settings, client=client, store=store, notifier=notifier,
                     now=result.record.action_result["next_at"] + 1)
    assert (done.action, done.status) == ("RETRY", "acted") and len(fake_databricks.repairs) == 1
    assert notifier.calls == []


# --- an approved rerun and the budget ------------------------------------------------------------------

def test_an_approved_rerun_is_held_against_the_budget_and_counted(fake_databricks, client, store, hostile_model):
    from shared.app.approvals import approve
    from shared.store.spend import add_spend, day_of, today

    settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_BUDGET_USD_PER_DAY": "5", **_model_env(hostile_model)})
    first = _pending(fake_databricks, client, store, settings)
    done = approve(store, first.decision_key, settings, client_for=lambda r: client, by="owner").record
    usd = done.decision["cost"]["rerun"]["usd"]
    assert done.action == "RETRY" and done.status == "acted" and usd > 0
    assert today(store)["total_usd"] == pytest.approx(usd, abs=1e-5)          # counted once

    add_spend(store, 5.0, day=day_of())                                        # the day's budget is spent
    second = _pending(fake_databricks, client, store, settings)
    out = approve(store, second.decision_key, settings, client_for=lambda r: client, by="owner")
    assert out.record.action == "SEND_EMAIL" and "daily budget" in out.record.reason
    assert "not retried" in out.message and len(fake_databricks.repairs) == 1
