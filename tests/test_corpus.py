"""The whole development corpus: an accuracy floor and zero unsafe retries."""

import json

from shared.config import Settings
from shared.snapshot import load_snapshot
from shared.triage import decide
from tests.helpers import CORPUS

ACCURACY_FLOOR = 0.95   # measured: 76/76 actions on the dev corpus; the floor leaves room for rule changes
UNSAFE = {"SEND_EMAIL", "IGNORE", "ESCALATE"}


def test_corpus_action_accuracy_and_zero_unsafe_retries():
    settings = Settings()
    total = correct = 0
    unsafe = []
    for path in sorted(CORPUS.glob("*.json")):
        expected = json.loads(path.read_text())["expected"]
        d = decide(load_snapshot(path), settings, use_llm=False)
        total += 1
        correct += d.action.value == expected["action"]
        if d.action.is_retry and expected["action"] in UNSAFE:
            unsafe.append(path.stem)
    assert total >= 70
    assert not unsafe, f"unsafe retries: {unsafe}"
    assert correct / total >= ACCURACY_FLOOR, f"action accuracy {correct}/{total}"


def test_corpus_labels_file_matches_snapshots():
    labels = {json.loads(line)["case_id"]: json.loads(line) for line in
              (CORPUS.parent / "dev-labels.jsonl").read_text().splitlines() if line.strip()}
    for path in CORPUS.glob("*.json"):
        doc = json.loads(path.read_text())
        assert labels[doc["case_id"]]["action"] == doc["expected"]["action"]
