"""The safety invariants of the design doc, pinned."""

import pytest

from shared.decide.classify import classify
from shared.config import Settings
from shared.models import Action, Category, Decision
from shared.decide.policy import HARD_MAX_RETRIES, decide, enforce, max_retries_for
from tests.helpers import make_snapshot

S = Settings()
NETWORK_ERR = "java.net.SocketException: Connection reset"


def _decide(snap, settings=S, **kw):
    c = classify(snap)
    return enforce(decide(snap, c, settings), snap, c, settings, **kw)


@pytest.mark.parametrize("error, category", [
    ("AnalysisException: [INSUFFICIENT_PERMISSIONS] Insufficient privileges. SQLSTATE: 42501", Category.PERMISSION),
    ("[PARSE_SYNTAX_ERROR] Syntax error at or near 'FROM'. SQLSTATE: 42601", Category.CODE),
    ("[TABLE_OR_VIEW_NOT_FOUND] The table or view `a` cannot be found. SQLSTATE: 42P01", Category.DATA),
    ("Unexpected user error: INVALID_PARAMETER_VALUE: Invalid spark version 1.0", Category.CONFIGURATION),
])
def test_enforce_invariant1_confident_deterministic_never_retried(error, category):
    snap = make_snapshot(error)
    c = classify(snap)
    assert c.category is category and c.confidence >= 0.8
    # Whatever a candidate says (e.g. a model's verdict), the rules' verdict holds.
    for hostile in (Decision(Category.NETWORK, Action.RETRY, 0.99, "llm", "model says transient"),
                    Decision(Category.RESOURCE, Action.RETRY_WITH_NEW_PARAMS, 0.99, "llm", "more workers",
                             params={"num_workers": 10_000})):
        d = enforce(hostile, snap, c, S)
        assert d.action is Action.SEND_EMAIL and not d.params
        assert "never retried" in d.reason


@pytest.mark.parametrize("prior, expected", [(0, Action.RETRY), (2, Action.RETRY), (3, Action.ESCALATE), (7, Action.ESCALATE)])
def test_enforce_invariant2_retry_limit_default_three(prior, expected):
    d = _decide(make_snapshot(NETWORK_ERR, prior_retries=prior))
    assert d.action is expected
    if expected is Action.ESCALATE:
        assert f"retry limit reached: {prior} of 3" in d.reason


def test_enforce_invariant2_job_tag_overrides_limit():
    assert _decide(make_snapshot(NETWORK_ERR, prior_retries=3, tags={"triage.max_retries": "5"})).action is Action.RETRY
    assert _decide(make_snapshot(NETWORK_ERR, prior_retries=1, tags={"triage.max_retries": "1"})).action is Action.ESCALATE


def test_enforce_invariant2_hard_cap_ten():
    snap = make_snapshot(NETWORK_ERR, prior_retries=10, tags={"triage.max_retries": "50"})
    assert max_retries_for(snap, S)[0] == HARD_MAX_RETRIES
    assert _decide(snap).action is Action.ESCALATE


def test_enforce_invariant2_store_count_wins_over_snapshot_history():
    snap = make_snapshot(NETWORK_ERR, prior_retries=0)
    assert _decide(snap, prior_retries=3).action is Action.ESCALATE


def test_enforce_invariant5_ignore_only_for_canceled_or_tag():
    snap = make_snapshot("[TABLE_OR_VIEW_NOT_FOUND] x")
    c = classify(snap)
    d = enforce(Decision(Category.DATA, Action.IGNORE, 0.9, "llm", "meh"), snap, c, S)
    assert d.action is not Action.IGNORE
    tagged = make_snapshot("[TABLE_OR_VIEW_NOT_FOUND] x", tags={"triage.ignore": "true"})
    assert _decide(tagged).action is Action.IGNORE
    canceled = make_snapshot("", result_state="CANCELED", code="USER_CANCELED", type_="SUCCESS")
    assert _decide(canceled).action is Action.IGNORE


