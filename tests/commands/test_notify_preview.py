"""``python -m shared notify-preview``: the exact payload each channel would post."""

import copy
import io
import json
import secrets as _random

import pytest

import shared.commands.notify_preview as notify_preview
from shared.cli import main
from tests.fakes.channel_services import ChannelServices
from tests.helpers import CORPUS, corpus_doc


def _run(argv, env=None):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_notify_preview_exports_exist():
    assert all(hasattr(notify_preview, name) for name in notify_preview.__all__)


def test_teams_preview_is_the_card_envelope():
    code, out, err = _run(["notify-preview", str(CORPUS / "dev-001.json"), "--via", "teams"])
    assert code == 0, err
    body = json.loads(out)
    assert body["type"] == "message"
    card = body["attachments"][0]["content"]
    assert body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["type"] == "AdaptiveCard" and "PERMISSION" in card["body"][0]["text"]
    assert {a["title"] for a in card["actions"]} >= {"Open the run in Databricks", "Diagnosis correct"}
    assert "placeholders" in err and "TEAMS_WEBHOOK_URL is not set" in err


def test_pagerduty_preview_never_shows_the_routing_key():
    key = _random.token_hex(16)
    code, out, err = _run(["notify-preview", str(CORPUS / "dev-001.json"), "--via", "pagerduty"],
                          env={"PAGERDUTY_ROUTING_KEY": key})
    assert code == 0, err
    event = json.loads(out)
    assert event["routing_key"] == "<PAGERDUTY_ROUTING_KEY>" and key not in out + err
    assert event["event_action"] == "trigger" and event["payload"]["severity"] == "warning"
    assert "not configured" not in err


def test_webhook_preview_names_the_signature_headers():
    code, out, err = _run(["notify-preview", str(CORPUS / "dev-001.json"), "--via", "webhook"])
    assert code == 0
    assert json.loads(out)["type"] == "triage.notification"
    assert "X-Triage-Signature" in err and "X-Triage-Timestamp" in err


def test_unknown_channel_is_a_usage_error():
    code, _, _ = _run(["notify-preview", str(CORPUS / "dev-001.json"), "--via", "fax"])
    assert code == 2


def test_preview_is_what_the_channel_sends(tmp_path):
    """The preview and the real post of the same decision differ only in time-bound values."""
    from shared.config import Settings
    from shared.notify.slack import SlackChannel
    from shared.notify.client import ChannelClient
    from shared.secrets import SecretProvider
    from shared.snapshot import load_snapshot
    from shared.commands.email_preview import preview_record
    from shared.triage import decide

    services = ChannelServices().start()
    try:
        env = {**services.env(), "TRIAGE_PUBLIC_BASE_URL": "https://t.example.com",
               "TRIAGE_FEEDBACK_SIGNING_KEY": _random.token_urlsafe(32)}
        path = str(CORPUS / "dev-001.json")
        code, out, err = _run(["notify-preview", path, "--via", "slack"], env=env)
        assert code == 0 and "placeholders" not in err
        settings = Settings.from_env(env)
        snap = load_snapshot(path)
        decision = decide(snap, settings, use_llm=False)
        channel = SlackChannel(settings, secrets=SecretProvider.from_settings(settings), store=None,
                               client=ChannelClient(attempts=1))
        assert channel.notify(snap, decision, preview_record(snap, decision, settings))["status"] == "sent"
        sent = services.to(services.slack_path)[0].body
        previewed = json.loads(out)

        def strip(body):
            for block in body["blocks"]:
                for element in block.get("elements", []):
                    element.pop("url", None)
            return body

        assert strip(previewed) == strip(sent)
    finally:
        services.stop()


def test_notify_preview_takes_output_json_like_every_command_that_prints_data():
    code, out, _ = _run(["notify-preview", str(CORPUS / "dev-001.json"), "--via", "slack", "-o", "json"])
    assert code == 0 and isinstance(json.loads(out), dict)
    code, _, err = _run(["notify-preview", str(CORPUS / "dev-001.json"), "--via", "slack", "-o", "table"])
    assert code == 2 and "-o/--output" in err
