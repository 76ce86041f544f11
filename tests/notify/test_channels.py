"""PagerDuty, Teams, Slack and the signed webhook, each over real HTTP against a local stand-in
that checks its wire format (tests/fakes/channel_services.py), through the production client."""

from __future__ import annotations

import copy
import json
import secrets as _random
import threading

import pytest

from shared.config import Settings
from shared.errors import ChannelError, ConfigError
from shared.models import Action, Category, Decision
from shared.notify import incidents
from shared.notify.client import ChannelClient
from shared.notify.pagerduty import PagerDutyChannel
from shared.notify.routing import RoutedNotifier, build_channels, route_for
from shared.notify.slack import SlackChannel
from shared.notify.teams import TeamsChannel
from shared.notify.webhook import WebhookChannel, sign, verify_signature
from shared.secrets import SecretProvider
from shared.snapshot import parse_snapshot
from shared.store import DecisionRecord
from tests.helpers import Clock, corpus_doc


@pytest.fixture
def clock():
    return Clock()


def _env(channels, **extra):
    env = {**channels.env(), "TRIAGE_PUBLIC_BASE_URL": "https://triage-test.example.com",
           "TRIAGE_FEEDBACK_SIGNING_KEY": _random.token_urlsafe(32), "TRIAGE_MODE": "act"}
    env.update(extra)
    return env


def _client():
    return ChannelClient(attempts=3, backoff_s=0, sleep=lambda s: None, timeout_s=(2, 5))


def _channel(cls, channels, store, clock, **env):
    settings = Settings.from_env(_env(channels, **env))
    secrets = SecretProvider.from_settings(settings)
    return cls(settings, secrets=secrets, store=store, client=_client(), clock=clock), settings, secrets


def _snapshot(*, run_id=2707385833224991, job_id=None, job_name=None, error=None, tags=None):
    doc = copy.deepcopy(corpus_doc("dev-001"))
    doc["run"]["run_id"] = run_id
    doc["run"]["run_page_url"] = f"https://adb-1.1.azuredatabricks.net/jobs/1/runs/{run_id}"
    if job_id is not None:
        doc["run"]["job_id"] = job_id
        doc["job"]["job_id"] = job_id
    if job_name is not None:
        doc["job"]["settings"]["name"] = job_name
    if tags is not None:
        doc["job"]["settings"]["tags"] = tags
    if error is not None:
        task_run_id = str(doc["run"]["tasks"][0]["run_id"])
        doc["task_outputs"][task_run_id]["error"] = error.splitlines()[0]
        doc["task_outputs"][task_run_id]["error_trace"] = error
    return parse_snapshot(doc)


def _decision(action=Action.ESCALATE, category=Category.NETWORK, *, excerpt=None, fingerprint="fp-net-1"):
    return Decision(category=category, action=action, confidence=0.9, decided_by="rules",
                    reason="retries spent -> ESCALATE",
                    excerpt=excerpt or "java.io.IOException: Connection reset by peer",
                    failed_tasks=("publish",), evidence=("phrase connection reset",), fingerprint=fingerprint)


def _record(snapshot, decision):
    return DecisionRecord(decision_key=snapshot.decision_key, job_id=str(snapshot.job_id), run_id=snapshot.run_id,
                          workspace=snapshot.workspace_host, job_name=snapshot.job_name,
                          category=decision.category.value, action=decision.action.value,
                          fingerprint=decision.fingerprint, excerpt=decision.excerpt, mode="act",
                          decision=decision.to_dict())


def _notify(channel, **kw):
    snap = _snapshot(**kw)
    decision = _decision()
    return channel.notify(snap, decision, _record(snap, decision)), snap


# --- PagerDuty ------------------------------------------------------------------------------

