"""Every test starts from a clean environment: no cloud setting leaks in from the machine."""

import os

import pytest

_PREFIXES = ("TRIAGE_", "DATABRICKS_", "AZURE_", "OPENAI_", "ARM_", "ACS_", "EMAIL_", "KEY_VAULT", "PAGERDUTY_",
             "TEAMS_", "SLACK_")
_NAMES = ("AzureWebJobsStorage",)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in _NAMES:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield
