"""Approval requests end to end: a held-out firm failure, a hostile model, act mode against the
stand-in workspace over real HTTP; approve/reject through the library and the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path


from shared.app.approvals import approval_state, approve, reject
from shared.cli import main
from shared.config import Settings
from shared.triage import triage_run

HELD_OUT = Path(__file__).resolve().parents[1] / "corpus" / "validation" / "val-001.json"   # PERMISSION


class RecordingNotifier:
    def __init__(self):
        self.calls = []

    def notify(self, snapshot, decision, record):
        self.calls.append((decision.action.value, decision.proposed_action, decision.approval))
        return {"status": "sent", "to": ["owner@example.com"]}



def _env(fake_model, tmp_path, **more):
    return {"TRIAGE_MODE": "act", "AZURE_OPENAI_ENDPOINT": fake_model.url,
            "AZURE_OPENAI_DEPLOYMENT": fake_model.deployment, "AZURE_OPENAI_API_KEY": fake_model.api_key,
            "TRIAGE_LLM_MIN_RULE_CONFIDENCE": "1.0", "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}", **more}


def _load(fake_databricks):
    doc = json.loads(HELD_OUT.read_text())
    doc.pop("history", None)
    return fake_databricks.load(doc)


def _triage(fake_databricks, client, store, settings, notifier=None):
    run_id = _load(fake_databricks)
    return triage_run(run_id, settings, client=client, store=store, notifier=notifier or RecordingNotifier(),
                      act_now=True)


def test_hostile_model_on_a_firm_failure_waits_for_approval_then_acts_exactly_once(
        fake_databricks, client, store, hostile_model, tmp_path):
    settings = Settings.from_env(_env(hostile_model, tmp_path))
    notifier = RecordingNotifier()
    result = _triage(fake_databricks, client, store, settings, notifier)
    rec = result.record
    assert hostile_model.calls == 1                          # the model was asked, and said "retry"
    assert (rec.category, rec.action, rec.status) == ("PERMISSION", "SEND_EMAIL", "acted")
    assert rec.decision["proposed_action"] == "RETRY"        # NETWORK never gets new parameters
    assert approval_state(rec) == "pending"
    assert rec.decision["proposed_request"]["requests"][0]["path"].endswith("/jobs/runs/repair")
    assert notifier.calls == [("SEND_EMAIL", "RETRY", "pending")]
    assert fake_databricks.writes == []                      # no write until a person approves

    first = approve(store, rec.decision_key, settings, client_for=lambda r: client, by="owner@example.com")
    assert first.changed and first.acted and first.state == "approved"
    assert len(fake_databricks.writes) == 1
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    stored = store.get(rec.decision_key, rec.job_id)
    assert (stored.action, stored.decided_by, stored.status) == ("RETRY", "person", "acted")
    assert stored.action_result.get("repair_id")
    assert stored.decision["before_approval"]["action"] == "SEND_EMAIL"
    assert store.retries(stored.lineage) == 1

    second = approve(store, rec.decision_key, settings, client_for=lambda r: client, by="someone-else")
    assert not second.changed and not second.acted and "already approved" in second.message
    assert len(fake_databricks.writes) == 1                  # still one


def test_rejecting_records_feedback_and_blocks_a_later_approval(fake_databricks, client, store, hostile_model,
                                                                tmp_path):
    settings = Settings.from_env(_env(hostile_model, tmp_path))
    rec = _triage(fake_databricks, client, store, settings).record
    out = reject(store, rec.decision_key, settings, by="owner", comment="it is a grant, not a blip")
    assert out.changed and out.state == "rejected"
    stored = store.get(rec.decision_key, rec.job_id)
    assert stored.feedback["verdict"] == "correct" and "rejected the proposed RETRY" in stored.feedback["comment"]
    late = approve(store, rec.decision_key, settings, client_for=lambda r: client)
    assert not late.changed and "already rejected" in late.message
    assert fake_databricks.writes == []


def test_approval_expires_with_the_link(fake_databricks, client, store, hostile_model, tmp_path):
    settings = Settings.from_env(_env(hostile_model, tmp_path, TRIAGE_FEEDBACK_LINK_TTL="1h"))
    rec = _triage(fake_databricks, client, store, settings).record
    out = approve(store, rec.decision_key, settings, client_for=lambda r: client,
                  now_ms=rec.created_at + 3600 * 1000 + 1)
    assert not out.changed and "expired" in out.message
    assert approval_state(store.get(rec.decision_key, rec.job_id)) == "expired"
    assert fake_databricks.writes == []


def test_approval_in_shadow_mode_records_and_sends_nothing(fake_databricks, client, store, hostile_model, tmp_path):
    settings = Settings.from_env(_env(hostile_model, tmp_path, TRIAGE_MODE="shadow"))
    rec = _triage(fake_databricks, client, store, settings).record
    out = approve(store, rec.decision_key, settings, client_for=lambda r: client)
    assert out.changed and not out.acted and "shadow" in out.message
    assert fake_databricks.writes == []


def test_cli_approve_and_reject_are_the_twins(fake_databricks, fake_databricks_env, client, hostile_model, tmp_path):
    env = {**_env(hostile_model, tmp_path), **fake_databricks_env}
    settings = Settings.from_env(env)
    from shared.store import open_store

    with open_store(settings) as store:
        rec = _triage(fake_databricks, client, store, settings).record
    out, err = io.StringIO(), io.StringIO()
    assert main(["approve", rec.decision_key, "--by", "owner", "-o", "json"], env=env, stdout=out, stderr=err) == 0
    doc = json.loads(out.getvalue())
    assert doc["acted"] and doc["approval"] == "approved" and doc["decided_by"] == "person"
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    out2, err2 = io.StringIO(), io.StringIO()
    assert main(["approve", rec.decision_key, "-o", "json"], env=env, stdout=out2, stderr=err2) == 0
    assert json.loads(out2.getvalue())["changed"] is False and "already approved" in err2.getvalue()
    out3, err3 = io.StringIO(), io.StringIO()
    assert main(["reject", rec.decision_key, "-o", "json"], env=env, stdout=out3, stderr=err3) == 0
    assert json.loads(out3.getvalue())["changed"] is False
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    assert main(["approve", "999-0"], env=env, stdout=io.StringIO(), stderr=io.StringIO()) == 1
