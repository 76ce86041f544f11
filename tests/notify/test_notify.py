import base64
import copy
import html
import re
import secrets as _random
from urllib.parse import urlsplit

import pytest

import shared.notify as notify_mod
from shared.store._sqlite import SqliteStore
from shared.config import Settings
from shared.errors import ConfigError
from shared.models import Action, Category, Decision
from shared.notify import (
    EmailNotifier,
    Similar,
    default_fix,
    feedback_links,
    pending_notifications,
    recipients_for,
    render_email,
)
from shared.secrets import SecretProvider
from shared.signing import verify_token
from shared.snapshot import parse_snapshot
from shared.store import DecisionRecord
from tests.fakes.azure_services import AcsEmailService, FakeCredential
from tests.helpers import T0, Clock, corpus_doc

SENDER = "DoNotReply@triage-test.example.com"


def _env(acs: AcsEmailService, **extra: str) -> dict[str, str]:
    env = {
        "ACS_ENDPOINT": acs.endpoint,
        "EMAIL_SENDER": SENDER,
        "EMAIL_DEFAULT_TO": "data-platform@example.com",
        "EMAIL_ESCALATION_TO": "oncall@example.com, sre@example.com",
        "TRIAGE_PUBLIC_BASE_URL": "https://triage-test.example.com",
        "TRIAGE_FEEDBACK_SIGNING_KEY": _random.token_urlsafe(32),
        "TRIAGE_MODE": "act",
    }
    env.update(extra)
    return env


def _snapshot(*, run_id: int = 2707385833224991, error: str | None = None, tags=None, job_name=None,
              on_failure=None, creator=None, repairs=None):
    doc = copy.deepcopy(corpus_doc("dev-001"))
    doc["run"]["run_id"] = run_id
    task_run_id = str(doc["run"]["tasks"][0]["run_id"])
    if error is not None:
        doc["task_outputs"][task_run_id]["error"] = error.splitlines()[0]
        doc["task_outputs"][task_run_id]["error_trace"] = error
    if tags is not None:
        doc["job"]["settings"]["tags"] = tags
    if job_name is not None:
        doc["job"]["settings"]["name"] = job_name
    if on_failure is not None:
        doc["job"]["settings"]["email_notifications"] = {"on_failure": on_failure}
    if creator is not None:
        doc["run"]["creator_user_name"] = creator
        doc["job"]["creator_user_name"] = creator
    if repairs is not None:
        doc["run"]["repair_history"] = repairs
    return parse_snapshot(doc)


def _decision(action=Action.SEND_EMAIL, category=Category.PERMISSION, *, reason=None, excerpt=None,
              fingerprint="fp-permission-1", fix=""):
    return Decision(
        category=category, action=action, confidence=0.97, decided_by="rules",
        reason=reason or "PERMISSION in task publish (error class INSUFFICIENT_PERMISSIONS) -> SEND_EMAIL",
        excerpt=excerpt or "[INSUFFICIENT_PERMISSIONS] Insufficient privileges:\nUser does not have USE CATALOG",
        failed_tasks=("publish",), evidence=("error class INSUFFICIENT_PERMISSIONS",),
        fingerprint=fingerprint, suggested_fix=fix,
    )


def _record(snapshot, decision, settings):
    return DecisionRecord(decision_key=snapshot.decision_key, job_id=str(snapshot.job_id), run_id=snapshot.run_id,
                          workspace=snapshot.workspace_host, job_name=snapshot.job_name,
                          category=decision.category.value, action=decision.action.value,
                          fingerprint=decision.fingerprint, excerpt=decision.excerpt, mode=settings.mode,
                          decision=decision.to_dict())


@pytest.fixture
def acs():
    return AcsEmailService()


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "triage.db")
    yield s
    s.close()


@pytest.fixture
def clock():
    return Clock()


def _notifier(acs, store, clock, *, env=None, credential=None, **kwargs):
    settings = Settings.from_env(env or _env(acs))
    secrets = SecretProvider.from_settings(settings)
    kwargs.setdefault("polling_interval_s", 0)
    kwargs.setdefault("retry_backoff_factor", 0)
    n = EmailNotifier.from_settings(settings, store=store, secrets=secrets,
                                    credential=credential or FakeCredential(), transport=acs.transport,
                                    clock=clock, **kwargs)
    return n, settings, secrets


