"""ACS repeatable requests: the stand-in keeps ACS's documented rules, and the notifier lives by them.

The stand-in (``tests.fakes.azure_services.AcsEmailService``) answers a send with malformed
repeatability headers 400, one first sent more than 5 minutes ago 412, a repeat that does not
match the first request 400, a repeat while the first is still in progress 409, and a matching
repeat with the first one's answer (one email). The notifier: a send another attempt still
holds is not taken for delivered; past the window it sends a new request (at most one
duplicate); a 409 is repeated as the same request once the first one ends.
"""

from __future__ import annotations

import copy
import secrets as _random
import threading
import uuid
from email.utils import formatdate

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from shared.config import Settings
from shared.models import Action, Category, Decision
from shared.notify import EmailNotifier
from shared.notify.acs_email import repeatability_id
from shared.secrets import SecretProvider
from shared.snapshot import parse_snapshot
from shared.store import DecisionRecord
from shared.store._sqlite import SqliteStore
from tests.fakes.azure_services import REPEAT_WINDOW_S, AcsEmailService
from tests.helpers import Clock, corpus_doc

SENDER = "DoNotReply@triage-test.example.com"
KEY = _random.token_bytes(32)          # made up for this run
MESSAGE = {"senderAddress": SENDER, "recipients": {"to": [{"address": "owner@example.com"}]},
           "content": {"subject": "s", "plainText": "t"}}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def acs(clock):
    return AcsEmailService(clock=clock, access_key=KEY)


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "triage.db")
    yield s
    s.close()


def _client(acs, key: bytes = KEY):
    from azure.communication.email import EmailClient

    return EmailClient.from_connection_string(acs.connection_string(key), transport=acs.transport,
                                              retry_total=0, polling_interval=0)


def _send(acs, *, rid: str | None, first_sent: str | None, message=None, key: bytes = KEY) -> int:
    """The status ACS answered the send with (0: the connection was dropped)."""
    headers = {}
    if rid is not None:
        headers["Repeatability-Request-Id"] = rid
    if first_sent is not None:
        headers["Repeatability-First-Sent"] = first_sent
    try:
        _client(acs, key).begin_send(message or MESSAGE, headers=headers).result(timeout=5)
    except HttpResponseError as exc:
        return exc.status_code
    except ServiceResponseError:
        return 0
    return 202


# --- the stand-in: ACS's rules --------------------------------------------------------------------

def test_malformed_or_half_repeatability_headers_are_refused(acs, clock):
    now = formatdate(clock.t, usegmt=True)
    assert _send(acs, rid="not-a-guid", first_sent=now) == 400
    assert _send(acs, rid=str(uuid.uuid4()), first_sent="yesterday") == 400
    assert _send(acs, rid=str(uuid.uuid4()), first_sent=None) == 400
    assert _send(acs, rid=None, first_sent=now) == 400
    assert acs.accepted == []
    assert _send(acs, rid=None, first_sent=None) == 202          # not a repeatable request: sent as such


def test_first_sent_past_the_window_is_412_and_not_sent(acs, clock):
    rid = str(uuid.uuid4())
    assert _send(acs, rid=rid, first_sent=formatdate(clock.t - REPEAT_WINDOW_S - 1, usegmt=True)) == 412
    assert _send(acs, rid=rid, first_sent=formatdate(clock.t - REPEAT_WINDOW_S + 5, usegmt=True)) == 202
    assert len(acs.accepted) == 1


def test_a_matching_repeat_inside_the_window_is_answered_as_the_first_and_sent_once(acs, clock):
    rid, first = str(uuid.uuid4()), formatdate(clock.t, usegmt=True)
    assert _send(acs, rid=rid, first_sent=first) == 202
    acs.advance(REPEAT_WINDOW_S - 10)
    assert _send(acs, rid=rid, first_sent=first) == 202
    assert len(acs.accepted) == 1 and len(acs.emails_sent) == 1
    repeat = [r for r in acs.transport.requests if r.method == "POST"]
    assert len(repeat) == 2
    acs.advance(20)                                             # the window has passed
    assert _send(acs, rid=rid, first_sent=first) == 412
    assert len(acs.accepted) == 1


