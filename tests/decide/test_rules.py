"""Every rule row has a test case: its own example must make it match."""

import re

import pytest

from shared.decide.classify import match_events, match_state, match_text
from shared.models import Category, EvidenceKind
from shared.decide.rules import RULES, RULES_BY_ID, get_rule
from shared.snapshot import RunState

_STATE_FIELD = {
    EvidenceKind.RESULT_STATE: "result_state",
    EvidenceKind.TERMINATION_CODE: "termination_code",
    EvidenceKind.TERMINATION_TYPE: "termination_type",
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_matches_its_example(rule):
    if rule.kind is EvidenceKind.CLUSTER_EVENT:
        hits = {e.rule_id for e in match_events([{"type": "TERMINATING", "details": {"reason": {"code": rule.example}}}])}
        hits |= {e.rule_id for e in match_events([{"type": rule.example}])}
    elif rule.kind in _STATE_FIELD:
        if rule.kind is EvidenceKind.RESULT_STATE and rule.example == "SKIPPED":
            state = RunState(life_cycle_state="SKIPPED")
        else:
            state = RunState(**{_STATE_FIELD[rule.kind]: rule.example})
        hits = {e.rule_id for e in match_state(state)}
    elif rule.kind is EvidenceKind.ERROR_CLASS:
        hits = {e.rule_id for e in match_text(f"SparkException: [{rule.example}] something went wrong")[0]}
    elif rule.kind is EvidenceKind.SQLSTATE:
        hits = {e.rule_id for e in match_text(f"some failure. SQLSTATE: {rule.example}")[0]}
    elif rule.kind is EvidenceKind.EXCEPTION:
        hits = {e.rule_id for e in match_text(f"Caused by: org.example.{rule.example}: boom")[0]}
    else:
        hits = {e.rule_id for e in match_text(rule.example)[0]}
    assert rule.id in hits, f"{rule.id} did not match its own example {rule.example!r}"


def test_rules_ids_unique_and_confidences_bounded():
    assert len(RULES_BY_ID) == len(RULES)
    assert all(0 < r.confidence <= 1 for r in RULES)


def test_rules_unknown_id_error_lists_valid_ids():
    with pytest.raises(KeyError, match="valid ids: .*state.timedout"):
        get_rule("no.such.rule")


def test_rules_every_category_but_unknown_has_a_rule():
    covered = {r.category for r in RULES}
    assert covered == set(Category) - {Category.UNKNOWN}


def test_rules_phrases_do_not_catastrophically_backtrack():
    # A long line of near-misses must stay linear: no nested unbounded quantifiers.
    for r in RULES:
        if r.kind is EvidenceKind.PHRASE:
            assert not re.search(r"\((?:[^()]*[+*])\)[+*]", r.pattern), r.id


def test_rules_log_levels_are_not_error_classes():
    ev, _ = match_text("2023-07-27 [DEBUG] provider: [INFO] all good [WARN]")
    assert not [e for e in ev if e.kind is EvidenceKind.ERROR_CLASS]