def test_notify_exports_exist():
    assert all(hasattr(notify_mod, name) for name in notify_mod.__all__)


# --- the request the real SDK builds ------------------------------------------------------

def test_notify_permission_failure_sends_the_real_request(acs, store, clock):
    credential = FakeCredential()
    n, settings, _ = _notifier(acs, store, clock, credential=credential)
    snap = _snapshot(tags={"triage.owner": "alice@example.com, bob@example.com"})
    decision = _decision()
    result = n.notify(snap, decision, _record(snap, decision, settings))

    assert result["status"] == "sent" and result["to"] == ["alice@example.com", "bob@example.com"]
    assert result["recipient_source"] == "job tag triage.owner" and result["attempts"] == 1
    assert len(acs.accepted) == 1 and len(acs.delivered) == 1
    sent = acs.accepted[0]
    assert sent.message["senderAddress"] == SENDER
    assert sent.to == ["alice@example.com", "bob@example.com"]
    assert sent.subject == "[triage] nightly-etl failed: PERMISSION — owner action needed"
    assert sent.message["userEngagementTrackingDisabled"] is True
    run_url = snap.run_page_url
    for body in (sent.text, sent.html):
        assert "publish" in body and "INSUFFICIENT_PERMISSIONS" in body and "USE CATALOG" in body
        assert "Owner action needed" in body and "SEND_EMAIL" in body
        assert snap.decision_key in body
        assert "triage-test.example.com/api/feedback/" in body
    assert f'<a href="{html.escape(run_url)}">Open run {snap.run_id} in Databricks</a>' in sent.html
    assert run_url in sent.text
    # keyless: a bearer token for the ACS scope, and the repeatable-request headers
    assert sent.headers["Authorization"] == "Bearer fake-access-token"
    assert credential.scopes[0] == ("https://communication.azure.com//.default",)
    assert sent.headers["Repeatability-Request-Id"] == sent.headers["Operation-Id"] == result["operation_id"]
    assert sent.headers["Repeatability-First-Sent"].endswith(" GMT")
    # the poller followed Operation-Location: Running, then Succeeded
    polls = [r for r in acs.transport.requests if r.method == "GET"]
    assert len(polls) == 2 and all(urlsplit(r.url).path == f"/emails/operations/{sent.operation_id}" for r in polls)


def test_notify_hostile_error_text_is_html_escaped(acs, store, clock):
    hostile = "<script>alert(\"pwned\")</script> & 'quoted' <img src=x onerror=alert(1)>"
    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot(error=f"Py4JJavaError: {hostile}", job_name="etl<b>bold</b>&co")
    decision = _decision(reason=f"text '{hostile}'", excerpt=f"Py4JJavaError: {hostile}", fix=f"fix {hostile}")
    assert n.notify(snap, decision, _record(snap, decision, settings))["status"] == "sent"
    body = acs.accepted[0].html
    for raw in ("<script", "<img", "<b>bold", "onerror=alert(1)>", "\"pwned\"", "'quoted'", "& 'quoted"):
        assert raw not in body
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &#x27;quoted&#x27;" in body
    assert "etl&lt;b&gt;bold&lt;/b&gt;&amp;co" in body
    assert acs.accepted[0].subject.startswith("[triage] etl<b>bold</b>&co failed")  # a subject is plain text
    assert hostile in acs.accepted[0].text  # the plain-text body shows the text as it is


def test_notify_planted_secret_never_leaves(acs, store, clock):
    token = "dapi" + _random.token_hex(16)
    password = "Pw" + _random.token_urlsafe(20)   # no pattern matches this: only scrub() knows it
    env = _env(acs, TRIAGE_WEBHOOK_PASSWORD=password)
    n, settings, secrets = _notifier(acs, store, clock, env=env)
    secrets.get("TRIAGE_WEBHOOK_PASSWORD")        # handed out to some other part of the app
    error = f"HTTP 403 calling https://adb-1.1.azuredatabricks.net with Bearer {token} as {password}"
    snap = _snapshot(error=error)
    decision = _decision(reason=f"saw {token}", excerpt=error, fix=f"rotate {token} / {password}")
    assert n.notify(snap, decision, _record(snap, decision, settings))["status"] == "sent"
    sent = acs.accepted[0]
    for part in (sent.subject, sent.html, sent.text):
        assert token not in part and password not in part
    assert "[REDACTED:" in sent.text