def test_pagerduty_trigger_is_a_valid_events_v2_event(channels, store, clock):
    pd, settings, _ = _channel(PagerDutyChannel, channels, store, clock)
    result, snap = _notify(pd)
    assert result["status"] == "sent" and result["http_status"] == 202, result
    [event] = channels.pagerduty_events()
    assert event["routing_key"] == channels.routing_key and event["event_action"] == "trigger"
    assert event["dedup_key"] == result["dedup_key"] == result["incident"]
    p = event["payload"]
    assert p["severity"] == "critical" and p["source"] == snap.workspace_host and p["class"] == "NETWORK"
    assert "on-call action needed" in p["summary"] and len(p["summary"]) <= 1024
    assert p["custom_details"]["decision_key"] == snap.decision_key
    assert p["custom_details"]["incident"]["jobs"][0]["job_id"] == str(snap.job_id)
    links = {link["text"]: link["href"] for link in event["links"]}
    assert links["Open the run in Databricks"] == snap.run_page_url
    assert links["Diagnosis correct"].startswith("https://triage-test.example.com/api/feedback/")
    assert event["client_url"] == "https://triage-test.example.com"
    assert channels.alerts[event["dedup_key"]].status == "triggered"


def test_pagerduty_refused_key_is_not_retried_and_never_shows_the_key(channels, store, clock):
    pd, _, _ = _channel(PagerDutyChannel, channels, store, clock, PAGERDUTY_ROUTING_KEY="R" + "x" * 31)
    result, _ = _notify(pd)
    assert result["status"] == "failed" and result["retryable"] is False and result["http_status"] == 400
    assert result["error_code"] == "invalid event"
    assert len(channels.to("/v2/enqueue")) == 1                 # a 400 is not sent again
    assert "x" * 31 not in json.dumps(result)


def test_pagerduty_503_is_retried_then_delivered(channels, store, clock):
    pd, _, _ = _channel(PagerDutyChannel, channels, store, clock)
    channels.inject("/v2/enqueue", 503, 429)
    result, _ = _notify(pd)
    assert result["status"] == "sent"
    assert [s.status for s in channels.to("/v2/enqueue")] == [503, 429, 202]


def test_pagerduty_unreachable_fails_retryably(channels, store, clock):
    pd, _, _ = _channel(PagerDutyChannel, channels, store, clock, PAGERDUTY_EVENTS_URL="http://127.0.0.1:9/v2/enqueue")
    result, _ = _notify(pd)
    assert result["status"] == "failed" and result["retryable"] is True and "no answer" in result["error"]


def test_pagerduty_resolve_event(channels, store, clock):
    pd, _, _ = _channel(PagerDutyChannel, channels, store, clock)
    result, _ = _notify(pd)
    out = pd.resolve(result["dedup_key"])
    assert out["status"] == "resolved"
    assert channels.pagerduty_events()[-1] == {"routing_key": channels.routing_key, "event_action": "resolve",
                                               "dedup_key": result["dedup_key"]}
    assert channels.alerts[result["dedup_key"]].status == "resolved"


def test_events_url_must_be_https_except_loopback():
    with pytest.raises(ConfigError, match="PAGERDUTY_EVENTS_URL"):
        Settings.from_env({"PAGERDUTY_EVENTS_URL": "http://events.example.com/v2/enqueue"})
    assert Settings.from_env({}).pagerduty_events_url == "https://events.pagerduty.com/v2/enqueue"


# --- Teams, Slack, webhook -----------------------------------------------------------------

def test_teams_posts_an_adaptive_card_with_link_buttons(channels, store, clock):
    teams, _, _ = _channel(TeamsChannel, channels, store, clock)
    result, snap = _notify(teams, job_name="nightly [evil](https://evil.example.com) etl")
    assert result["status"] == "sent" and result["http_status"] == 202, result
    [seen] = channels.to(channels.teams_path)
    card = seen.body["attachments"][0]["content"]
    assert seen.body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    titles = {a["title"]: a["url"] for a in card["actions"]}
    assert titles["Open the run in Databricks"] == snap.run_page_url
    assert {"Diagnosis correct", "Diagnosis wrong"} <= set(titles)
    text = json.dumps(card)
    assert "](https://evil" not in text and "[evil] (https://evil" in text


def test_slack_posts_block_kit_and_escapes_mentions(channels, store, clock):
    slack, _, _ = _channel(SlackChannel, channels, store, clock)
    result, snap = _notify(slack, job_name="<!channel> etl <https://evil.example.com|click>")
    assert result["status"] == "sent" and result["http_status"] == 200, result
    [seen] = channels.to(channels.slack_path)
    assert seen.status == 200 and seen.body["text"]
    kinds = [b["type"] for b in seen.body["blocks"]]
    assert kinds[0] == "header" and "actions" in kinds
    raw = seen.raw.decode()
    assert "<!channel>" not in raw and "&lt;!channel&gt;" in raw
    buttons = next(b for b in seen.body["blocks"] if b["type"] == "actions")["elements"]
    assert buttons[0]["url"] == snap.run_page_url