def test_a_repeat_that_does_not_match_the_first_is_400(acs, clock):
    rid, first = str(uuid.uuid4()), formatdate(clock.t, usegmt=True)
    assert _send(acs, rid=rid, first_sent=first) == 202
    other = copy.deepcopy(MESSAGE)
    other["content"]["subject"] = "another"
    assert _send(acs, rid=rid, first_sent=first, message=other) == 400
    assert len(acs.accepted) == 1


def test_a_repeat_while_the_first_is_in_progress_is_409(acs, clock):
    rid, first = str(uuid.uuid4()), formatdate(clock.t, usegmt=True)
    acs.hold = "after"
    answers: list[int] = []
    first_send = threading.Thread(target=lambda: answers.append(_send(acs, rid=rid, first_sent=first)))
    first_send.start()
    try:
        assert acs.holding.wait(10)
        assert _send(acs, rid=rid, first_sent=first) == 409
    finally:
        acs.release.set()
        first_send.join(10)
    assert answers == [0]                                       # the held first request got no answer
    assert _send(acs, rid=rid, first_sent=first) == 202         # now it has the first one's answer
    assert len(acs.accepted) == 1


def test_a_wrong_access_key_is_401(acs, clock):
    assert _send(acs, rid=None, first_sent=None, key=_random.token_bytes(32)) == 401
    assert acs.accepted == []


# --- the notifier under those rules --------------------------------------------------------------

def _notifier(acs, store, clock, **kwargs) -> tuple[EmailNotifier, Settings]:
    settings = Settings.from_env({"ACS_CONNECTION_STRING": acs.connection_string(KEY), "EMAIL_SENDER": SENDER,
                                  "EMAIL_DEFAULT_TO": "data-platform@example.com", "TRIAGE_MODE": "act"})
    secrets = SecretProvider.from_settings(settings)
    kwargs = {"polling_interval_s": 0, "retry_backoff_factor": 0, "send_timeout_s": 2, **kwargs}
    return EmailNotifier.from_settings(settings, store=store, secrets=secrets, transport=acs.transport, clock=clock,
                                       **kwargs), settings


def _case(settings):
    snap = parse_snapshot(corpus_doc("dev-015"))
    decision = Decision(category=Category.PERMISSION, action=Action.SEND_EMAIL, confidence=0.97, decided_by="rules",
                        reason="PERMISSION -> SEND_EMAIL", fingerprint="fp-permission-1")
    record = DecisionRecord(decision_key=snap.decision_key, job_id=str(snap.job_id), run_id=snap.run_id,
                            category="PERMISSION", action="SEND_EMAIL", fingerprint="fp-permission-1",
                            mode=settings.mode, decision=decision.to_dict())
    return snap, decision, record


def _leave_sending(store, key: str, clock) -> None:
    """What a worker killed mid-send leaves: the claim "sending", as it was before the answer."""
    cur = store.state_get("email", key)
    store.state_put("email", key, {**cur.value, "status": "sending", "at": int(clock.t * 1000)}, etag=cur.etag)


def test_a_send_another_attempt_still_holds_is_not_taken_for_delivered(acs, store, clock):
    n, settings = _notifier(acs, store, clock)
    snap, decision, record = _case(settings)
    acs.hold = "after"
    first = threading.Thread(target=n.notify, args=(snap, decision, record))
    first.start()
    try:
        assert acs.holding.wait(10)
        clock.t += 30                                           # the claim is not stale yet (2*2+60 s)
        meanwhile = n.notify(snap, decision, record)
        assert meanwhile["status"] == "failed" and meanwhile["in_flight"] is True and meanwhile["retryable"]
        assert meanwhile["operation_id"] == repeatability_id(snap.decision_key, 1)
    finally:
        acs.release.set()
        first.join(15)
    assert len(acs.accepted) == 1


