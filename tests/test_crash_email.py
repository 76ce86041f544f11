"""The crash matrix's email part: a worker killed during the ACS email send.

A real worker process (``python -m shared triage --run-id N``, act mode) sends its email through
the real ACS SDK, over HTTPS, to ``tests.fakes.acs_https.AcsEmailServer`` (the ACS email endpoint
with its repeatable-request rules: a 5-minute window, 409 while the first request is in
progress, 412 past the window). The stand-in holds the send POST and sets ``holding``; the test
kills the worker with SIGKILL while it waits:

- ``before``: ACS has not accepted the message (nothing was sent);
- ``after``: ACS accepted it (it is sent) and the worker never learns.

Then the message is delivered again (the same command: "already decided") and the sweeps run
in this process (``act_due`` and ``retry_notifications``), with the clock moved on, for the
sweep's notifier and for ACS alike: first past ``TRIAGE_ACTING_TIMEOUT`` but not past the email
claim's staleness bound (twice the send time-out plus a minute: the record must not be taken for
delivered), then past that bound, either inside ACS's 5-minute window (the resend is the same
request: exactly one email, on SQLite and on Azurite) or past it (ACS answers 412; the notifier
looks up the first send's operation: exactly one email while ACS remembers it, at most one
duplicate when it does not). Every record must end terminal, its notification sent.

The fault cases run a worker to the end through 429 (with Retry-After), 503 and a dropped
connection: exactly one email, the record ``acted``.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import pytest

from shared.config import Settings
from shared.store import now_ms
from tests.fakes.acs_https import AcsEmailServer
from tests.fakes.azure_services import DROP, REPEAT_WINDOW_S
from tests.plugins.crash import KEEP_ENV
from tests.plugins.crash import start_worker as _worker
from tests.plugins.crash import stored_record as _record

CORPUS = Path(__file__).parent / "corpus"
CASES = {"SEND_EMAIL": "dev/dev-015", "ESCALATE": "validation/val-057"}   # DATA; UNKNOWN
SENDER = "DoNotReply@triage-test.example.com"
SEND_TIMEOUT_S = 5.0                    # the sweep's notifier: its claim is stale after 2*5+60 s
STALE_S = 2 * SEND_TIMEOUT_S + 60


@pytest.fixture
def acs(tmp_path):
    server = AcsEmailServer(tmp_path / "tls").start()
    yield server
    server.stop()


def _env(fake: Any, storage: str, acs: AcsEmailServer) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
    return {**keep, "DATABRICKS_HOST": fake.url, "DATABRICKS_TOKEN": fake.token, "TRIAGE_STORAGE": storage,
            "TRIAGE_MODE": "act", "TRIAGE_ACTING_TIMEOUT": "1m", "TRIAGE_MAX_WORKERS": "16",
            "TRIAGE_NOTIFY_VIA": "email", "TRIAGE_ESCALATE_VIA": "email", "EMAIL_SENDER": SENDER,
            "EMAIL_DEFAULT_TO": "data-platform@example.com", "EMAIL_ESCALATION_TO": "oncall@example.com",
            **acs.env()}


def _load(fake: Any, action: str) -> int:
    doc = json.loads((CORPUS / f"{CASES[action]}.json").read_text())
    doc.pop("history", None)
    # run and job unique in a shared Azurite (the email storm window is per job and fingerprint)
    doc["run"]["run_id"] = 7_000_000_000 + uuid.uuid4().int % 1_000_000_000
    doc["run"]["job_id"] = doc["job"]["job_id"] = 8_000_000_000 + uuid.uuid4().int % 1_000_000_000
    return fake.load(doc)


class _Clock:
    """Real time plus an offset: the sweep's notifier runs "later" without sleeping."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


def _sweep(env: Mapping[str, str], acs: AcsEmailServer, *after_s: float) -> None:
    """The sweeps that follow, in this process, each ``after_s`` seconds after now: for the
    sweep (``act_due`` / ``retry_notifications``), its email notifier and ACS alike."""
    from azure.core.pipeline.transport import RequestsTransport

    from shared.app.runtime import build_notifier, build_secrets, build_store
    from shared.triage import act_due, retry_notifications

    settings = Settings.from_env(dict(env))
    clock = _Clock()
    secrets = build_secrets(settings)
    store = build_store(settings)
    # the production notifier; its requests trust the stand-in's CA, as the worker's do
    notifier = build_notifier(settings, secrets, store=store, clock=clock, send_timeout_s=SEND_TIMEOUT_S,
                              polling_interval_s=0.05, transport=RequestsTransport(connection_verify=str(acs.ca_bundle)))
    start = acs.service.clock_offset_s
    try:
        with _client(settings) as client:
            for s in after_s:
                clock.offset_s = s
                acs.service.clock_offset_s = start + s
                act_due(settings, client=client, store=store, notifier=notifier, now=now_ms() + int(s * 1000))
                retry_notifications(settings, client=client, store=store, notifier=notifier,
                                    now=now_ms() + int(s * 1000))
    finally:
        notifier.close()
        store.close()
        secrets.close()


def _client(settings: Settings) -> Any:
    from shared.databricks import DatabricksClient, PatCredential

    return DatabricksClient(settings.databricks_host, PatCredential(settings.extra["DATABRICKS_TOKEN"]))