# --- no storms ------------------------------------------------------------------------------

def test_notify_one_email_per_decision_key(acs, store, clock):
    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot()
    decision = _decision()
    first = n.notify(snap, decision, _record(snap, decision, settings))
    again = n.notify(snap, decision, _record(snap, decision, settings))
    assert first["status"] == "sent"
    assert again["status"] == "sent" and again["duplicate"] is True
    assert again["operation_id"] == first["operation_id"]
    assert len(acs.accepted) == 1


def test_notify_burst_of_50_identical_failures_sends_one_email(acs, store, clock):
    n, settings, _ = _notifier(acs, store, clock, env=_env(acs, TRIAGE_EMAIL_WINDOW="6h"))
    decision = _decision()
    results = []
    for i in range(50):
        snap = _snapshot(run_id=5000 + i)
        clock.t += 60
        results.append(n.notify(snap, decision, _record(snap, decision, settings)))
    assert len(acs.accepted) == 1
    assert [r["status"] for r in results] == ["sent"] + ["suppressed"] * 49
    assert [r["count"] for r in results[1:]] == list(range(2, 51))
    assert all(r["emailed_decision_key"] == "5000-0" for r in results[1:])

    clock.t += 6 * 3600  # the window is over: the next failure is emailed with the count
    snap = _snapshot(run_id=6000)
    result = n.notify(snap, decision, _record(snap, decision, settings))
    assert result["status"] == "sent" and result["similar"]["count"] == 49
    assert len(acs.accepted) == 2
    second = acs.accepted[1]
    assert second.subject.startswith("[triage] nightly-etl failed: PERMISSION — owner action needed (+49 similar since ")
    assert "49 similar failures of this job (same error) since" in second.text
    assert "49 similar failures of this job (same error) since" in second.html


def test_notify_window_is_per_job_and_fingerprint(acs, store, clock):
    n, settings, _ = _notifier(acs, store, clock)
    a = _snapshot(run_id=1)
    other_job_doc = copy.deepcopy(corpus_doc("dev-001"))
    other_job_doc["run"]["job_id"] = other_job_doc["job"]["job_id"] = 42
    other_job = parse_snapshot(other_job_doc)
    n.notify(a, _decision(), _record(a, _decision(), settings))
    b = _snapshot(run_id=2)
    n.notify(b, _decision(fingerprint="fp-other"), _record(b, _decision(fingerprint="fp-other"), settings))
    n.notify(other_job, _decision(), _record(other_job, _decision(), settings))
    assert len(acs.accepted) == 3


# --- faults ---------------------------------------------------------------------------------

def test_notify_throttled_then_sent_with_the_same_repeatable_request(acs, store, clock):
    acs.send_faults = [(429, {"Retry-After": "7"})]
    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot()
    result = n.notify(snap, _decision(), _record(snap, _decision(), settings))
    assert result["status"] == "sent"
    posts = [r for r in acs.transport.requests if r.method == "POST"]
    assert len(posts) == 2 and 7.0 in acs.transport.sleeps
    assert posts[0].headers["Repeatability-Request-Id"] == posts[1].headers["Repeatability-Request-Id"]
    assert len(acs.accepted) == 1


def test_notify_5xx_after_the_service_accepted_is_not_sent_twice(acs, store, clock):
    acs.send_faults = [(503, {})]
    acs.apply_faults_after_accept = True
    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot()
    assert n.notify(snap, _decision(), _record(snap, _decision(), settings))["status"] == "sent"
    assert acs.posts == 2 and len(acs.accepted) == 1