def test_slack_refusal_carries_slacks_code(channels, store, clock):
    slack, _, _ = _channel(SlackChannel, channels, store, clock, SLACK_WEBHOOK_URL=channels.base + "/slack/gone")
    result, _ = _notify(slack)
    assert result["status"] == "failed" and result["http_status"] == 404 and result["error_code"] == "no_service"
    assert "/slack/gone" not in json.dumps(result)          # the URL is a credential


def test_webhook_is_signed_and_verifiable(channels, store, clock):
    hook, _, _ = _channel(WebhookChannel, channels, store, clock)
    clock.t = 1_900_000_000
    result, snap = _notify(hook)
    assert result["status"] == "sent", result
    [seen] = channels.to(channels.hook_path)
    assert seen.status == 200 and seen.body["type"] == "triage.notification" and seen.body["id"] == snap.decision_key
    assert seen.headers["x-triage-timestamp"] == "1900000000"
    assert verify_signature(channels.webhook_secret, seen.headers, seen.raw, now=1_900_000_010)
    assert not verify_signature(channels.webhook_secret, seen.headers, seen.raw + b" ", now=1_900_000_010)
    assert not verify_signature(channels.webhook_secret, seen.headers, seen.raw, now=1_900_000_000 + 301)
    assert not verify_signature("another secret", seen.headers, seen.raw, now=1_900_000_010)
    assert sign("k", 1, b"{}") == sign(b"k", 1, b"{}")


def test_webhook_without_signing_secret_is_not_configured(channels, store, clock):
    hook, _, _ = _channel(WebhookChannel, channels, store, clock, TRIAGE_WEBHOOK_SECRET="")
    result, _ = _notify(hook)
    assert result["status"] == "failed" and result["retryable"] is False and "TRIAGE_WEBHOOK_SECRET" in result["error"]
    assert channels.to(channels.hook_path) == []


@pytest.mark.parametrize("cls", [PagerDutyChannel, TeamsChannel, SlackChannel, WebhookChannel])
def test_every_channel_redacts_what_it_sends(cls, channels, store, clock):
    token = "dapi" + _random.token_hex(16)
    password = "Pw" + _random.token_urlsafe(20)
    channel, settings, secrets = _channel(cls, channels, store, clock, TRIAGE_WEBHOOK_PASSWORD=password)
    secrets.get("TRIAGE_WEBHOOK_PASSWORD")
    error = f"HTTP 403 calling https://adb-1.1.azuredatabricks.net with Bearer {token} as {password}"
    snap = _snapshot(error=error, job_name=f"etl {token}")
    decision = _decision(excerpt=error)
    assert channel.notify(snap, decision, _record(snap, decision))["status"] == "sent"
    raw = b"".join(s.raw for s in channels.seen).decode()
    assert token not in raw and password not in raw and "REDACTED" in raw


def test_one_message_per_decision_and_channel(channels, store, clock):
    teams, _, _ = _channel(TeamsChannel, channels, store, clock)
    snap = _snapshot()
    decision = _decision()
    first = teams.notify(snap, decision, _record(snap, decision))
    again = teams.notify(snap, decision, _record(snap, decision))
    assert first["status"] == again["status"] == "sent" and again["duplicate"] is True
    assert len(channels.to(channels.teams_path)) == 1


def test_a_failed_message_is_sent_again_on_the_next_try(channels, store, clock):
    teams, _, _ = _channel(TeamsChannel, channels, store, clock)
    channels.inject(channels.teams_path, 500, 500, 500)
    snap = _snapshot()
    decision = _decision()
    first = teams.notify(snap, decision, _record(snap, decision))
    assert first["status"] == "failed" and first["retryable"] is True and first["attempts"] == 1
    second = teams.notify(snap, decision, _record(snap, decision))
    assert second["status"] == "sent" and second["attempts"] == 2
    assert [s.status for s in channels.to(channels.teams_path)] == [500, 500, 500, 202]


