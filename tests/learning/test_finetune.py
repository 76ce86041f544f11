"""shared.learning.finetune: valid OpenAI chat fine-tuning JSONL from confirmed decisions, with no secrets,
on both store backends."""

from __future__ import annotations

import io
import json
import re

import pytest

from shared.cli import main
from shared.learning.finetune import export_finetune, in_validation, label_of, load_records, valid_path_for
from shared.llm import SYSTEM_PROMPT, LLMAnswer
from tests.plugins.learning import decision, unique_key

SECRET = "dapi" + "0123456789abcdef" * 2        # made up at run time
SAS = "sv=2022-11-02&ss=b&srt=co&sp=r&se=2030-01-01&sig=" + "Ab1" * 12
_TOKEN_SHAPE = re.compile(r"dapi[0-9a-f]{32}")


def _planted(key: str, **kw):
    """A decision whose stored text carries secrets (as if redaction had been missed upstream)."""
    excerpt = (f"java.io.IOException: auth failed with token {SECRET} for "
               f"https://acct.blob.core.windows.net/c?{SAS}\nCaused by: Connection refused")
    kw.setdefault("decision", {"category": kw.get("category", "NETWORK"), "action": kw.get("action", "RETRY"),
                               "evidence": [f"text 'token {SECRET}'"], "failed_tasks": ["main"],
                               "deciding_task": "main", "suggested_fix": f"rotate {SECRET}", "params": {}})
    return decision(key, excerpt=excerpt, job_name=f"etl password={SECRET}", **kw)