def test_notify_persistent_5xx_is_recorded_failed_and_retried_by_the_sweep(acs, store, clock):
    acs.send_faults = [(500, {})] * 3
    n, settings, _ = _notifier(acs, store, clock, retry_total=2)
    snap = _snapshot()
    decision = _decision()
    record = _record(snap, decision, settings)
    result = n.notify(snap, decision, record)
    assert result["status"] == "failed" and result["retryable"] is True
    assert result["http_status"] == 500 and "HTTP 500" in result["error"]
    assert acs.posts == 3 and acs.accepted == []

    record.notification = result       # what the pipeline stores on the decision
    assert store.claim(record).won
    assert [r.decision_key for r in pending_notifications(store)] == [record.decision_key]

    again = n.notify(snap, decision, store.get(record.decision_key))
    # a 5xx may have been accepted: the resend repeats the same request (attempt, id, first-sent)
    assert again["status"] == "sent" and again["attempts"] == 1
    assert again["operation_id"] == result["operation_id"]
    assert len(acs.accepted) == 1


def test_notify_repeatability_id_derives_from_the_decision_key(acs, store, clock):
    from shared.notify.acs_email import repeatability_id

    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot()
    result = n.notify(snap, _decision(), _record(snap, _decision(), settings))
    assert result["operation_id"] == repeatability_id(snap.decision_key, 1)
    assert acs.accepted[0].headers["Repeatability-Request-Id"] == repeatability_id(snap.decision_key, 1)
    assert repeatability_id(snap.decision_key, 1) != repeatability_id(snap.decision_key, 2)
    assert repeatability_id(snap.decision_key, 1) != repeatability_id("other-0", 1)


def test_notify_unconfirmed_send_is_repeated_not_sent_twice(acs, store, clock):
    """ACS accepted the message but its status never came back in time: the sweep's resend is
    the same request (same repeatability id, same first-sent time), so ACS answers with the
    operation it already has and the owner gets one email."""
    acs.hang.set()
    acs.transport.real_sleep = 0.01     # the first send's poller goes on polling in the background: not in a tight loop
    n, settings, _ = _notifier(acs, store, clock, send_timeout_s=0.3)
    snap = _snapshot()
    record = _record(snap, _decision(), settings)
    first = n.notify(snap, _decision(), record)
    assert first["status"] == "failed" and "did not confirm" in first["error"] and len(acs.accepted) == 1
    acs.hang.clear()
    clock.t += 120                                       # the next sweep, two minutes later
    again = n.notify(snap, _decision(), record)
    assert again["status"] == "sent" and again["operation_id"] == first["operation_id"]
    assert len(acs.accepted) == 1 and acs.posts == 2
    sent_headers = [e.headers for e in acs.accepted]
    assert sent_headers[0]["Repeatability-First-Sent"]


def test_notify_crash_mid_send_is_repeated_with_the_first_request(acs, store, clock):
    """A worker killed after ACS accepted the message leaves the email claim "sending"; once it is
    stale, the next notify repeats attempt 1 (same id and first-sent), which ACS dedupes."""
    from shared.notify.acs_email import repeatability_id

    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot()
    record = _record(snap, _decision(), settings)
    first = n.notify(snap, _decision(), record)
    assert first["status"] == "sent"
    # what the killed worker left: the claim still "sending", as it was before _finish
    cur = store.state_get("email", snap.decision_key)
    store.state_put("email", snap.decision_key, {**cur.value, "status": "sending", "at": int(clock.t * 1000)},
                    etag=cur.etag)
    clock.t += 200                     # stale (past twice the send time-out), inside ACS's 5 minutes
    again = n.notify(snap, _decision(), record)
    assert again["status"] == "sent" and again["attempts"] == 1
    assert again["operation_id"] == repeatability_id(snap.decision_key, 1)
    assert len(acs.accepted) == 1


def test_notify_definite_failure_is_followed_by_a_new_request(acs, store, clock):
    from shared.notify.acs_email import repeatability_id

    acs.final_status = "Failed"
    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot()
    record = _record(snap, _decision(), settings)
    assert n.notify(snap, _decision(), record)["status"] == "failed"
    acs.final_status = "Succeeded"
    again = n.notify(snap, _decision(), record)
    assert again["status"] == "sent" and again["operation_id"] == repeatability_id(snap.decision_key, 2)


