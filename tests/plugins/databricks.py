"""Fixtures for the databricks area: a local fake workspace on loopback.

``fake_databricks`` starts a ``demo.workspace.FakeDatabricks`` (random port, random
token) and stops it after the test. It exposes ``.url``, ``.token``, ``.load(snapshot)``,
``.requests``, ``.inject(path, *faults)``, ``.clear_faults(path)``; ``fake_databricks_env`` is an environment mapping that
points the app at it (DATABRICKS_HOST/DATABRICKS_TOKEN).
"""

from __future__ import annotations

import pytest

from demo.workspace import FakeDatabricks


@pytest.fixture
def fake_databricks():
    fake = FakeDatabricks()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_databricks_env(fake_databricks):
    return {"DATABRICKS_HOST": fake_databricks.url, "DATABRICKS_TOKEN": fake_databricks.token}


@pytest.fixture
def client_retry() -> dict:
    """How the ``client`` fixture retries; a test module overrides this fixture to change it."""
    return {}


@pytest.fixture
def client(fake_databricks, client_retry):
    """A production ``DatabricksClient`` on the fake workspace that retries without sleeping."""
    from shared.databricks import DatabricksClient, PatCredential, RetryPolicy

    policy = RetryPolicy(**{"deadline_s": 5, "sleep": lambda s: None, "jitter": False, **client_retry})
    with DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token), retry=policy) as c:
        yield c


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite decision store for one test."""
    from shared.config import Settings
    from shared.store import open_store

    with open_store(Settings.from_env({"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"})) as s:
        yield s