def _kill_while_held(acs: AcsEmailServer, env: Mapping[str, str], run_id: int, point: str) -> None:
    acs.service.hold = point
    worker = _worker(env, run_id)
    try:
        deadline = time.monotonic() + 60
        while not acs.service.holding.wait(0.05):
            assert worker.poll() is None and time.monotonic() < deadline, worker.communicate(timeout=5)
        worker.send_signal(signal.SIGKILL)                     # the worker dies mid-send
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        acs.service.release.set()
        if worker.poll() is None:
            worker.kill()


def _killed_then_swept(fake: Any, storage: str, acs: AcsEmailServer, action: str, point: str,
                       window: str) -> None:
    env = _env(fake, storage, acs)
    run_id = _load(fake, action)
    _kill_while_held(acs, env, run_id, point)
    rec = _record(env, run_id)
    assert rec.action == action and rec.status == "acting", rec.to_dict()     # what the dead worker left
    assert len(acs.service.emails_sent) == (1 if point == "after" else 0)

    again = _worker(env, run_id)                                # the queue delivers the message again
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "already decided" in out, out                        # and sends nothing
    assert len(acs.service.emails_sent) == (1 if point == "after" else 0)

    if window == "forgotten":                                   # ACS no longer knows the first operation
        acs.service.operation_retention_s = REPEAT_WINDOW_S
    later = 2 * 60 if window == "inside" else REPEAT_WINDOW_S + 60
    assert later > STALE_S
    # the first sweep takes the record over (past TRIAGE_ACTING_TIMEOUT) while the dead worker's
    # email claim is not yet stale: it must not take that claim for a delivered email
    _sweep(env, acs, 65, later, later + 5 * 60)

    rec = _record(env, run_id)
    assert rec.status == "acted", rec.to_dict()
    assert rec.notification["status"] == "sent", rec.notification
    sent = acs.service.emails_sent
    if window == "forgotten" and point == "after":
        assert len(sent) == 2, [e.operation_id for e in sent]     # ACS can no longer dedupe: one duplicate
    else:
        assert len(sent) == 1, [e.operation_id for e in sent]     # deduped, looked up, or never had it
    if window != "inside":
        assert any(status == 412 for _, status in acs.service.answers), acs.service.answers
    assert all(e.to == ["oncall@example.com"] if action == "ESCALATE" else e.to for e in sent)
    assert fake.writes == []


@pytest.mark.parametrize("point", ["before", "after"])
@pytest.mark.parametrize("action", ["SEND_EMAIL", "ESCALATE"])
def test_worker_killed_mid_send_resent_inside_the_window_mails_once(fake_databricks, storage, acs, action, point):
    """The resend comes inside ACS's 5-minute window: it is the same request, ACS dedupes it."""
    _killed_then_swept(fake_databricks, storage, acs, action, point, "inside")


@pytest.mark.parametrize("window", ["past", "forgotten"])
@pytest.mark.parametrize("point", ["before", "after"])
@pytest.mark.parametrize("action", ["SEND_EMAIL", "ESCALATE"])
def test_worker_killed_mid_send_resent_past_the_window(fake_databricks, tmp_path, acs, action, point, window):
    """ACS answers the late resend 412; the notifier looks up the first send's operation: known
    and delivered -> nothing more is sent; unknown (``forgotten``) -> a new request, so at most
    one duplicate, and only when ACS had accepted the first. The store plays no part in what ACS
    remembers, so this runs on SQLite only."""
    _killed_then_swept(fake_databricks, f"sqlite:///{tmp_path / 'triage.db'}", acs, action, point, window)


FAULTS = {
    "429": [(429, {"Retry-After": "1"})],
    "503": [(503, {})],
    "dropped": [(DROP, {})],
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_send_fault_through_https_ends_with_one_email(fake_databricks, tmp_path, acs, fault):
    env = _env(fake_databricks, f"sqlite:///{tmp_path / 'triage.db'}", acs)
    run_id = _load(fake_databricks, "SEND_EMAIL")
    acs.service.send_faults = list(FAULTS[fault])
    acs.service.apply_faults_after_accept = fault == "dropped"      # the answer is lost after ACS took it
    worker = _worker(env, run_id)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    rec = _record(env, run_id)
    assert rec.status == "acted" and rec.notification["status"] == "sent", rec.to_dict()
    assert len(acs.service.emails_sent) == 1
    posts = [r for r in acs.requests if r.method == "POST"]
    assert len(posts) == 2
    assert len({p.headers["Repeatability-Request-Id"] for p in posts}) == 1


def test_the_stand_in_is_real_tls_a_client_without_its_ca_cannot_send(acs, tmp_path):
    """The worker's trust in the stand-in comes only from REQUESTS_CA_BUNDLE: a client that does
    not trust the minted CA fails the TLS handshake and sends nothing."""
    from azure.communication.email import EmailClient
    from azure.core.exceptions import ServiceRequestError
    from azure.core.pipeline.transport import RequestsTransport

    message = {"senderAddress": SENDER, "recipients": {"to": [{"address": "owner@example.com"}]},
               "content": {"subject": "s", "plainText": "t"}}
    untrusting = EmailClient.from_connection_string(acs.connection_string, retry_total=0,
                                                    transport=RequestsTransport(connection_verify=True))
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        untrusting.begin_send(message)
    trusting = EmailClient.from_connection_string(acs.connection_string, retry_total=0, polling_interval=0,
                                                  transport=RequestsTransport(connection_verify=str(acs.ca_bundle)))
    assert trusting.begin_send(message).result(timeout=5)["status"] == "Succeeded"
    assert len(acs.service.emails_sent) == 1
