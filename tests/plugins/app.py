"""Fixtures for tests that run the Functions app itself (tests/test_function_app.py, tests/host):
the channel stand-ins, and the app settings the host would give the worker.

``app_env`` points the app at Azurite, the fake workspace and a signed-webhook channel on
loopback (act mode needs a channel that reaches a person), with Basic credentials for the
Databricks webhook (``WEBHOOK_USER``/``WEBHOOK_PASSWORD``); it sets them as environment variables
and returns them. A folder's conftest may extend it by requesting it under the same name.
"""

from __future__ import annotations

import base64
import secrets
import uuid

import pytest

from tests.fakes.channel_services import ChannelServices

WEBHOOK_USER = "databricks"
WEBHOOK_PASSWORD = "pw-" + secrets.token_urlsafe(16)


def basic(user: str = WEBHOOK_USER, password: str = WEBHOOK_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def channels():
    s = ChannelServices().start()
    yield s
    s.stop()


@pytest.fixture
def app_env(azurite, fake_databricks, channels, monkeypatch):
    env = {
        "TRIAGE_WEBHOOK_URL": channels.hook_url,
        "TRIAGE_WEBHOOK_SECRET": channels.webhook_secret,
        "TRIAGE_NOTIFY_VIA": "webhook",
        "TRIAGE_ESCALATE_VIA": "webhook",
        "AzureWebJobsStorage": azurite.connection_string,
        "TRIAGE_QUEUE_NAME": "q" + uuid.uuid4().hex[:12],
        "DATABRICKS_HOST": fake_databricks.url,
        "DATABRICKS_TOKEN": fake_databricks.token,
        "TRIAGE_MODE": "act",
        "TRIAGE_WEBHOOK_USERNAME": WEBHOOK_USER,
        "TRIAGE_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
