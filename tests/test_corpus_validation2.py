"""The second held-out validation corpus: an accuracy floor and zero unsafe retries.

These 41 snapshots were built from public failure reports that are in neither the development
corpus nor the first validation corpus, and labelled before the classifier was run on them.
"""

import json
from pathlib import Path

from shared.config import Settings
from shared.snapshot import load_snapshot
from shared.triage import decide

CORPUS = Path(__file__).parent / "corpus"
VALIDATION2 = CORPUS / "validation2"
ACCURACY_FLOOR = 0.95   # measured blind: 32/41 with 1 unsafe retry; 40/41 and 0 unsafe after widening the rules from its misses
UNSAFE = {"SEND_EMAIL", "IGNORE", "ESCALATE"}


def _decisions():
    settings = Settings()
    for path in sorted(VALIDATION2.glob("*.json")):
        expected = json.loads(path.read_text())["expected"]
        yield path.stem, expected, decide(load_snapshot(path), settings, use_llm=False)


def _labels(name):
    return [json.loads(line) for line in (CORPUS / name).read_text().splitlines() if line.strip()]


def test_validation2_corpus_action_accuracy_meets_floor():
    results = list(_decisions())
    correct = sum(d.action.value == e["action"] for _, e, d in results)
    assert len(results) >= 40
    assert correct / len(results) >= ACCURACY_FLOOR, f"action accuracy {correct}/{len(results)}"


def test_validation2_corpus_has_zero_unsafe_retries():
    unsafe = [case for case, e, d in _decisions() if d.action.is_retry and e["action"] in UNSAFE]
    assert not unsafe, f"unsafe retries: {unsafe}"


def test_validation2_labels_file_matches_snapshots():
    labels = {label["case_id"]: label for label in _labels("validation2-labels.jsonl")}
    paths = list(VALIDATION2.glob("*.json"))
    assert len(labels) == len(paths)
    for path in paths:
        doc = json.loads(path.read_text())
        assert labels[doc["case_id"]]["action"] == doc["expected"]["action"]
        assert labels[doc["case_id"]]["category"] == doc["expected"]["category"]
        assert labels[doc["case_id"]]["source_url"] == doc["expected"]["source_url"]


def test_validation2_sources_are_not_in_earlier_corpora():
    earlier = {label["source_url"] for name in ("dev-labels.jsonl", "validation-labels.jsonl")
               for label in _labels(name)}
    overlap = [label["case_id"] for label in _labels("validation2-labels.jsonl")
               if label["source_url"] in earlier]
    assert not overlap, f"validation2 cases reuse earlier sources: {overlap}"