def test_notify_failed_send_status_is_recorded(acs, store, clock):
    acs.final_status = "Failed"
    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot()
    result = n.notify(snap, _decision(), _record(snap, _decision(), settings))
    assert result["status"] == "failed" and result["error_code"] == "EmailDroppedAllRecipientsSuppressed"
    assert result["error"].startswith("ACS send operation failed: [EmailDroppedAllRecipientsSuppressed]")


def test_notify_send_poller_is_bounded_in_time(acs, store, clock):
    acs.hang.set()
    acs.transport.real_sleep = 0.01
    n, settings, _ = _notifier(acs, store, clock, send_timeout_s=0.3)
    snap = _snapshot()
    try:
        result = n.notify(snap, _decision(), _record(snap, _decision(), settings))
    finally:
        acs.hang.clear()
    assert result["status"] == "failed" and "did not confirm the send within 0.3s" in result["error"]
    assert result["operation_id"] in result["error"]


def test_notify_no_recipient_fails_visibly(acs, store, clock):
    env = _env(acs, EMAIL_ESCALATION_TO="", EMAIL_DEFAULT_TO="")
    n, settings, _ = _notifier(acs, store, clock, env=env)
    snap = _snapshot()
    decision = _decision(action=Action.ESCALATE, category=Category.UNKNOWN)
    result = n.notify(snap, decision, _record(snap, decision, settings))
    assert result == {"status": "failed", "error": "no recipient: set EMAIL_ESCALATION_TO", "retryable": False,
                      "attempts": 1, "at": int(T0 * 1000)}
    assert acs.posts == 0


def test_notify_retry_action_sends_nothing(acs, store, clock):
    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot()
    decision = _decision(action=Action.RETRY, category=Category.TIMEOUT)
    assert n.notify(snap, decision, _record(snap, decision, settings))["status"] == "skipped"
    assert acs.transport.requests == []


def test_notify_connection_string_signs_with_hmac(acs, store, clock):
    env = _env(acs, ACS_ENDPOINT="", ACS_CONNECTION_STRING=acs.connection_string(_random.token_bytes(32)))
    credential = FakeCredential()
    n, settings, _ = _notifier(acs, store, clock, env=env, credential=credential)
    snap = _snapshot()
    assert n.notify(snap, _decision(), _record(snap, _decision(), settings))["status"] == "sent"
    sent = acs.accepted[0]
    assert sent.headers["Authorization"].startswith("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256")
    assert credential.scopes == []


def test_notify_from_settings_without_email_config_is_config_error(acs, store):
    settings = Settings.from_env({"EMAIL_SENDER": SENDER})
    with pytest.raises(ConfigError, match="ACS_ENDPOINT .* ACS_CONNECTION_STRING"):
        EmailNotifier.from_settings(settings, store=store, secrets=SecretProvider.from_settings(settings))
    settings = Settings.from_env({"ACS_ENDPOINT": acs.endpoint})
    with pytest.raises(ConfigError, match="EMAIL_SENDER"):
        EmailNotifier.from_settings(settings, store=store, secrets=SecretProvider.from_settings(settings))


@pytest.mark.parametrize("kwargs,match", [
    ({"endpoint": "http://acs.example.com"}, "ACS_ENDPOINT must look like https://"),
    ({"sender": "not-an-address"}, "EMAIL_SENDER must be a verified sender address"),
    ({"endpoint": "", "secrets": None}, "ACS_ENDPOINT .* or the secret ACS_CONNECTION_STRING"),
])
def test_email_notifier_init_validates(store, kwargs, match):
    args = {"endpoint": "https://acs.example.com", "sender": SENDER, "secrets": None}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        EmailNotifier(args.pop("endpoint"), sender=args.pop("sender"), settings=Settings(), store=store, **args)


# --- recipients -----------------------------------------------------------------------------

