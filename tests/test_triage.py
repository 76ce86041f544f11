"""The pipeline end to end: fake Databricks workspace over real HTTP, SQLite store."""

import threading


from shared.notify import NullNotifier
from shared.config import Settings
from shared.databricks import DatabricksClient, PatCredential
from shared.triage import act_due, report_triage_failure, triage_run
from demo.workspace import status_fault
from tests.helpers import corpus_doc


class RecordingNotifier:
    def __init__(self):
        self.calls = []

    def notify(self, snapshot, decision, record):
        self.calls.append((snapshot.run_id, decision.action.value, record.decision_key))
        return {"status": "sent", "to": ["owner@example.com"]}


def _settings(**env):
    return Settings.from_env({"TRIAGE_MAX_WORKERS": "16", **env})


def _load(fake, case):
    doc = corpus_doc(case)
    doc.pop("history", None)
    return fake.load(doc)


def test_triage_transient_failure_one_valid_repair(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store, act_now=True)
    rec = result.record
    assert (rec.category, rec.action, rec.status) == ("TIMEOUT", "RETRY", "acted")
    repairs = fake_databricks.requests_to("runs/repair")
    assert len(repairs) == 1 and repairs[0].body["run_id"] == run_id
    assert repairs[0].body.get("rerun_all_failed_tasks") or repairs[0].body.get("rerun_tasks")
    assert "repair_id" in rec.action_result
    assert store.retries(str(run_id)) == 1


def test_triage_driver_side_limit_submits_a_bigger_driver_not_more_workers(fake_databricks, client, store):
    # dev-055: a broadcast exceeded spark.driver.maxResultSize -- the driver's limit, not the executors'
    run_id = _load(fake_databricks, "dev-055")
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store, act_now=True)
    assert result.record.action == "RETRY_WITH_NEW_PARAMS" and result.record.status == "acted"
    assert "driver" in result.record.reason
    [submit] = fake_databricks.requests_to("runs/submit")
    assert submit.body["idempotency_token"] == result.record.decision_key
    original = {c["job_cluster_key"]: c["new_cluster"] for c in corpus_doc("dev-055")["run"]["job_clusters"]}
    before = next(iter(original.values()))
    for t in submit.body["tasks"]:
        assert t["new_cluster"]["num_workers"] == before["num_workers"]
        # the error names the limit (spark.driver.maxResultSize=1073741824): x2
        assert t["new_cluster"]["spark_conf"]["spark.driver.maxResultSize"] == "2g"
    assert submit.body["run_as"] == {"user_name": fake_databricks.job(result.record.job_id)["creator_user_name"]}
    assert not fake_databricks.requests_to("runs/repair")


def test_triage_permission_error_never_writes_to_databricks(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-001")
    notifier = RecordingNotifier()
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store, notifier=notifier,
                        act_now=True)
    assert result.record.category == "PERMISSION" and result.record.action == "SEND_EMAIL"
    assert fake_databricks.writes == []
    assert notifier.calls == [(run_id, "SEND_EMAIL", result.record.decision_key)]
    assert result.record.notification["status"] == "sent"


def test_triage_survives_429_and_503_on_first_calls(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    fake_databricks.inject("runs/get", status_fault(429, retry_after=0), status_fault(503))
    fake_databricks.inject("runs/repair", status_fault(503))
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store, act_now=True)
    assert result.record.status == "acted"
    assert len([r for r in fake_databricks.requests_to("runs/repair")]) >= 1
    assert store.get(result.record.decision_key, result.record.job_id).action_result.get("repair_id")


