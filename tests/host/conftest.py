"""Fixtures for the worker tests: the compiled protocol, one started host per session, and the
app settings a test runs under (Azurite, the fake workspace, a function key, webhook credentials).

The worker library needs Python 3.13+; under an older Python every test module here skips itself
(``make test`` runs this folder in ``.venv-worker``)."""

from __future__ import annotations

import base64
import secrets
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_KEY = "fk-" + secrets.token_urlsafe(24)
WEBHOOK_USER = "databricks"
WEBHOOK_PASSWORD = "pw-" + secrets.token_urlsafe(16)
SIGNING_KEY = "sk-" + secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def protos(tmp_path_factory):
    from tests.host.protos import load_protos

    return load_protos(tmp_path_factory.mktemp("protos"))


@pytest.fixture(scope="session")
def functions_host(protos):
    """The host stand-in with the worker started on this repository's function_app.py."""
    from tests.host.functions_host import FunctionsHost

    host = FunctionsHost(ROOT, protos, function_keys={FUNCTION_KEY}).start()
    yield host
    host.close()


@pytest.fixture
def host(functions_host):
    """The session's host, with the log lines of this test only."""
    functions_host.logs.clear()
    yield functions_host


def basic(user: str = WEBHOOK_USER, password: str = WEBHOOK_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def channels():
    from tests.fakes.channel_services import ChannelServices

    s = ChannelServices().start()
    yield s
    s.stop()


@pytest.fixture
def app_env(azurite, fake_databricks, channels, monkeypatch):
    """The app settings as the host gives them to the worker: environment variables (act mode
    needs a channel that reaches a person: a signed webhook on loopback)."""
    env = {
        "TRIAGE_WEBHOOK_URL": channels.hook_url,
        "TRIAGE_WEBHOOK_SECRET": channels.webhook_secret,
        "TRIAGE_NOTIFY_VIA": "webhook",
        "TRIAGE_ESCALATE_VIA": "webhook",
        "AzureWebJobsStorage": azurite.connection_string,
        "TRIAGE_QUEUE_NAME": "q" + uuid.uuid4().hex[:12],
        "TRIAGE_SWEEP_SCHEDULE": "0 */5 * * * *",
        "DATABRICKS_HOST": fake_databricks.url,
        "DATABRICKS_TOKEN": fake_databricks.token,
        "TRIAGE_MODE": "act",
        "TRIAGE_WEBHOOK_USERNAME": WEBHOOK_USER,
        "TRIAGE_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD,
        "TRIAGE_FEEDBACK_SIGNING_KEY": SIGNING_KEY,
        "TRIAGE_PUBLIC_BASE_URL": "http://localhost:7071",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