@pytest.mark.parametrize("snap_kwargs,expected,source", [
    ({"tags": {"triage.owner": "a@example.com; b@example.com"}, "on_failure": ["c@example.com"]},
     ("a@example.com", "b@example.com"), "job tag triage.owner"),
    ({"on_failure": ["c@example.com", "C@example.com"]}, ("c@example.com",), "the job's failure e-mail notifications"),
    ({}, ("owner-26@example.com",), "the run's creator"),
    ({"creator": "8f2e9a1c-0000-4000-8000-000000000000"}, ("data-platform@example.com",), "EMAIL_DEFAULT_TO"),
    ({"tags": {"triage.owner": "not an address"}, "creator": "sp-app-id"}, ("data-platform@example.com",),
     "EMAIL_DEFAULT_TO"),
])
def test_recipients_for_send_email_precedence(acs, snap_kwargs, expected, source):
    settings = Settings.from_env(_env(acs))
    r = recipients_for(_snapshot(**snap_kwargs), _decision(), settings)
    assert (r.to, r.source) == (expected, source)


def test_recipients_for_escalate_is_the_on_call_list(acs):
    settings = Settings.from_env(_env(acs))
    r = recipients_for(_snapshot(tags={"triage.owner": "a@example.com"}), _decision(action=Action.ESCALATE), settings)
    assert r.to == ("oncall@example.com", "sre@example.com") and r.source == "EMAIL_ESCALATION_TO"


# --- rendering --------------------------------------------------------------------------------

def test_render_email_escalation_names_on_call_and_owner(acs):
    settings = Settings.from_env(_env(acs))
    snap = _snapshot(tags={"triage.owner": "alice@example.com"})
    decision = _decision(action=Action.ESCALATE, category=Category.TIMEOUT,
                         reason="retries exhausted (3 of 3)")
    email = render_email(snap, decision, _record(snap, decision, settings), settings=settings, links={}, now=T0)
    assert email.subject == "[triage] nightly-etl failed: TIMEOUT — on-call action needed"
    assert email.to == ("oncall@example.com", "sre@example.com")
    assert "Job owner: alice@example.com (job tag triage.owner)." in email.text
    assert "retries exhausted (3 of 3)" in email.text
    assert default_fix(Category.TIMEOUT) in email.text
    assert "Feedback links are not configured" in email.text


def test_render_email_retry_history_lists_repairs(acs):
    settings = Settings.from_env(_env(acs))
    repairs = [{"type": "ORIGINAL", "start_time": int(T0 * 1000), "state": {"result_state": "FAILED"}},
               {"type": "REPAIR", "id": 77, "start_time": int(T0 * 1000) + 600_000,
                "state": {"result_state": "FAILED"}}]
    snap = _snapshot(repairs=repairs)
    decision = _decision()
    email = render_email(snap, decision, _record(snap, decision, settings), settings=settings, links={}, now=T0,
                         similar=Similar(count=3, since_ms=int(T0 * 1000) - 3600_000, until_ms=int(T0 * 1000)))
    assert "Automatic retries of this run so far: 1 (limit 3" in email.text
    assert "original run at 2027-01-15 08:00 UTC: FAILED" in email.text
    assert "repair 77 at 2027-01-15 08:10 UTC: FAILED" in email.text
    assert "3 similar failures of this job (same error) since 2027-01-15 07:00 UTC were counted" in email.text


def test_render_email_drops_non_http_links(acs):
    settings = Settings.from_env(_env(acs))
    doc = copy.deepcopy(corpus_doc("dev-001"))
    doc["run"]["run_page_url"] = "javascript:alert(1)"
    snap = parse_snapshot(doc)
    decision = _decision()
    email = render_email(snap, decision, _record(snap, decision, settings), settings=settings,
                         links={"correct": "javascript:alert(2)"}, now=T0)
    assert "javascript:" not in email.html and "javascript:" not in email.text


def test_feedback_links_verify_and_expire(acs):
    settings = Settings.from_env(_env(acs, TRIAGE_FEEDBACK_LINK_TTL="14d"))
    key = settings.extra["TRIAGE_FEEDBACK_SIGNING_KEY"].encode()
    links = feedback_links(settings, key, "123-1", now=T0)
    assert set(links) == {"correct", "wrong"}
    for verdict, url in links.items():
        assert url.startswith("https://triage-test.example.com/api/feedback/")
        claim = verify_token(key, url.rsplit("/", 1)[1], now=T0 + 1)
        assert (claim.decision_key, claim.verdict, claim.expires_at) == ("123-1", verdict, int(T0) + 14 * 86400)
    assert feedback_links(Settings.from_env({}), key, "123-1", now=T0) == {}