def test_client_errors_are_typed(channels):
    client = _client()
    channels.inject("/x", 418)
    with pytest.raises(ChannelError) as err:
        client.post_json("teams", channels.base + "/x", {"a": 1})
    assert err.value.status == 418 and err.value.retryable is False and err.value.channel == "teams"
    assert "/x" not in str(err.value)


# --- routing ------------------------------------------------------------------------------

def _routed(channels, store, clock, **env):
    settings = Settings.from_env(_env(channels, **env))
    secrets = SecretProvider.from_settings(settings)
    channels = build_channels(settings, secrets, store=store, client=_client(), clock=clock)
    return RoutedNotifier(settings, channels), settings


def test_route_failure_hands_over_to_the_next_channel(channels, store, clock):
    routed, _ = _routed(channels, store, clock, TRIAGE_ESCALATE_VIA="pagerduty,teams")
    channels.inject("/v2/enqueue", 500, 500, 500)
    snap = _snapshot()
    decision = _decision()
    out = routed.notify(snap, decision, _record(snap, decision))
    assert out["status"] == "sent" and out["channel"] == "teams"
    assert [(c["channel"], c["status"]) for c in out["channels"]] == [("pagerduty", "failed"), ("teams", "sent")]
    assert out["route"] == ["pagerduty", "teams"] and out["route_source"] == "TRIAGE_ESCALATE_VIA"


def test_all_channels_failing_is_a_retryable_failure(channels, store, clock):
    routed, _ = _routed(channels, store, clock, TRIAGE_ESCALATE_VIA="slack")
    channels.inject(channels.slack_path, 503, 503, 503)
    snap = _snapshot()
    decision = _decision()
    out = routed.notify(snap, decision, _record(snap, decision))
    assert out["status"] == "failed" and out["retryable"] is True and out["channels"][0]["channel"] == "slack"


def test_job_tag_picks_a_configured_channel_by_name_only(channels, store, clock):
    settings = Settings.from_env(_env(channels, TRIAGE_NOTIFY_VIA="email"))
    configured = {"teams": object(), "slack": object()}
    snap = _snapshot(tags={"triage.notify_via": "https://evil.example.com/hook, slack, pagerduty"})
    route, source, notes = route_for(snap, _decision(Action.SEND_EMAIL), settings, configured)
    assert route == ["slack"] and source == "job tag triage.notify_via"
    assert len(notes) == 2 and not any("evil" in n for n in notes)
    snap = _snapshot(tags={"triage.notify_via": "pagerduty"})                 # not configured: the setting
    assert route_for(snap, _decision(Action.SEND_EMAIL), settings, configured)[:2] == (["email"], "TRIAGE_NOTIFY_VIA")


def test_channel_names_are_checked_in_the_settings():
    with pytest.raises(ConfigError, match="TRIAGE_ESCALATE_VIA"):
        Settings.from_env({"TRIAGE_ESCALATE_VIA": "pagerduty,https://x"})
    s = Settings.from_env({"TRIAGE_NOTIFY_VIA": "Teams, slack,teams"})
    assert s.notify_via == ("teams", "slack") and s.escalate_via == ("email",)


def test_build_notifier_routes_when_a_channel_is_configured(channels, store):
    from shared.app.runtime import build_notifier
    from shared.notify import NullNotifier

    settings = Settings.from_env({})
    assert isinstance(build_notifier(settings, SecretProvider.from_settings(settings), store=store), NullNotifier)
    settings = Settings.from_env(_env(channels, TRIAGE_ESCALATE_VIA="pagerduty"))
    n = build_notifier(settings, SecretProvider.from_settings(settings), store=store)
    assert isinstance(n, RoutedNotifier) and set(n.names) == {"pagerduty", "teams", "slack", "webhook"}
    # a route naming channels whose secrets are not set, and no email: nobody could be told
    settings = Settings.from_env({"TRIAGE_ESCALATE_VIA": "pagerduty", "TRIAGE_MODE": "act"})
    assert isinstance(build_notifier(settings, SecretProvider.from_settings(settings), store=store), NullNotifier)
    from shared.app.runtime import open_runtime
    with pytest.raises(ConfigError, match="needs a notification channel"):
        open_runtime(settings, store=store)


# --- one incident per outage ------------------------------------------------------------------

