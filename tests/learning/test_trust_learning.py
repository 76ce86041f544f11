"""What people decide on approval requests and precedents reaches learning: the fine-tune export
labels approvals and rejections, the report counts how precedents fared, tokens carry their job."""

from __future__ import annotations

import pytest

from shared.learning.finetune import label_of
from shared.learning.report import build_report, render_html, render_text, report_to_dict
from shared.signing import make_token, verify_token
from tests.plugins.learning import decision

KEY = b"t" * 8 + b"0123456789abcdef"


def _approval(key, state, **kw):
    d = {"category": "NETWORK", "action": "SEND_EMAIL", "evidence": [], "failed_tasks": ["main"],
         "proposed_action": "RETRY", "approval": state}
    return decision(key, decision=d, **kw)


def test_finetune_labels_an_approved_retry_and_a_rejected_one():
    approved = _approval("1-0", "approved", action="RETRY", decided_by="person")
    assert label_of(approved) == ("NETWORK", "RETRY", "approval")
    rejected = _approval("2-0", "rejected", action="SEND_EMAIL",
                         feedback={"verdict": "correct", "comment": "rejected the proposed RETRY"})
    assert label_of(rejected) == ("NETWORK", "SEND_EMAIL", "rejection")
    # A pending request is no label; an approval the person later called wrong follows the correction.
    assert label_of(_approval("3-0", "pending", action="SEND_EMAIL")) is None
    corrected = _approval("4-0", "approved", action="RETRY", decided_by="person",
                          feedback={"verdict": "wrong", "correct_action": "SEND_EMAIL"})
    assert label_of(corrected) == ("NETWORK", "SEND_EMAIL", "correction")
    # A retry approved on a category that is never retried is no label for the model.
    assert label_of(_approval("5-0", "approved", action="RETRY", decided_by="person", category="PERMISSION")) is None


def test_report_has_a_precedents_section_with_agreement():
    p = {"id": "j-abc", "scope": "job", "decision_key": "10-0", "action": "SEND_EMAIL"}
    recs = [
        decision("11-0", action="SEND_EMAIL", decided_by="precedent", created_at=1000,
                 decision={"precedent": p}, feedback={"verdict": "correct"}),
        decision("12-0", action="SEND_EMAIL", decided_by="precedent", created_at=1000,
                 decision={"precedent": p}, feedback={"verdict": "wrong", "correct_action": "RETRY"}),
        decision("13-0", action="SEND_EMAIL", decided_by="precedent", created_at=1000, decision={"precedent": p}),
        decision("14-0", action="RETRY", decided_by="precedent", created_at=1000,
                 decision={"precedent": {**p, "id": "j-def", "action": "RETRY"}}, outcome={"result": "succeeded"}),
        decision("15-0", created_at=1000),
    ]
    report = build_report(recs, since_ms=0, until_ms=2000)
    rows = {r["id"]: r for r in report.precedents}
    assert rows["j-abc"] == {"id": "j-abc", "scope": "job", "action": "SEND_EMAIL", "job_id": rows["j-abc"]["job_id"],
                                 "from_decision": "10-0", "fired": 3, "agreed": 1, "disagreed": 1, "unknown": 1}
    assert (rows["j-def"]["fired"], rows["j-def"]["agreed"]) == (1, 1)
    assert "Precedents (corrections that decided)" in render_text(report)
    assert "Precedents (corrections that decided)" in render_html(report)
    assert report_to_dict(report)["precedents"][0]["id"] == "j-abc"


def test_tokens_carry_job_and_workspace():
    token = make_token(KEY, "7-0", "approve", expires_at=2_000_000_000, job_id="10",
                       workspace="https://adb-1.1.azuredatabricks.net")
    claim = verify_token(KEY, token, now=1)
    assert (claim.decision_key, claim.verdict, claim.job_id, claim.workspace) == (
        "7-0", "approve", "10", "https://adb-1.1.azuredatabricks.net")
    # The binding is signed: another job's id cannot be swapped in.
    other = make_token(KEY, "7-0", "approve", expires_at=2_000_000_000, job_id="20")
    forged = other.split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(ValueError, match="invalid signature"):
        verify_token(KEY, forged, now=1)
    with pytest.raises(ValueError):
        make_token(KEY, "7-0", "approve", expires_at=2_000_000_000, job_id="1\n0")
