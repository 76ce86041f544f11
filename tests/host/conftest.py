"""Fixtures for the worker tests: the compiled protocol, one started host per session, and the
app settings a test runs under (Azurite, the fake workspace, a function key, webhook credentials).

The worker library needs Python 3.13+; under an older Python every test module here skips itself
(``make test`` runs this folder in ``.venv-worker``)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.plugins.app import WEBHOOK_PASSWORD, WEBHOOK_USER, basic  # noqa: F401 - the worker tests import them from here

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_KEY = "fk-" + secrets.token_urlsafe(24)
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


@pytest.fixture
def app_env(app_env, monkeypatch):
    """The app settings of tests/plugins/app.py, plus what the worker tests need besides: the
    timer's schedule, a signing key and a public address for decision links."""
    extra = {
        "TRIAGE_SWEEP_SCHEDULE": "0 */5 * * * *",
        "TRIAGE_FEEDBACK_SIGNING_KEY": SIGNING_KEY,
        "TRIAGE_PUBLIC_BASE_URL": "http://localhost:7071",
    }
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    return {**app_env, **extra}