def test_triage_same_run_twice_does_not_write_twice(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-058")
    s = _settings(TRIAGE_MODE="act")
    first = triage_run(run_id, s, client=client, store=store, act_now=True)
    # The repair has not finished yet (the fake leaves the run running): the same attempt arrives again.
    second = triage_run(run_id, s, client=client, store=store, act_now=True)
    assert first.acted and not first.duplicate
    # The run is running again (its repair): nothing is decided about an attempt that has not failed.
    assert second.skipped and second.record is None and "repair in progress" in second.message
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    # When the repaired attempt fails in turn, that is a new decision about attempt 1 — and since our
    # retry failed the same kind of way (NETWORK again), it goes to the owner instead of a second repair.
    fake_databricks.finish_run(run_id, "FAILED", "Connection reset")
    third = triage_run(run_id, s, client=client, store=store, act_now=True)
    assert third.record.decision_key == f"{run_id}-1" and third.acted
    assert third.record.action == "SEND_EMAIL" and "retried once; it failed the same way" in third.record.reason
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    assert store.retries(str(run_id)) == 1


def test_triage_concurrent_deliveries_act_once(fake_databricks, fake_databricks_env, store, tmp_path):
    run_id = _load(fake_databricks, "dev-069")
    s = _settings(TRIAGE_MODE="act")
    results = []

    def deliver():
        with DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token)) as c:
            results.append(triage_run(run_id, s, client=c, store=store, act_now=True))

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.acted for r in results) == 1
    assert len(fake_databricks.requests_to("runs/repair")) == 1


def test_triage_shadow_mode_records_request_sends_nothing(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    result = triage_run(run_id, _settings(), client=client, store=store)
    rec = result.record
    assert rec.mode == "shadow" and rec.status == "decided"
    assert rec.action_request["requests"][0]["path"].endswith("/jobs/runs/repair")
    assert fake_databricks.writes == []


def test_triage_job_tag_shadow_keeps_job_in_shadow_when_app_acts(fake_databricks, client, store):
    doc = corpus_doc("dev-043")
    doc["job"]["settings"]["tags"]["triage.mode"] = "shadow"
    run_id = fake_databricks.load(doc)
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store, act_now=True)
    assert result.record.mode == "shadow" and fake_databricks.writes == []


def test_triage_backoff_waits_then_act_due_acts(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-065")
    s = _settings(TRIAGE_MODE="act")
    result = triage_run(run_id, s, client=client, store=store)
    assert result.record.status == "decided" and result.record.not_before > 0
    assert fake_databricks.writes == []
    assert act_due(s, client=client, store=store, now=result.record.not_before - 1) == []
    done = act_due(s, client=client, store=store, now=result.record.not_before + 1)
    assert [r.status for r in done] == ["acted"]
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    assert act_due(s, client=client, store=store, now=result.record.not_before + 2) == []


def test_triage_retry_limit_from_store_escalates(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    for _ in range(3):
        store.add_retry(str(run_id))
    notifier = RecordingNotifier()
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store, notifier=notifier,
                        act_now=True)
    assert result.record.action == "ESCALATE" and "retry limit reached: 3 of 3" in result.record.reason
    assert fake_databricks.writes == []


def test_report_triage_failure_escalates_once(store):
    notifier = RecordingNotifier()
    s = _settings()
    a = report_triage_failure(42, "DatabricksUnavailable: gave up", s, store=store, notifier=notifier)
    b = report_triage_failure(42, "DatabricksUnavailable: gave up", s, store=store, notifier=notifier)
    assert a.action == "ESCALATE" and a.decision_key == b.decision_key == "42-triage-failed"
    assert len(notifier.calls) == 1 and "triage failed for run 42" in a.reason


def test_triage_null_notifier_records_not_configured(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-015")
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store,
                        notifier=NullNotifier(), act_now=True)
    assert result.record.notification == {"status": "not configured"}


class FlakyNotifier(RecordingNotifier):
    def __init__(self, failures):
        super().__init__()
        self.failures = failures

    def notify(self, snapshot, decision, record):
        super().notify(snapshot, decision, record)
        if self.failures:
            self.failures -= 1
            return {"status": "failed", "error": "ACS answered 503", "attempts": len(self.calls)}
        return {"status": "sent", "to": ["owner@example.com"]}


def test_retry_notifications_resends_failed_email_until_sent(fake_databricks, client, store):
    from shared.triage import retry_notifications

    run_id = _load(fake_databricks, "dev-015")
    s = _settings(TRIAGE_MODE="act")
    notifier = FlakyNotifier(failures=1)
    first = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True)
    assert first.record.status == "failed" and first.record.notification["status"] == "failed"
    [again] = retry_notifications(s, client=client, store=store, notifier=notifier)
    assert again.status == "acted" and again.notification["status"] == "sent"
    assert retry_notifications(s, client=client, store=store, notifier=notifier) == []
    assert len(notifier.calls) == 2


