"""The action lifecycle (docs/lifecycle.md): a lost answer is reconciled with Databricks, a
passing failure is retried by later sweeps with back-off and then escalated, a refusal escalates
at once with the service's error code, and a record stuck in ``acting`` is taken over. Every case
runs through the production client against the fake workspace, and ends terminal with exactly
one Databricks write that took effect."""

from __future__ import annotations

from demo.workspace import drop_fault, lost_answer_fault, status_fault
from shared.app.lifecycle import deadline_ms, failure_kind, retry_delay_s, summarize
from shared.config import Settings
from shared.errors import DatabricksError, DatabricksNotFound, DatabricksUnavailable
from shared.store import now_ms
from shared.triage import act_due, triage_run
from tests.helpers import corpus_doc
from tests.plugins.crash import load_case

HOUR_MS = 3600 * 1000


class RecordingNotifier:
    def __init__(self):
        self.calls = []

    def notify(self, snapshot, decision, record):
        self.calls.append((record.decision_key, decision.action.value, list(decision.notes)))
        return {"status": "sent", "to": ["oncall@example.com"]}


def _settings(**env):
    return Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_ACTION_ATTEMPTS": "3", **env})


def _load(fake, case):
    doc = corpus_doc(case)
    doc.pop("history", None)
    return fake.load(doc)


def _sweeps(settings, client, store, notifier, *, times=1, start=None, step_ms=2 * HOUR_MS):
    """Sweeps at moments past every back-off (the clock moves; nothing sleeps)."""
    now = start or now_ms()
    for i in range(times):
        act_due(settings, client=client, store=store, notifier=notifier, now=now + (i + 1) * step_ms,
                lookback_s=30 * 86400)


def test_failure_kinds():
    assert failure_kind(DatabricksUnavailable("x", status=503)) == "transient"
    assert failure_kind(DatabricksError("x", status=500)) == "transient"
    assert failure_kind(DatabricksError("x", status=429)) == "transient"
    assert failure_kind(DatabricksError("connection lost")) == "unknown"
    assert failure_kind(DatabricksError("bad", status=400, error_code="INVALID_PARAMETER_VALUE")) == "refused"
    assert failure_kind(DatabricksNotFound("gone", status=404)) == "refused"
    assert [retry_delay_s(n) for n in (1, 2, 3, 10)] == [60, 120, 240, 3600]