def test_jobs_failing_the_same_way_share_one_page(channels, store, clock):
    pd, _, _ = _channel(PagerDutyChannel, channels, store, clock)
    for i in range(3):
        snap = _snapshot(run_id=100 + i, job_id=10 + i, job_name=f"etl-{i}")
        decision = _decision()
        assert pd.notify(snap, decision, _record(snap, decision))["status"] == "sent"
        clock.t += 60
    events = channels.pagerduty_events()
    assert len(events) == 3 and len({e["dedup_key"] for e in events}) == 1
    assert events[-1]["payload"]["summary"].startswith("3 jobs failing: the same NETWORK failure: etl-0, etl-1, etl-2")
    assert [j["name"] for j in events[-1]["payload"]["custom_details"]["incident"]["jobs"]] == ["etl-0", "etl-1",
                                                                                                 "etl-2"]
    clock.t += 31 * 60                                          # past the window: a new incident
    snap = _snapshot(run_id=200, job_id=20, job_name="late")
    decision = _decision()
    pd.notify(snap, decision, _record(snap, decision))
    assert channels.pagerduty_events()[-1]["dedup_key"] != events[0]["dedup_key"]


def test_one_infrastructure_cause_groups_different_errors(channels, store, clock):
    pd, _, _ = _channel(PagerDutyChannel, channels, store, clock)
    errors = ["Operation failed: \"Server busy\", 503, GET, https://lake01.dfs.core.windows.net/raw/a?x=1, ServerBusy",
              "java.io.IOException: HTTP 503 Service Unavailable from lake01.dfs.core.windows.net on PUT /curated/b"]
    for i, e in enumerate(errors):
        snap = _snapshot(run_id=300 + i, job_id=30 + i, job_name=f"job-{i}")
        decision = _decision(excerpt=e, fingerprint=f"fp-{i}")
        pd.notify(snap, decision, _record(snap, decision))
    events = channels.pagerduty_events()
    assert len({e["dedup_key"] for e in events}) == 1
    assert "storage account lake01.dfs.core.windows.net answering 503" in events[-1]["payload"]["summary"]


def test_owner_notices_say_how_many_other_jobs_fail_the_same_way(channels, store, clock):
    teams, _, _ = _channel(TeamsChannel, channels, store, clock)
    for i in range(4):
        snap = _snapshot(run_id=400 + i, job_id=40 + i, job_name=f"owner-job-{i}")
        decision = _decision(Action.SEND_EMAIL, Category.DATA, fingerprint="fp-data")
        assert teams.notify(snap, decision, _record(snap, decision))["status"] == "sent"
    last = json.dumps(channels.to(channels.teams_path)[-1].body)
    assert "3 other jobs fail the same way" in last and "owner-job-0, owner-job-1, owner-job-2" in last
    assert len(channels.to(channels.teams_path)) == 4                  # every owner still gets theirs


def test_concurrent_joins_make_one_incident(store):
    settings = Settings.from_env({})
    cause = incidents.Cause("fp:test", "the same failure")
    out = []

    def join(i):
        out.append(incidents.join(store, settings, cause, job_id=str(i), job_name=f"j{i}", run_id=i,
                                  decision_key=f"{i}-0", action="ESCALATE", now_ms=1_000_000))

    threads = [threading.Thread(target=join, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i.dedup_key for i in out}) == 1 and sum(i.opened for i in out) == 1
    final = incidents.get(store, "fp:test")
    assert final.count == 8 and len(final.jobs) == 8
    # idempotent per decision key
    again = incidents.join(store, settings, cause, job_id="3", job_name="j3", run_id=3, decision_key="3-0",
                           action="ESCALATE", now_ms=1_000_100)
    assert not again.joined and again.count == 8


def test_incident_resolves_once_when_every_paged_job_recovered(store):
    settings = Settings.from_env({})
    cause = incidents.Cause("fp:r", "x")
    for i in range(2):
        incidents.join(store, settings, cause, job_id=str(i), job_name="", run_id=i, decision_key=f"{i}-0",
                       action="ESCALATE", now_ms=1000)
    first = incidents.mark_recovered(store, settings, "fp:r", job_id="0", decision_key="0-0", now_ms=2000)
    assert first.status == "open" and not first.resolved_now
    second = incidents.mark_recovered(store, settings, "fp:r", job_id="1", decision_key="1-0", now_ms=3000)
    assert second.status == "resolved" and second.resolved_now
    third = incidents.mark_recovered(store, settings, "fp:r", job_id="1", decision_key="1-0", now_ms=4000)
    assert not third.resolved_now