def test_notify_email_carries_working_feedback_links(acs, store, clock):
    n, settings, _ = _notifier(acs, store, clock)
    snap = _snapshot()
    n.notify(snap, _decision(), _record(snap, _decision(), settings))
    key = settings.extra["TRIAGE_FEEDBACK_SIGNING_KEY"].encode()
    tokens = re.findall(r"/api/feedback/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", acs.accepted[0].text)
    assert [verify_token(key, t, now=T0).verdict for t in tokens] == ["correct", "wrong"]


# --- the sweep's view -------------------------------------------------------------------------

def test_pending_notifications_failed_and_abandoned(store):
    now = int(T0 * 1000)

    def rec(key, action, notification, created_at=now - 3600_000):
        r = DecisionRecord(decision_key=key, job_id="7", run_id=int(key.split("-")[0]), action=action,
                           mode="act", notification=notification, created_at=created_at)
        store.claim(r)

    rec("1-0", "SEND_EMAIL", {"status": "failed", "attempts": 2})
    rec("2-0", "SEND_EMAIL", {"status": "failed", "attempts": 5})       # gave up
    rec("3-0", "ESCALATE", {})                                          # worker died before recording
    rec("4-0", "ESCALATE", {}, created_at=now - 60_000)                 # still in flight
    rec("5-0", "SEND_EMAIL", {"status": "sent"})
    rec("6-0", "RETRY", {})
    keys = sorted(r.decision_key for r in pending_notifications(store, now_ms=now))
    assert keys == ["1-0", "3-0"]


def test_acs_connection_string_helper_is_base64(acs):
    key = _random.token_bytes(16)
    assert base64.b64decode(acs.connection_string(key).split("accesskey=")[1]) == key


def test_notify_concurrent_workers_send_one_email(acs, store, clock):
    from concurrent.futures import ThreadPoolExecutor

    n, settings, _ = _notifier(acs, store, clock)
    decision = _decision()
    snaps = [_snapshot(run_id=9000 + (i % 4)) for i in range(16)]   # 4 decision keys, 4 deliveries each
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda s: n.notify(s, decision, _record(s, decision, settings)), snaps))
    assert len(acs.accepted) == 1
    assert sum(1 for r in results if r["status"] == "sent" and not r.get("duplicate")) == 1


def test_owner_emails_say_how_many_other_jobs_fail_the_same_way(acs, store, clock):
    n, settings, _ = _notifier(acs, store, clock)
    for i in range(3):
        snap = _snapshot(run_id=7000 + i, job_name=f"orders-{i}", tags={"triage.owner": f"owner{i}@example.com"})
        snap.run["job_id"] = 500 + i
        decision = _decision(fingerprint="fp-shared")
        assert n.notify(snap, decision, _record(snap, decision, settings))["status"] == "sent"
        clock.t += 60
    assert [m.to for m in acs.accepted] == [["owner0@example.com"], ["owner1@example.com"], ["owner2@example.com"]]
    assert "other job" not in acs.accepted[0].text
    assert "1 other job fails the same way (the same PERMISSION failure): orders-0." in acs.accepted[1].text
    assert "2 other jobs fail the same way" in acs.accepted[2].text and "orders-0, orders-1" in acs.accepted[2].html


# --- what a person on a phone sees first --------------------------------------------------------

def _first_card(page: str) -> str:
    start = page.index(">What to do</h2>")
    return page[start:page.index("</div>", start)]


def test_render_email_puts_the_cause_in_the_first_card_and_the_evidence_once(acs):
    settings = Settings.from_env(_env(acs))
    snap = _snapshot()
    decision = Decision(
        category=Category.PERMISSION, action=Action.SEND_EMAIL, confidence=0.97, decided_by="rules", reason="r",
        excerpt="[2026-05-29T02:36:11.589Z] AnalysisException: [INSUFFICIENT_PERMISSIONS] Insufficient privileges:\n"
                "User does not have USE CATALOG on Catalog 'sales'. SQLSTATE: 42501\n\tat org.apache.X(X.scala:1)",
        failed_tasks=("publish",), fingerprint="fp",
        evidence=("error class INSUFFICIENT_PERMISSIONS", "SQLSTATE 42501", "exception AnalysisException",
                  "SQLSTATE 42501"))
    email = render_email(snap, decision, _record(snap, decision, settings), settings=settings, links={}, now=T0)
    cause = ("AnalysisException: [INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have USE CATALOG "
             "on Catalog 'sales'. SQLSTATE: 42501")
    assert html.escape(cause, quote=True) in _first_card(email.html)
    assert email.text.splitlines()[5] == f"Cause: {cause}"           # right after what to do
    assert email.text.count("SQLSTATE 42501") == 1 and email.html.count("SQLSTATE 42501") == 1


