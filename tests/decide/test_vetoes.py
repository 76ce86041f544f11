"""Fixed conditions veto a transient reading: every VETO row, under every kind of transient
symptom, decides the task's category; without one, the transient symptom stands."""

import pytest

from shared.config import Settings
from shared.decide.classify import classify, classify_text
from shared.decide.policy import decide, enforce
from shared.decide.rules import RULES
from shared.models import Action, Category, EvidenceKind
from tests.helpers import make_snapshot

VETOES = [r for r in RULES if r.kind is EvidenceKind.VETO]
SYMPTOMS = {
    "connection refused": "java.net.ConnectException: Connection refused (Connection refused)",
    "connection reset": "java.net.SocketException: Connection reset",
    "time-out": "java.util.concurrent.TimeoutException: Futures timed out after [300 seconds]",
    "resource": "org.apache.spark.SparkException: Job aborted due to stage failure: ExecutorLostFailure "
                "(executor 3 exited caused by one of the running tasks)",
}


def test_vetoes_exist_for_every_fixed_condition_family():
    assert {r.category for r in VETOES} == {Category.PERMISSION, Category.CONFIGURATION, Category.DEPENDENCY}
    assert len(VETOES) >= 6


@pytest.mark.parametrize("symptom", SYMPTOMS, ids=str)
@pytest.mark.parametrize("rule", VETOES, ids=lambda r: r.id)
def test_veto_outranks_the_transient_symptom(rule, symptom):
    text = f"{SYMPTOMS[symptom]}\nCaused by: {rule.example}"
    verdict = classify_text(text)
    assert verdict.category is rule.category, [e.cite() for e in verdict.evidence]
    assert verdict.top.rule_id == rule.id


@pytest.mark.parametrize("symptom", SYMPTOMS, ids=str)
def test_transient_symptom_without_a_fixed_condition_stays_transient(symptom):
    assert classify_text(SYMPTOMS[symptom]).category in {Category.NETWORK, Category.TIMEOUT, Category.RESOURCE}


@pytest.mark.parametrize("text", [
    # A placeholder, an FQDN, an address or localhost is not a bare machine name.
    "The TCP/IP connection to the host <sql-host>, port 1433 has failed. Error: Connection timed out.",
    "java.net.UnknownHostException: myaccount.dfs.core.windows.net",
    "java.net.UnknownHostException: localhost: Name or service not known",
    # A class that failed to initialise earlier is a symptom, not a missing class.
    "java.lang.NoClassDefFoundError: Could not initialize class org.xerial.snappy.Snappy",
])
def test_vetoes_do_not_fire_on_look_alikes(text):
    assert not [e for e in classify_text(text).evidence if e.kind is EvidenceKind.VETO]


def test_vetoed_connection_error_is_sent_to_the_owner_not_retried():
    snap = make_snapshot("java.net.SocketException: Connection reset\nCaused by: javax.net.ssl.SSLHandshakeException: "
                         "PKIX path building failed: unable to find valid certification path to requested target")
    c = classify(snap)
    d = enforce(decide(snap, c, Settings()), snap, c, Settings())
    assert c.category is Category.CONFIGURATION and c.confidence >= 0.8
    assert d.action is Action.SEND_EMAIL and "fixed condition" in d.reason
