"""Fixtures for the databricks area: a local fake workspace on loopback.

``fake_databricks`` starts a ``tests.fakes.databricks.FakeDatabricks`` (random port, random
token) and stops it after the test. It exposes ``.url``, ``.token``, ``.load(snapshot)``,
``.requests``, ``.inject(path, *faults)``; ``fake_databricks_env`` is an environment mapping that
points the app at it (DATABRICKS_HOST/DATABRICKS_TOKEN).
"""

from __future__ import annotations

import pytest

from tests.fakes.databricks import FakeDatabricks


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