def _records():
    return [
        # confirmed by outcome: an acted retry that succeeded
        _planted("1-0", outcome={"result": "succeeded", "final": True}),
        # confirmed by feedback
        _planted("2-0", category="CODE", action="SEND_EMAIL", mode="shadow", status="decided",
                 feedback={"verdict": "correct"}),
        # corrected: the label is the person's action; the comment becomes the root cause and fix
        _planted("3-0", outcome={"result": "failed", "final": True},
                 feedback={"verdict": "wrong", "correct_action": "ESCALATE", "correct_category": "UNKNOWN",
                           "comment": f"not transient, the key {SECRET} was revoked"}),
        # shadow retry whose human rerun succeeded
        _planted("4-0", mode="shadow", status="decided",
                 outcome={"human_action": "repair", "human_result": "succeeded", "agreed": True}),
        # not confirmed: wrong without a correction, a failed retry, an IGNORE, a shadow email, a duplicate
        _planted("5-0", feedback={"verdict": "wrong"}),
        _planted("6-0", outcome={"result": "failed", "final": True}),
        _planted("7-0", category="CANCELED", action="IGNORE", feedback={"verdict": "correct"}),
        _planted("8-0", category="CODE", action="SEND_EMAIL", mode="shadow", status="decided",
                 outcome={"human_action": "none", "agreed": True}),
        _planted("9-0", status="duplicate", outcome={"result": "succeeded", "final": True}),
    ]


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _check_example(doc):
    assert list(doc) == ["messages"]
    msgs = doc["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert all(set(m) == {"role", "content"} and isinstance(m["content"], str) and m["content"] for m in msgs)
    assert msgs[0]["content"] == SYSTEM_PROMPT
    json.loads(msgs[1]["content"])
    return LLMAnswer.model_validate_json(msgs[2]["content"])


@pytest.fixture
def stored(learning_store):
    for r in _records():
        assert learning_store.claim(r).won
    return learning_store


def test_export_finetune_valid_jsonl_labels_and_no_secrets(stored, tmp_path):
    train = tmp_path / "train.jsonl"
    summary = export_finetune(load_records(stored), train, valid_percent=0)
    assert (summary.train, summary.valid, summary.skipped) == (4, 0, 4)
    assert dict(summary.per_source) == {"outcome": 2, "feedback": 1, "correction": 1}
    assert {k: dict(v) for k, v in summary.per_category.items()} == {
        "NETWORK": {"train": 2}, "CODE": {"train": 1}, "UNKNOWN": {"train": 1}}

    raw = train.read_text(encoding="utf-8") + valid_path_for(train).read_text(encoding="utf-8")
    assert SECRET not in raw and not _TOKEN_SHAPE.search(raw) and "sig=Ab1" not in raw
    answers = [_check_example(d) for d in _lines(train)]
    by_action = sorted((a.category, a.recommended_action, a.is_transient) for a in answers)
    assert by_action == [("CODE", "SEND_EMAIL", False), ("NETWORK", "RETRY", True), ("NETWORK", "RETRY", True),
                         ("UNKNOWN", "ESCALATE", False)]
    corrected = next(a for a in answers if a.recommended_action == "ESCALATE")
    assert corrected.root_cause.startswith("not transient, the key [REDACTED:")
    user = json.loads(_lines(train)[0]["messages"][1]["content"])
    assert user["failed_tasks"] == [{"task": "main"}] and "Connection refused" in user["error_excerpt"]


def test_export_finetune_split_is_deterministic(learning_store, tmp_path):
    for i in range(40):
        assert learning_store.claim(decision(f"{5000 + i}-0", outcome={"result": "succeeded", "final": True})).won
    records = load_records(learning_store)
    a = export_finetune(records, tmp_path / "a.jsonl", valid_path=tmp_path / "a-valid.jsonl")
    b = export_finetune(records, tmp_path / "b.jsonl", valid_path=tmp_path / "b-valid.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a-valid.jsonl").read_bytes() == (tmp_path / "b-valid.jsonl").read_bytes()
    expected_valid = sum(in_validation(f"{5000 + i}-0") for i in range(40))
    assert a.valid == b.valid == expected_valid and a.train == 40 - expected_valid
    assert 0 < a.valid < 12      # about 15 % of 40


def test_label_of_prefers_feedback_over_outcome():
    r = decision("1-0", outcome={"result": "succeeded"}, feedback={"verdict": "wrong"})
    assert label_of(r) is None
    r.feedback = {"verdict": "wrong", "correct_action": "SEND_EMAIL"}
    assert label_of(r) == ("NETWORK", "SEND_EMAIL", "correction")
    r.feedback = {"verdict": "wrong", "correct_action": "IGNORE"}
    assert label_of(r) is None       # IGNORE is not the model's to give


def test_label_of_retry_needs_a_retryable_category():
    r = decision("1-0", category="CODE", action="SEND_EMAIL", feedback={"verdict": "wrong", "correct_action": "RETRY"})
    assert label_of(r) is None       # the system prompt never pairs CODE with a retry
    r.feedback["correct_category"] = "NETWORK"
    assert label_of(r) == ("NETWORK", "RETRY", "correction")


def test_valid_path_for():
    assert valid_path_for("out/train.jsonl").as_posix() == "out/train.valid.jsonl"
    assert valid_path_for("train").as_posix() == "train.valid.jsonl"


def test_export_finetune_command(app_storage, tmp_path):
    env, store = app_storage
    assert store.claim(_planted(unique_key(), outcome={"result": "succeeded", "final": True})).won
    out, err = io.StringIO(), io.StringIO()
    train = tmp_path / "train.jsonl"
    code = main(["export-finetune", "--out", str(train), "-q"], env=env, stdout=out, stderr=err)
    assert (code, err.getvalue()) == (0, "")
    assert "training and" in out.getvalue() and "NETWORK" in out.getvalue()
    docs = _lines(train) + _lines(tmp_path / "train.valid.jsonl")
    assert docs and all(_check_example(d) for d in docs)
    assert SECRET not in train.read_text(encoding="utf-8")


def test_export_finetune_command_bad_share_exit_2(app_storage, tmp_path):
    env, _ = app_storage
    err = io.StringIO()
    code = main(["export-finetune", "-o", str(tmp_path / "t.jsonl"), "--valid-percent", "90"], env=env,
                stdout=io.StringIO(), stderr=err)
    assert code == 2 and "error: argument --valid-percent: 90 must be between 0 and 50\n" in err.getvalue()