def test_enforce_hopeless_fingerprint_escalates():
    d = _decide(make_snapshot(NETWORK_ERR), failed_retries_of_fingerprint=S.hopeless_after)
    assert d.action is Action.ESCALATE and "fingerprint" in d.reason


def test_enforce_low_confidence_retry_escalates():
    snap = make_snapshot("odd")
    c = classify(snap)
    d = enforce(Decision(Category.NETWORK, Action.RETRY, 0.3, "llm", "guess"), snap, c, S)
    assert d.action is Action.ESCALATE


def test_decide_reason_cites_evidence_and_action():
    d = _decide(make_snapshot("", code="CLUSTER_ERROR", type_="CLOUD_FAILURE"))
    assert d.decided_by == "rules" and d.action is Action.RETRY
    assert "termination type CLOUD_FAILURE" in d.reason and "-> RETRY" in d.reason


def test_decide_resource_suggests_bounded_params():
    d = _decide(make_snapshot("java.lang.OutOfMemoryError: Java heap space"))
    assert d.action is Action.RETRY_WITH_NEW_PARAMS and d.params["num_workers_factor"] == 2


def test_decide_unknown_escalates():
    d = _decide(make_snapshot("the flux capacitor is sad"))
    assert d.category is Category.UNKNOWN and d.action is Action.ESCALATE


# --- a wrong retry costs one run at most -------------------------------------------------------
from shared.decide.policy import RetriedAttempt, same_failure  # noqa: E402
from shared.decide.fingerprint import fingerprint as _fp  # noqa: E402


def _with_fp(snap):
    c = classify(snap)
    d = decide(snap, c, S)
    d.fingerprint = _fp(d.excerpt, category=d.category.value)
    return c, d


@pytest.mark.parametrize("error, expected", [
    (NETWORK_ERR, Action.SEND_EMAIL),                                            # owner: it is not passing
    ("java.util.concurrent.TimeoutException: Futures timed out after [300 seconds]", Action.SEND_EMAIL),
    ("Cluster 0101-000000-abc was terminated while waiting on it to be ready", Action.ESCALATE),  # on-call
])
def test_enforce_retry_that_failed_the_same_way_is_not_retried_again(error, expected):
    snap = make_snapshot(error)
    c, d = _with_fp(snap)
    assert d.action.is_retry
    prev = RetriedAttempt("1001-0", d.fingerprint, d.category.value, d.evidence[0], error)
    out = enforce(d, snap, c, S, retried=prev)
    assert out.action is expected and "retried once; it failed the same way" in out.reason
    assert any("attempt 1001-0" in n for n in out.notes)
    # Without the previous retry, the same failure is retried (prior retries 0 of 3).
    assert enforce(d, snap, c, S).action.is_retry


def test_enforce_same_top_evidence_counts_as_the_same_failure():
    snap = make_snapshot(NETWORK_ERR)
    c, d = _with_fp(snap)
    prev = RetriedAttempt("1001-0", "another-fingerprint", d.category.value, d.evidence[0], "other text")
    assert same_failure(d, prev).startswith("same evidence")
    assert enforce(d, snap, c, S, retried=prev).action is Action.SEND_EMAIL


def test_enforce_retry_that_failed_differently_is_retried_again():
    snap = make_snapshot(NETWORK_ERR)
    c, d = _with_fp(snap)
    prev = RetriedAttempt("1001-0", "another-fingerprint", "TIMEOUT", "exception TimeoutException", "timed out")
    assert same_failure(d, prev) == ""
    assert enforce(d, snap, c, S, retried=prev).action is Action.RETRY


def test_enforce_same_category_after_our_retry_is_not_retried_again():
    # Worded differently (another host, another stage), but the rerun failed the same kind of way.
    snap = make_snapshot(NETWORK_ERR)
    c, d = _with_fp(snap)
    prev = RetriedAttempt("1001-0", "another-fingerprint", "NETWORK", "text 'Connection refused'", "refused")
    assert same_failure(d, prev) == "NETWORK again"
    assert enforce(d, snap, c, S, retried=prev).action is Action.SEND_EMAIL