def test_an_owner_alert_on_pagerduty_resolves_when_handled(channels, store, clock):
    from shared.notify.routing import recovered

    routed, settings = _routed(channels, store, clock, TRIAGE_NOTIFY_VIA="pagerduty")
    snap = _snapshot()
    decision = _decision(Action.SEND_EMAIL, Category.DATA)
    rec = store.claim(_record(snap, decision)).record
    rec.notification = routed.notify(snap, decision, rec)
    assert rec.notification["channel"] == "pagerduty"
    trigger = channels.pagerduty_events()[0]
    assert trigger["payload"]["severity"] == "warning" and trigger["dedup_key"].startswith("triage-decision-")
    rec = store.update(rec).record
    out = recovered(settings, rec, store=store, notifier=routed, now_ms=int(clock() * 1000), how="marked handled")
    assert out["status"] == "resolved" and out["incident"] == trigger["dedup_key"]
    assert channels.alerts[trigger["dedup_key"]].status == "resolved"
    assert store.get(rec.decision_key, rec.job_id).notification["recovered_how"] == "marked handled"


def test_webhook_signature_check_refuses_a_timestamp_of_unicode_digits():
    """The receiver's check answers False for a header it cannot read ('²' passes str.isdigit())."""
    body = b"{}"
    for ts in ("\u00b2", "\u0661\u0662", "1\u00b2"):
        headers = {"X-Triage-Timestamp": ts, "X-Triage-Signature": sign("k", 1, body)}
        assert verify_signature("k", headers, body, now=1) is False


def test_a_decision_awaiting_approval_carries_approve_and_reject_buttons(channels, store, clock):
    teams, _, _ = _channel(TeamsChannel, channels, store, clock)
    slack, _, _ = _channel(SlackChannel, channels, store, clock)
    snap = _snapshot()
    decision = _decision(Action.SEND_EMAIL, Category.NETWORK)
    rec = _record(snap, decision)
    rec.decision = {**rec.decision, "approval": "pending"}
    assert teams.notify(snap, decision, rec)["status"] == "sent"
    assert slack.notify(snap, decision, rec)["status"] == "sent"
    card = channels.to(channels.teams_path)[0].body["attachments"][0]["content"]
    titles = [a["title"] for a in card["actions"]]
    assert titles[:3] == ["Open the run in Databricks", "Approve", "Reject"]
    buttons = next(b for b in channels.to(channels.slack_path)[0].body["blocks"] if b["type"] == "actions")["elements"]
    assert [b.get("style") for b in buttons[1:3]] == ["primary", "danger"]
    assert all("/api/feedback/" in b["url"] for b in buttons[1:])


def test_a_notice_another_attempt_is_still_sending_is_not_delivered_nor_sent_elsewhere(channels, store, clock):
    """A worker died mid-send and left its PagerDuty claim "sending": until that claim is stale,
    the route says "not delivered yet" (in_flight) instead of "delivered", and does not hand the
    decision to the next channel; once stale, the notice is sent."""
    from shared.notify.channel import STATE_KIND

    routed, _ = _routed(channels, store, clock, TRIAGE_ESCALATE_VIA="pagerduty,teams")
    snap = _snapshot()
    decision = _decision()
    store.state_put(STATE_KIND, f"pagerduty:ESCALATE:{snap.decision_key}", {"status": "sending",
                                                                             "at": int(clock.t * 1000), "attempts": 1},
                    if_absent=True)
    clock.t += 60
    out = routed.notify(snap, decision, _record(snap, decision))
    assert out["status"] == "failed" and out["retryable"] is True
    assert [(c["channel"], c.get("in_flight")) for c in out["channels"]] == [("pagerduty", True)]
    assert channels.to("/v2/enqueue") == [] and channels.to(channels.teams_path) == []
    clock.t += 11 * 60                                          # the dead worker's claim is stale
    out = routed.notify(snap, decision, _record(snap, decision))
    assert out["status"] == "sent" and out["channel"] == "pagerduty"
    assert len(channels.to("/v2/enqueue")) == 1 and channels.to(channels.teams_path) == []
