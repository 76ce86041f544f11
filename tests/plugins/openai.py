"""Fixtures for the LLM tests: a fake OpenAI-compatible server on loopback (real HTTP).

``fake_openai`` starts ``tests.fakes.openai_server.FakeOpenAI`` for one test and stops it after;
script its answers with ``fake_openai.answer_*`` and read ``fake_openai.requests``.
``hostile_model`` is one whose every verdict argues for a retry (``HOSTILE_VERDICT``).
``fake_token_credential`` is a TokenCredential that hands out the token the fake accepts.
"""

from __future__ import annotations

import pytest

from tests.fakes.openai_server import FakeOpenAI, FakeTokenCredential


@pytest.fixture
def fake_openai():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_token_credential():
    return FakeTokenCredential(token="fake-entra-token")


@pytest.fixture
def hostile_model():
    from tests.llm.corpus_models import HOSTILE_VERDICT

    with FakeOpenAI() as fake:
        fake.default = dict(HOSTILE_VERDICT)
        yield fake