def test_decide_prompt_carries_job_history_and_human_correction(fake_openai, store):
    from shared.learning.feedback import record_feedback
    from shared.triage import decide, new_record
    from tests.helpers import make_snapshot

    settings = Settings.from_env({"OPENAI_BASE_URL": f"{fake_openai.url}/v1", "OPENAI_API_KEY": "fake-api-key",
                                  "OPENAI_MODEL": "gpt-test"})
    earlier = make_snapshot("Vendor file feed_17.csv rejected by the landing checker")
    d = decide(earlier, settings, store=store, use_llm=False)
    rec = new_record(earlier, d, settings)
    assert store.claim(rec).won
    record_feedback(store, rec.decision_key, "wrong", correct_action="SEND_EMAIL", correct_category="DATA",
                    comment="landing checker rejections are vendor data problems", job_id=rec.job_id)

    # The same failure again (same fingerprint) is decided by the correction itself, a precedent:
    # no model asked. A similar failure (another fingerprint) goes to the model with the
    # correction as an example.
    same = decide(make_snapshot("Vendor file feed_18.csv rejected by the landing checker"), settings, store=store)
    assert same.decided_by == "precedent" and same.action.value == "SEND_EMAIL" and fake_openai.calls == 0
    later = make_snapshot("Vendor file feed_18.csv rejected by the landing checker: header row missing")
    decided = decide(later, settings, store=store)
    assert fake_openai.calls == 1
    prompt = fake_openai.requests[0].user_message
    assert "landing checker rejections are vendor data problems" in prompt   # the correction
    assert d.category.value in prompt and "ESCALATE" in prompt                # this job's history
    assert decided.llm is not None


def test_triage_successful_run_is_skipped(fake_databricks, client, store):
    doc = corpus_doc("dev-043")
    doc["run"]["state"]["result_state"] = "SUCCESS"
    doc["run"].pop("status", None)
    for t in doc["run"]["tasks"]:
        t["state"]["result_state"] = "SUCCESS"
        t.pop("status", None)
    run_id = fake_databricks.load(doc)
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store, act_now=True)
    assert result.skipped and result.record is None and store.list() == []


def test_triage_repair_recorded_but_run_state_unchanged_is_not_repaired_again(fake_databricks, client, store):
    # A workspace (or a stand-in) that lists the repair in repair_history before the run's own
    # state changes: the second delivery must not read that as a new failed attempt.
    doc = corpus_doc("dev-043")
    doc.pop("history", None)
    doc["run"]["repair_history"] = [{"type": "ORIGINAL", "id": 1, "start_time": 1, "end_time": 2},
                                    {"type": "REPAIR", "id": 77, "start_time": 3}]
    run_id = fake_databricks.load(doc)
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store, act_now=True)
    assert result.skipped and "repair in progress" in result.message
    assert fake_databricks.writes == []


def test_triage_stored_request_keeps_no_job_input_values_but_databricks_gets_them(fake_databricks, client, store):
    doc = corpus_doc("dev-055")
    doc.pop("history", None)
    for t in doc["run"]["tasks"]:
        t.setdefault("notebook_task", {"notebook_path": "/Repos/x"})["base_parameters"] = {"conn": "opaque-value-42"}
    for c in doc["run"]["job_clusters"]:
        c["new_cluster"]["spark_env_vars"] = {"LOOKUP": "opaque-value-43"}
    run_id = fake_databricks.load(doc)
    result = triage_run(run_id, _settings(TRIAGE_MODE="act"), client=client, store=store, act_now=True)
    [submit] = fake_databricks.requests_to("runs/submit")
    sent = str(submit.body)
    assert "opaque-value-42" in sent and "opaque-value-43" in sent        # the rerun has its inputs
    stored = str(store.get(result.record.decision_key, result.record.job_id).action_request)
    assert "opaque-value-42" not in stored and "opaque-value-43" not in stored
    assert "[not stored]" in stored and "num_workers" in stored          # the resize is still auditable