def test_render_email_long_hosts_wrap(acs):
    settings = Settings.from_env(_env(acs))
    doc = copy.deepcopy(corpus_doc("dev-001"))
    doc["workspace_host"] = "https://adb-" + "1234567890" * 6 + ".17.azuredatabricks.net"
    snap = parse_snapshot(doc)
    decision = _decision()
    page = render_email(snap, decision, _record(snap, decision, settings), settings=settings, links={}, now=T0).html
    row = page[page.index(">Workspace</td>"):]
    assert row.startswith(">Workspace</td><td style=\"overflow-wrap:anywhere;word-break:break-all;\">")
    assert "overflow-wrap:anywhere" in page[:page.index("<h1")]          # the whole body wraps long words


def test_render_email_escalation_links_the_earlier_attempts(acs):
    settings = Settings.from_env(_env(acs))
    repairs = [{"type": "ORIGINAL", "start_time": int(T0 * 1000), "state": {"result_state": "FAILED"}},
               {"type": "REPAIR", "id": 77, "start_time": int(T0 * 1000) + 600_000,
                "state": {"result_state": "FAILED"}}]
    doc = copy.deepcopy(corpus_doc("dev-001"))
    doc["run"]["repair_history"] = repairs
    doc["run"]["run_id"] = 555
    doc["run"]["run_page_url"] = "https://adb-1.1.azuredatabricks.net/?o=1#job/7/run/555"
    snap = parse_snapshot(doc)
    decision = _decision(action=Action.ESCALATE, category=Category.TIMEOUT, reason="retries exhausted (3 of 3)")
    record = _record(snap, decision, settings)
    record.lineage = "444"                         # this run is a resubmission of run 444
    email = render_email(snap, decision, record, settings=settings, links={}, now=T0)
    card = _first_card(email.html)
    assert '<b>Earlier attempts:</b> <a href="https://adb-1.1.azuredatabricks.net/?o=1#job/7/run/444">original run ' \
           '444</a>, <a href="https://adb-1.1.azuredatabricks.net/?o=1#job/7/run/555">repair 77 at ' in card
    assert "Earlier attempts: original run 444 https://adb-1.1.azuredatabricks.net/?o=1#job/7/run/444" in email.text


def test_notify_approval_requests_are_never_folded_into_the_window_and_carry_bound_buttons(acs, store, clock):
    from dataclasses import replace as _replace

    n, settings, _ = _notifier(acs, store, clock, env=_env(acs, TRIAGE_EMAIL_WINDOW="6h"))
    asking = _replace(_decision(), proposed_action="RETRY", approval="pending")
    results = []
    for i in range(3):                      # the same failure three times: each asks a person, each is sent
        snap = _snapshot(run_id=7000 + i)
        clock.t += 60
        results.append(n.notify(snap, asking, _record(snap, asking, settings)))
    assert [r["status"] for r in results] == ["sent"] * 3 and len(acs.accepted) == 3
    key = settings.extra["TRIAGE_FEEDBACK_SIGNING_KEY"].encode()
    email = acs.accepted[0]
    assert "Approval requested" in email.html and "APPROVAL REQUESTED" in email.text
    tokens = re.findall(r"/api/feedback/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", email.text)
    claims = [verify_token(key, t, now=T0 + 1) for t in tokens]
    assert {c.verdict for c in claims} == {"correct", "wrong", "approve", "reject"}
    assert {(c.decision_key, c.job_id) for c in claims} == {("7000-0", str(_snapshot(run_id=7000).job_id))}
