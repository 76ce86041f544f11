"""The model's second opinion on retries: it may veto a retry that rests on less than firm
evidence, never add one; cached by fingerprint, inside the hourly budget. Fake OpenAI server
over real HTTP, SQLite store."""

import pytest

from shared.config import Settings
from shared.decide.classify import classify
from shared.llm.veto import firm_transient
from shared.models import Action, Category
from shared.store import open_store
from shared.triage import decide
from tests.helpers import make_snapshot

PHRASE_TRANSIENT = "py4j.protocol.Py4JJavaError: An error occurred\nCaused by: java.io.IOException: Connection reset by peer"
CODE_TRANSIENT = "Cluster terminated unexpectedly"
NOT_TRANSIENT = {"category": "CONFIGURATION", "is_transient": False, "recommended_action": "SEND_EMAIL",
                 "confidence": 0.85, "root_cause": "The JDBC URL points at a server the cluster's network cannot reach."}


@pytest.fixture
def env(fake_openai, tmp_path):
    settings = Settings.from_env({"OPENAI_BASE_URL": f"{fake_openai.url}/v1", "OPENAI_API_KEY": "fake-api-key",
                                  "OPENAI_MODEL": "gpt-test", "TRIAGE_STORAGE": f"sqlite:///{tmp_path}/v.db"})
    with open_store(settings) as store:
        yield settings, store


def test_veto_model_vetoes_a_retry_resting_on_a_phrase(fake_openai, env):
    settings, store = env
    fake_openai.answer_verdict(**NOT_TRANSIENT)
    snap = make_snapshot(PHRASE_TRANSIENT)
    assert not firm_transient(classify(snap))
    d = decide(snap, settings, store=store)
    assert d.action is Action.SEND_EMAIL and d.category is Category.CONFIGURATION
    assert "vetoed the automatic retry" in d.reason and "llm-veto" in d.decided_by
    assert d.notes[0].startswith("retry vetoed by the model: The JDBC URL")
    assert d.llm["veto"] is True and fake_openai.calls == 1
    # The owner may still approve the vetoed retry (the approval button of docs/trust.md).
    assert (d.proposed_action, d.approval) == ("RETRY", "pending")
    # The same failure again: the cached verdict vetoes it without a call.
    again = decide(make_snapshot(PHRASE_TRANSIENT), settings, store=store)
    assert again.action is Action.SEND_EMAIL and fake_openai.calls == 1


def test_veto_model_agreeing_leaves_the_retry(fake_openai, env):
    settings, store = env
    fake_openai.answer_verdict(category="NETWORK", is_transient=True, recommended_action="RETRY", confidence=0.9)
    d = decide(make_snapshot(PHRASE_TRANSIENT), settings, store=store)
    assert d.action is Action.RETRY and fake_openai.calls == 1
    assert "the model does not object to the retry" in d.notes[-1]


def test_veto_firm_structured_code_is_not_asked(fake_openai, env):
    settings, store = env
    snap = make_snapshot(CODE_TRANSIENT, code="CLOUD_FAILURE", type_="CLOUD_FAILURE")
    assert firm_transient(classify(snap))
    fake_openai.answer_verdict(**NOT_TRANSIENT)
    d = decide(snap, settings, store=store)
    assert d.action is Action.RETRY and fake_openai.calls == 0


def test_veto_never_adds_a_retry(fake_openai, env):
    settings, store = env
    fake_openai.default = {**fake_openai.default, "category": "NETWORK", "is_transient": True,
                           "recommended_action": "RETRY", "confidence": 0.99}
    d = decide(make_snapshot("[TABLE_OR_VIEW_NOT_FOUND] The table `a` cannot be found. SQLSTATE: 42P01"),
               settings, store=store)
    assert d.action is Action.SEND_EMAIL and fake_openai.calls == 0


@pytest.mark.parametrize("answer", ["unsure", "error", "budget"])
def test_veto_without_a_usable_answer_the_retry_stands(fake_openai, env, answer, tmp_path):
    settings, store = env
    if answer == "unsure":
        fake_openai.answer_verdict(**{**NOT_TRANSIENT, "confidence": 0.3})
    elif answer == "error":
        fake_openai.answer_server_error(500)
    else:
        settings = Settings.from_env({"OPENAI_BASE_URL": f"{fake_openai.url}/v1", "OPENAI_API_KEY": "fake-api-key",
                                      "OPENAI_MODEL": "gpt-test", "TRIAGE_STORAGE": f"sqlite:///{tmp_path}/v.db",
                                      "TRIAGE_LLM_MAX_CALLS_PER_HOUR": "0"})
    d = decide(make_snapshot(PHRASE_TRANSIENT), settings, store=store)
    assert d.action is Action.RETRY


def test_veto_is_skipped_without_a_model(env):
    _, store = env
    d = decide(make_snapshot(PHRASE_TRANSIENT), Settings(), store=store)
    assert d.action is Action.RETRY and not d.llm


def test_veto_named_transient_cause_is_firm_enough(fake_openai, env):
    settings, store = env
    fake_openai.answer_verdict(**NOT_TRANSIENT)
    snap = make_snapshot("AmazonS3Exception: Slow Down (Service: Amazon S3; Status Code: 503; Error Code: 503 Slow Down)")
    assert firm_transient(classify(snap))
    assert decide(snap, settings, store=store).action is Action.RETRY and fake_openai.calls == 0
