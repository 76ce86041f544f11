"""Precedents: a correction decides the next failure with the same fingerprint, with no model."""

from __future__ import annotations

import io
import json

from demo.workspace import make_snapshot
from shared.cli import main
from shared.config import Settings
from shared.learning.feedback import record_feedback
from shared.learning.precedents import find_precedent, list_precedents, precedent_key
from shared.triage import triage_run

NETWORK = ("java.net.SocketTimeoutException: Read timed out while reading from "
           "jdbc:postgresql://orders-db.internal:5432/orders (batch 17)")
NETWORK_NEXT = NETWORK.replace("batch 17", "batch 912")        # same fingerprint: numbers differ


def _run(fake, run_id, job_id=77, error=NETWORK, tags=None):
    doc = make_snapshot(run_id=run_id, job_id=job_id, tasks=[{"task_key": "main", "result": "FAILED"}],
                        error=error, job_settings={"tags": tags or {}} if tags else None)
    return fake.load(doc)


def _settings(tmp_path, **env):
    return Settings.from_env({"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}", **env})


def test_correction_decides_the_next_run_of_the_job_without_a_model(fake_databricks, client, store, tmp_path):
    settings = _settings(tmp_path)
    assert not settings.llm_configured                        # no model anywhere in this test
    first = triage_run(_run(fake_databricks, 5001), settings, client=client, store=store).record
    assert first.action == "RETRY" and first.decided_by == "rules"
    record_feedback(store, first.decision_key, "wrong", correct_action="SEND_EMAIL",
                    comment="the database rejects this client: not transient", source="cli", settings=settings)

    second = triage_run(_run(fake_databricks, 5002, error=NETWORK_NEXT), settings, client=client, store=store).record
    assert second.fingerprint == first.fingerprint
    assert (second.action, second.decided_by) == ("SEND_EMAIL", "precedent")
    assert first.decision_key in second.reason and "corrected decision" in second.reason
    assert "not transient" in second.reason
    p = find_precedent(store, workspace=second.workspace, job_id="77", fingerprint=second.fingerprint)
    assert p["fired"] == 1 and p["fired_keys"] == [second.decision_key]

    # Another job with the same error is not bound by this job's precedent ...
    other = triage_run(_run(fake_databricks, 5003, job_id=88), settings, client=client, store=store).record
    assert (other.action, other.decided_by) == ("RETRY", "rules")


def test_workspace_scope_widens_a_precedent(fake_databricks, client, store, tmp_path):
    settings = _settings(tmp_path)
    first = triage_run(_run(fake_databricks, 6001), settings, client=client, store=store).record
    record_feedback(store, first.decision_key, "wrong", correct_action="ESCALATE", source="cli",
                    settings=settings, scope="workspace")
    other = triage_run(_run(fake_databricks, 6002, job_id=99), settings, client=client, store=store).record
    assert (other.action, other.decided_by) == ("ESCALATE", "precedent")


def test_precedent_expires_and_confirmation_renews_it(fake_databricks, client, store, tmp_path):
    settings = _settings(tmp_path, TRIAGE_PRECEDENT_TTL="1d")
    first = triage_run(_run(fake_databricks, 7001), settings, client=client, store=store).record
    record_feedback(store, first.decision_key, "wrong", correct_action="SEND_EMAIL", source="cli",
                    settings=settings, now_ms=first.created_at)
    fp, ws = first.fingerprint, first.workspace
    later = first.created_at + 86400 * 1000 + 1
    assert find_precedent(store, workspace=ws, job_id="77", fingerprint=fp, now_ms=first.created_at + 1000)
    assert find_precedent(store, workspace=ws, job_id="77", fingerprint=fp, now_ms=later) is None
    # A decision the precedent made, confirmed correct, starts the clock again.
    second = triage_run(_run(fake_databricks, 7002, error=NETWORK_NEXT), settings, client=client, store=store).record
    assert second.decided_by == "precedent"
    record_feedback(store, second.decision_key, "correct", source="cli", settings=settings,
                    now_ms=first.created_at + 86400 * 1000 - 10)
    assert find_precedent(store, workspace=ws, job_id="77", fingerprint=fp, now_ms=later)


def test_precedent_toward_retrying_obeys_trust_levels_and_limits(fake_databricks, client, store, tmp_path):
    settings = _settings(tmp_path, TRIAGE_MODE="act")
    perm = "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have SELECT on Table 'a.b.c'. SQLSTATE: 42501"
    first = triage_run(_run(fake_databricks, 8001, error=perm), settings, client=client, store=store,
                       act_now=True).record
    assert first.category == "PERMISSION" and first.action == "SEND_EMAIL"
    record_feedback(store, first.decision_key, "wrong", correct_action="RETRY", source="cli", settings=settings)
    second = triage_run(_run(fake_databricks, 8002, error=perm), settings, client=client, store=store,
                        act_now=True).record
    assert second.action == "SEND_EMAIL" and second.decided_by.startswith("precedent")
    assert second.decision["proposed_action"] == "RETRY" and second.decision["approval"] == "pending"
    assert fake_databricks.writes == []
    # A retry precedent on a retryable failure still stops at the retry limit.
    capped = {"triage.max_retries": "0"}
    net = triage_run(_run(fake_databricks, 8003, job_id=55, tags=capped), settings, client=client, store=store,
                     act_now=True).record
    assert net.action == "ESCALATE" and "retry limit" in net.reason
    record_feedback(store, net.decision_key, "wrong", correct_action="RETRY", source="cli", settings=settings)
    again = triage_run(_run(fake_databricks, 8004, job_id=55, error=NETWORK_NEXT, tags=capped), settings,
                       client=client, store=store, act_now=True).record
    assert again.decided_by == "precedent+policy" and again.action == "ESCALATE" and "retry limit" in again.reason
    assert fake_databricks.writes == []


def test_precedents_command_list_show_remove(fake_databricks, client, store, tmp_path):
    env = {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    settings = Settings.from_env(env)
    first = triage_run(_run(fake_databricks, 9001), settings, client=client, store=store).record
    out, err = io.StringIO(), io.StringIO()
    assert main(["feedback", first.decision_key, "--verdict", "wrong", "--action", "SEND_EMAIL"], env=env,
                stdout=out, stderr=err) == 0
    pid = precedent_key("job", first.workspace, "77", first.fingerprint)
    out = io.StringIO()
    assert main(["precedents", "list", "-o", "json"], env=env, stdout=out, stderr=io.StringIO()) == 0
    assert [p["id"] for p in json.loads(out.getvalue())] == [pid]
    out = io.StringIO()
    assert main(["precedents", "show", pid], env=env, stdout=out, stderr=io.StringIO()) == 0
    assert json.loads(out.getvalue())["action"] == "SEND_EMAIL"
    assert main(["precedents", "remove", pid], env=env, stdout=io.StringIO(), stderr=io.StringIO()) == 0
    assert list_precedents(store) == []
    assert main(["precedents", "show", "nope"], env=env, stdout=io.StringIO(), stderr=io.StringIO()) == 1
    second = triage_run(_run(fake_databricks, 9002, error=NETWORK_NEXT), settings, client=client, store=store).record
    assert second.decided_by == "rules"