def test_a_crashed_send_repeated_past_the_window_is_looked_up_not_sent_again(acs, store, clock):
    """412: ACS no longer dedupes the repeat; the operation of the first send (its id is the
    repeatability id) says it was delivered, so nothing is sent again."""
    n, settings = _notifier(acs, store, clock)
    snap, decision, record = _case(settings)
    assert n.notify(snap, decision, record)["status"] == "sent"
    _leave_sending(store, snap.decision_key, clock)
    clock.t += REPEAT_WINDOW_S + 60                             # ACS no longer tracks the first send
    again = n.notify(snap, decision, record)
    assert again["status"] == "sent" and again["operation_id"] == repeatability_id(snap.decision_key, 1)
    assert (repeatability_id(snap.decision_key, 1), 412) in acs.answers
    lookups = [r for r in acs.transport.requests if r.method == "GET"
               and r.url.split("?")[0].endswith(f"/emails/operations/{again['operation_id']}")]
    assert len(lookups) >= 2                                    # the first send's polls, then the look-up
    assert len(acs.emails_sent) == 1


def test_a_crashed_send_acs_has_forgotten_is_one_duplicate_at_most(acs, store, clock):
    n, settings = _notifier(acs, store, clock)
    snap, decision, record = _case(settings)
    assert n.notify(snap, decision, record)["status"] == "sent"
    _leave_sending(store, snap.decision_key, clock)
    acs.operation_retention_s = REPEAT_WINDOW_S                 # and no longer knows its operation
    clock.t += REPEAT_WINDOW_S + 60
    refused = n.notify(snap, decision, record)
    assert refused["status"] == "failed" and refused["http_status"] == 412 and refused["retryable"]
    again = n.notify(snap, decision, record)                    # the next sweep: a new request
    assert again["status"] == "sent" and again["attempts"] == 2
    assert again["operation_id"] == repeatability_id(snap.decision_key, 2)
    assert len(acs.emails_sent) == 2
    assert n.notify(snap, decision, record)["duplicate"] is True
    assert len(acs.emails_sent) == 2


def test_a_412_whose_first_send_is_still_running_waits_for_it(acs, store, clock):
    n, settings = _notifier(acs, store, clock, send_timeout_s=0.3)
    snap, decision, record = _case(settings)
    acs.hang.set()                                              # ACS accepted it, still sending
    acs.transport.real_sleep = 0.01     # the first send's poller goes on polling in the background: not in a tight loop
    first = n.notify(snap, decision, record)
    assert first["status"] == "failed" and "did not confirm" in first["error"]
    clock.t += REPEAT_WINDOW_S + 60
    waiting = n.notify(snap, decision, record)
    assert waiting["status"] == "failed" and waiting["retryable"] and "is running" in waiting["error"], waiting
    assert waiting["operation_id"] == repeatability_id(snap.decision_key, 1)
    acs.hang.clear()
    done = n.notify(snap, decision, record)
    assert done["status"] == "sent" and done["operation_id"] == repeatability_id(snap.decision_key, 1)
    assert len(acs.emails_sent) == 1


def test_a_409_is_repeated_as_the_same_request_once_the_first_ends(acs, store, clock):
    n, settings = _notifier(acs, store, clock)
    snap, decision, record = _case(settings)
    acs.hold = "after"
    first = threading.Thread(target=n.notify, args=(snap, decision, record))
    first.start()
    try:
        assert acs.holding.wait(10)
        clock.t += 120                                          # the first claim looks abandoned
        conflict = n.notify(snap, decision, record)
        assert conflict["status"] == "failed" and conflict["http_status"] == 409
        assert conflict["operation_id"] == repeatability_id(snap.decision_key, 1)
    finally:
        acs.release.set()
        first.join(15)
    clock.t += 120
    again = n.notify(snap, decision, record)
    assert again["status"] == "sent" and again["operation_id"] == repeatability_id(snap.decision_key, 1)
    assert len(acs.emails_sent) == 1