def test_repair_answer_lost_is_reconciled_from_repair_history(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    fake_databricks.inject("runs/repair", lost_answer_fault())     # the repair ran; its answer never came
    s, notifier = _settings(), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    assert rec.status == "retrying" and rec.action_result["reconcile"] is True
    assert len(fake_databricks.repairs) == 1
    _sweeps(s, client, store, notifier)
    rec = store.get(rec.decision_key)
    assert rec.status == "acted"
    assert rec.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    assert "repair_history" in rec.action_result["reconciled"]
    assert len(fake_databricks.repairs) == 1 and len(fake_databricks.requests_to("runs/repair")) == 1
    assert store.retries(str(run_id)) == 1 and notifier.calls == []


def test_repair_endpoint_down_past_client_retries_is_sent_again_by_a_later_sweep(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    fake_databricks.inject("runs/repair", status_fault(503))       # a 503 was surely not processed...
    fake_databricks.inject("runs/repair", *[status_fault(503)] * 10)
    s, notifier = _settings(), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    assert rec.status == "retrying" and rec.action_result["attempts"] == 1
    assert rec.action_result["next_at"] > now_ms() + 50_000          # back-off: the next sweep after a minute
    act_due(s, client=client, store=store, notifier=notifier)        # a sweep now: not due yet
    assert store.get(rec.decision_key).status == "retrying"
    fake_databricks._faults.clear()                                   # Databricks answers again
    _sweeps(s, client, store, notifier)
    rec = store.get(rec.decision_key)
    assert rec.status == "acted" and rec.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    assert rec.action_result["attempts"] == 2 and len(fake_databricks.repairs) == 1
    assert store.retries(str(run_id)) == 1                            # one retry of the lineage, not two


def test_repair_down_for_good_escalates_with_the_error_after_the_attempts(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    fake_databricks.inject("runs/repair", *[status_fault(500)] * 10)
    s, notifier = _settings(), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    _sweeps(s, client, store, notifier, times=4)
    rec = store.get(rec.decision_key)
    assert rec.status == "escalated" and rec.action_result["attempts"] == 3
    assert "failed 3 time(s)" in rec.action_result["escalated"] and "INTERNAL_ERROR" in rec.action_result["escalated"]
    [(key, action, notes)] = notifier.calls
    assert (key, action) == (rec.decision_key, "ESCALATE") and "failed 3 time(s)" in notes[-1]
    assert fake_databricks.repairs == [] and len(fake_databricks.requests_to("runs/repair")) == 3


def test_refusal_escalates_at_once_with_the_service_error_code(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    fake_databricks.inject("runs/repair", status_fault(403, error_code="PERMISSION_DENIED", message="no CAN_MANAGE_RUN"))
    s, notifier = _settings(), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    assert rec.status == "escalated" and rec.action_result["error_code"] == "PERMISSION_DENIED"
    assert "refused by Databricks (PERMISSION_DENIED)" in rec.action_result["escalated"]
    assert [c[1] for c in notifier.calls] == ["ESCALATE"]
    _sweeps(s, client, store, notifier, times=2)                      # nothing more happens
    assert len(fake_databricks.requests_to("runs/repair")) == 1 and len(notifier.calls) == 1


def test_submit_answer_lost_is_sent_again_with_the_same_idempotency_token(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-055")
    fake_databricks.inject("runs/submit", lost_answer_fault(), drop_fault(), drop_fault(), drop_fault(),
                           drop_fault(), drop_fault(), drop_fault(), drop_fault())
    s, notifier = _settings(), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    assert rec.action == "RETRY_WITH_NEW_PARAMS" and rec.status == "retrying"
    fake_databricks._faults.clear()
    _sweeps(s, client, store, notifier)
    rec = store.get(rec.decision_key)
    assert rec.status == "acted" and rec.action_result["run_id"] in fake_databricks.submitted
    assert len(fake_databricks.submitted) == 1                        # one run made, however many sends
    tokens = {r.body["idempotency_token"] for r in fake_databricks.requests_to("runs/submit")}
    assert len(tokens) == 1


def _stuck_in_acting(store, key, minutes_ago):
    rec = store.get(key)
    rec.status = "acting"                      # what a worker killed mid-action leaves behind
    rec.action_result = {"attempts": 1, "acting_since": now_ms() - minutes_ago * 60_000, "retry_counted": True}
    assert store.update(rec).ok


def test_stuck_acting_after_the_call_is_reconciled_not_repeated(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    s, notifier = _settings(), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    repair_id = rec.action_result["repair_id"]
    _stuck_in_acting(store, rec.decision_key, minutes_ago=5)          # the final update never happened
    act_due(s, client=client, store=store, notifier=notifier)
    assert store.get(rec.decision_key).status == "acting"             # not past TRIAGE_ACTING_TIMEOUT yet
    _stuck_in_acting(store, rec.decision_key, minutes_ago=20)
    act_due(s, client=client, store=store, notifier=notifier)
    rec = store.get(rec.decision_key)
    assert rec.status == "acted" and rec.action_result["repair_id"] == repair_id
    assert len(fake_databricks.requests_to("runs/repair")) == 1


def test_stuck_acting_before_the_call_is_sent_once(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    s, notifier = _settings(TRIAGE_MODE="shadow"), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier).record   # decided, nothing sent
    rec.mode = "act"
    assert store.update(rec).ok
    _stuck_in_acting(store, rec.decision_key, minutes_ago=20)
    act_due(_settings(), client=client, store=store, notifier=notifier)
    rec = store.get(rec.decision_key)
    assert rec.status == "acted" and rec.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    assert len(fake_databricks.repairs) == 1


DAY_MS = 24 * HOUR_MS


def _decided_in_act_mode(fake, client, store, notifier):
    """An act-mode decision not carried out yet (its back-off had not passed when the sweeps stopped)."""
    run_id = load_case(fake, "dev-043")
    rec = triage_run(run_id, _settings(TRIAGE_MODE="shadow"), client=client, store=store, notifier=notifier).record
    rec.mode = "act"
    assert rec.status == "decided" and store.update(rec).ok
    return rec


def test_a_retry_not_sent_for_days_goes_to_a_person_instead(fake_databricks, client, store):
    """The sweep did not run for three days (the app was stopped): a retry decided then is not
    sent that late (the job has likely run since); a person is told why."""
    s, notifier = _settings(), RecordingNotifier()
    fake_databricks.inject("runs/repair", *[status_fault(503)] * 8)   # down past the client's retries
    retrying = triage_run(load_case(fake_databricks, "dev-043"), s, client=client, store=store, notifier=notifier,
                          act_now=True).record
    assert retrying.status == "retrying"
    waiting = _decided_in_act_mode(fake_databricks, client, store, notifier)
    sent = len(fake_databricks.requests_to("runs/repair"))

    act_due(s, client=client, store=store, notifier=notifier, now=now_ms() + 3 * DAY_MS)   # default look-back
    for key in (retrying.decision_key, waiting.decision_key):
        got = store.get(key)
        assert got.status == "escalated" and "RETRY not sent: 72 h after" in got.action_result["escalated"], got
    assert fake_databricks.repairs == [] and len(fake_databricks.requests_to("runs/repair")) == sent
    assert sorted((c[0], c[1]) for c in notifier.calls) == sorted(
        [(retrying.decision_key, "ESCALATE"), (waiting.decision_key, "ESCALATE")])
    assert all("could do harm" in c[2][-1] for c in notifier.calls)
    act_due(s, client=client, store=store, notifier=notifier, now=now_ms() + 4 * DAY_MS)    # and nothing more
    assert fake_databricks.repairs == [] and len(notifier.calls) == 2


def test_a_resized_rerun_too_late_to_send_says_it_may_exist(fake_databricks, client, store):
    s, notifier = _settings(), RecordingNotifier()
    fake_databricks.inject("runs/submit", lost_answer_fault(), *[drop_fault()] * 8)   # it may have been made
    rec = triage_run(load_case(fake_databricks, "dev-055"), s, client=client, store=store, notifier=notifier,
                     act_now=True).record
    assert rec.status == "retrying" and rec.action == "RETRY_WITH_NEW_PARAMS"
    fake_databricks._faults.clear()
    act_due(s, client=client, store=store, notifier=notifier, now=now_ms() + 3 * DAY_MS)
    assert store.get(rec.decision_key).status == "escalated" and len(fake_databricks.submitted) == 1
    [(_, action, notes)] = notifier.calls
    assert action == "ESCALATE" and "may have made the rerun" in notes[-1]


def test_a_retry_one_day_late_is_still_sent(fake_databricks, client, store):
    s, notifier = _settings(), RecordingNotifier()
    rec = _decided_in_act_mode(fake_databricks, client, store, notifier)
    act_due(s, client=client, store=store, notifier=notifier, now=now_ms() + DAY_MS)
    assert store.get(rec.decision_key).status == "acted" and len(fake_databricks.repairs) == 1


def test_a_repair_that_ran_days_ago_is_recorded_not_escalated(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    s, notifier = _settings(), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    repair_id = rec.action_result["repair_id"]
    _stuck_in_acting(store, rec.decision_key, minutes_ago=20)          # its worker died before the last write
    act_due(s, client=client, store=store, notifier=notifier, now=now_ms() + 3 * DAY_MS)
    rec = store.get(rec.decision_key)
    assert rec.status == "acted" and rec.action_result["repair_id"] == repair_id and notifier.calls == []


def test_summary_counts_what_is_stuck(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    fake_databricks.inject("runs/repair", *[status_fault(500)] * 10)
    s, notifier = _settings(), RecordingNotifier()
    rec = triage_run(run_id, s, client=client, store=store, notifier=notifier, act_now=True).record
    now = now_ms()
    fresh = summarize(store.list(), s, now=now)
    assert (fresh["retrying"], fresh["past_deadline"], fresh["undelivered"]) == (1, 0, 0)
    late = summarize(store.list(), s, now=deadline_ms(store.get(rec.decision_key), s) + 60_000)
    assert late["past_deadline"] == 1 and late["stuck_keys"] == [rec.decision_key] and late["stuck_for_s"] == 60


# --- health tells the truth ----------------------------------------------------------------------

def _env(tmp_path, **extra):
    return {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}", "DATABRICKS_HOST": "https://adb-1.azuredatabricks.net",
            "TRIAGE_MODE": "act", **extra}


def test_health_is_503_while_a_decision_is_past_its_deadline(fake_databricks, client, tmp_path):
    from blueprints.health import health_report
    from shared.app.sweep import sweep
    from shared.store import open_store

    env = _env(tmp_path)
    s = Settings.from_env({**env, "TRIAGE_ACTION_ATTEMPTS": "3"})
    assert health_report(env)[0] == 200                               # no store yet: nothing is stuck
    run_id = _load(fake_databricks, "dev-043")
    fake_databricks.inject("runs/repair", *[status_fault(500)] * 10)
    with open_store(s) as store:
        rec = triage_run(run_id, s, client=client, store=store, notifier=RecordingNotifier(), act_now=True).record
        sweep(s, clients_by_workspace={fake_databricks.url: client}, store=store, enqueue=lambda r: None)
        status, body = health_report(env)
        assert status == 200 and body["lifecycle"]["retrying"] == 1 and body["lifecycle"]["past_deadline"] == 0
        # the sweeps stop moving it on (say they fail): an hour later the record is past its deadline
        later = deadline_ms(store.get(rec.decision_key), s) + 60_000
        from shared.app.lifecycle import publish_summary
        publish_summary(s, store, now=later)
    status, body = health_report(env)
    assert status == 503 and body["status"] == "stuck"
    assert body["lifecycle"]["past_deadline"] == 1 and "past their deadline" in body["lifecycle"]["verdict"]
    assert rec.decision_key not in json_dumps(body)                 # anonymous: counts only


def json_dumps(obj):
    import json
    return json.dumps(obj)


def test_health_is_503_when_the_sweep_stopped(tmp_path):
    from blueprints.health import health_report
    from shared.app.lifecycle import publish_summary
    from shared.store import open_store

    env = _env(tmp_path)
    with open_store(Settings.from_env(env)) as store:
        publish_summary(Settings.from_env(env), store, now=now_ms() - 2 * HOUR_MS)
    status, body = health_report(env)
    assert status == 503 and "has not run" in body["lifecycle"]["verdict"]


def test_health_is_503_when_the_store_cannot_be_read(tmp_path):
    import socket

    from blueprints.health import health_report

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + "a" * 88 +
            f";TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    status, body = health_report({**_env(tmp_path), "TRIAGE_STORAGE": conn})
    assert status == 503 and body["lifecycle"]["verdict"] == "the decision store cannot be read"
    assert str(port) not in json_dumps(body)


# --- notifications are never dropped --------------------------------------------------------------

class OwnerChannelDown:
    """The owner's channel always fails; the escalation route delivers (or not, when ``down``)."""

    def __init__(self, escalation_down=False):
        self.calls = []
        self.escalation_down = escalation_down

    def notify(self, snapshot, decision, record):
        self.calls.append(decision.action.value)
        if decision.action.value == "SEND_EMAIL" or self.escalation_down:
            return {"status": "failed", "error": "ACS answered 503", "attempts": len(self.calls), "retryable": True}
        return {"status": "sent", "channel": "pagerduty", "attempts": 1}


def _email_decision(fake_databricks, client, store, notifier):
    run_id = _load(fake_databricks, "dev-015")                     # a DATA failure: SEND_EMAIL
    rec = triage_run(run_id, _settings(), client=client, store=store, notifier=notifier, act_now=True).record
    assert rec.action == "SEND_EMAIL" and rec.status == "failed"
    return rec


def test_a_notification_that_keeps_failing_goes_to_the_escalation_route(fake_databricks, client, store):
    from shared.triage import retry_notifications

    notifier = OwnerChannelDown()
    rec = _email_decision(fake_databricks, client, store, notifier)
    now = now_ms()
    for i in range(1, 6):
        retry_notifications(_settings(), client=client, store=store, notifier=notifier, now=now + i * 600_000)
    rec = store.get(rec.decision_key)
    assert notifier.calls == ["SEND_EMAIL"] * 5 + ["ESCALATE"]
    assert rec.status == "escalated" and rec.notification["status"] == "sent"
    assert "the notification failed 5 time(s)" in rec.action_result["notify_escalated"]


def test_an_undelivered_notification_is_counted_and_tried_hourly(fake_databricks, client, store):
    from shared.triage import retry_notifications

    notifier = OwnerChannelDown(escalation_down=True)
    rec = _email_decision(fake_databricks, client, store, notifier)
    now = now_ms()
    for i in range(1, 13):     # a sweep every 10 minutes for two hours
        retry_notifications(_settings(), client=client, store=store, notifier=notifier, now=now + i * 600_000)
    # the first send and 4 resends, the escalation (at 50 min), then hourly (at 110 min): never given up
    assert notifier.calls == ["SEND_EMAIL"] * 5 + ["ESCALATE"] * 2, notifier.calls
    rec = store.get(rec.decision_key)
    assert rec.status == "failed"
    summary = summarize(store.list(), _settings(), now=now + 12 * 600_000)
    assert summary["undelivered"] == 1 and summary["undelivered_keys"] == [rec.decision_key]


def test_health_alerts_on_an_undelivered_notification_only_once_the_resends_had_their_chance(fake_databricks,
                                                                                              client, store):
    """A send that failed a minute ago is counted, but it is the resends' work: 503 only when it is
    still undelivered more than 15 minutes after its decision (three sweeps)."""
    from shared.app.lifecycle import health_verdict

    rec = _email_decision(fake_databricks, client, store, OwnerChannelDown(escalation_down=True))
    assert rec.status == "failed"
    created = store.get(rec.decision_key).created_at
    fresh = summarize(store.list(), _settings(), now=created + 60_000)
    assert (fresh["undelivered"], fresh["undelivered_stuck"]) == (1, 0)
    assert health_verdict(fresh, now=created + 60_000)[0] is True
    late = summarize(store.list(), _settings(), now=created + 16 * 60_000)
    assert (late["undelivered"], late["undelivered_stuck"]) == (1, 1)
    assert health_verdict(late, now=created + 16 * 60_000)[0] is False
    resent = {**late, "past_deadline": 0}     # resent a minute ago, still not delivered
    healthy, why = health_verdict(resent, now=created + 16 * 60_000)
    assert not healthy and "1 notification(s) undelivered for over 15 minutes" in why
    older = {k: v for k, v in late.items() if k != "undelivered_stuck"}     # a summary from before the field
    assert health_verdict({**older, "undelivered": 1}, now=created + 60_000)[0] is False