def test_an_escalation_after_an_earlier_email_of_the_same_decision_is_sent(acs, store, clock):
    """A decision emailed once (the owner asked to approve a retry) is later escalated (the
    approved repair was refused, or not sent in time): the escalation is a second notice and
    must reach the escalation list. It used to be taken for a duplicate of the first email
    (one email per decision key), recorded 'escalated', and nobody was told."""
    from dataclasses import replace

    settings = Settings.from_env({"ACS_CONNECTION_STRING": acs.connection_string(KEY), "EMAIL_SENDER": SENDER,
                                  "EMAIL_DEFAULT_TO": "data-platform@example.com", "TRIAGE_MODE": "act",
                                  "EMAIL_ESCALATION_TO": "oncall@example.com"})
    n = EmailNotifier.from_settings(settings, store=store, secrets=SecretProvider.from_settings(settings),
                                    transport=acs.transport, clock=clock, polling_interval_s=0,
                                    retry_backoff_factor=0, send_timeout_s=2)
    snap, decision, record = _case(settings)
    assert n.notify(snap, decision, record)["status"] == "sent"           # the owner's email
    record.action = "RETRY"                                               # approved: a repair, then refused
    clock.t += 600
    esc = replace(decision, action=Action.ESCALATE, notes=["RETRY was refused by Databricks (403)"])
    out = n.notify(snap, esc, record)
    assert out["status"] == "sent" and not out.get("duplicate"), out
    assert len(acs.emails_sent) == 2
    assert n.notify(snap, esc, record)["duplicate"] is True                # still once per notice
    assert n.notify(snap, decision, record)["duplicate"] is True
    assert len(acs.emails_sent) == 2


def test_an_email_acs_keeps_refusing_with_5xx_is_escalated_after_the_attempts(acs, store, clock, fake_databricks,
                                                                                 client):
    """ACS answers 503 to every send: each resend repeats the same request (the same
    repeatability id, as it may have been accepted), but every resend still counts as an attempt,
    so after NOTIFY_ATTEMPTS the notification goes to the escalation route. The repeats used to
    keep the attempt number at 1, so it was resent for ever and never escalated."""
    import time

    from shared.triage import NOTIFY_ATTEMPTS, retry_notifications, triage_run
    from tests.helpers import corpus_doc

    clock.t = time.time()                                         # the decision is made now
    settings = Settings.from_env({"ACS_CONNECTION_STRING": acs.connection_string(KEY), "EMAIL_SENDER": SENDER,
                                  "EMAIL_DEFAULT_TO": "data-platform@example.com", "TRIAGE_MODE": "act",
                                  "EMAIL_ESCALATION_TO": "oncall@example.com"})
    n = EmailNotifier.from_settings(settings, store=store, secrets=SecretProvider.from_settings(settings),
                                    transport=acs.transport, clock=clock, polling_interval_s=0,
                                    retry_backoff_factor=0, send_timeout_s=2)
    doc = corpus_doc("dev-015")                                   # DATA: SEND_EMAIL to the owner
    doc.pop("history", None)
    run_id = fake_databricks.load(doc)
    acs.send_faults = [(503, {})] * 1000
    rec = triage_run(run_id, settings, client=client, store=store, notifier=n, act_now=True).record
    assert (rec.action, rec.status) == ("SEND_EMAIL", "failed")
    now = int(clock.t * 1000)
    for i in range(1, NOTIFY_ATTEMPTS):                           # the owner's email: sent 5 times in all
        clock.t += 600
        retry_notifications(settings, client=client, store=store, notifier=n, now=now + i * 600_000)
    rec = store.get(rec.decision_key)
    assert rec.notification["sends"] == NOTIFY_ATTEMPTS and rec.notification["attempts"] == 1, rec.notification
    acs.send_faults = []                                          # the next sweep escalates it
    clock.t += 600
    retry_notifications(settings, client=client, store=store, notifier=n, now=now + NOTIFY_ATTEMPTS * 600_000)
    rec = store.get(rec.decision_key)
    assert "failed 5 time(s)" in rec.action_result["notify_escalated"]
    assert rec.status == "escalated" and rec.notification["status"] == "sent", rec.notification
    assert [e.to for e in acs.emails_sent] == [["oncall@example.com"]]
