import json

import pytest

from shared.errors import SnapshotError
from shared.snapshot import iter_snapshot_paths, load_snapshot, parse_snapshot, strip_ansi
from tests.helpers import CORPUS, corpus_doc, make_snapshot


def test_parse_snapshot_corpus_all_load():
    for path in sorted(CORPUS.glob("*.json")):
        snap = load_snapshot(path)
        assert snap.run_id and snap.failed_tasks, path.name


def test_parse_snapshot_run_without_status_uses_state():
    snap = make_snapshot("boom", legacy=True)
    assert snap.state.result_state == "FAILED"
    assert snap.state.termination_code is None
    assert snap.failed_tasks[0].state.failed


def test_parse_snapshot_single_task_error_only_in_state_message():
    doc = corpus_doc("dev-001")
    run = doc["run"]
    run.pop("tasks")
    run["state"]["state_message"] = "Notebook not found: /Repos/x"
    doc["task_outputs"] = {}
    snap = parse_snapshot(doc)
    [task] = snap.failed_tasks
    assert task.task_key is None and "Notebook not found" in task.text


def test_parse_snapshot_output_with_error_but_no_trace():
    snap = make_snapshot("ModuleNotFoundError: No module named 'x'")
    assert snap.failed_tasks[0].error_trace == ""
    assert "ModuleNotFoundError" in snap.failed_tasks[0].text


def test_parse_snapshot_failed_task_without_output():
    snap = make_snapshot("")
    assert snap.failed_tasks[0].output is None
    assert snap.failed_tasks[0].text == "Workload failed, see run output for details"


def test_parse_snapshot_strips_ansi_from_trace():
    snap = make_snapshot("x", trace="\x1b[0;31mValueError\x1b[0m: bad")
    assert "ValueError: bad" in snap.failed_tasks[0].text
    assert strip_ansi("\x1b[1mA\x1b[0m") == "A"


def test_snapshot_decision_key_counts_repairs():
    doc = corpus_doc("dev-001")
    doc["run"]["repair_history"] = [{"type": "ORIGINAL", "id": 1}, {"type": "REPAIR", "id": 55}, {"type": "REPAIR", "id": 56}]
    snap = parse_snapshot(doc)
    assert snap.decision_key == f"{snap.run_id}-2"
    assert snap.latest_repair_id == 56
    assert snap.prior_retries == 2


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("run"), "'run' is missing"),
        (lambda d: d["run"].pop("run_id"), "run.run_id"),
        (lambda d: d.__setitem__("task_outputs", []), "task_outputs"),
        (lambda d: d.__setitem__("snapshot_version", 9), "snapshot_version"),
        (lambda d: d["history"].__setitem__("prior_retries", "many"), "prior_retries"),
        (lambda d: d["run"].__setitem__("tasks", {"a": 1}), "run.tasks"),
    ],
)
def test_parse_snapshot_malformed_names_what_is_wrong(mutate, message):
    doc = corpus_doc("dev-002")
    mutate(doc)
    with pytest.raises(SnapshotError, match=message) as info:
        parse_snapshot(doc, source="case.json")
    assert str(info.value).startswith("case.json: ")
    assert "\n" not in str(info.value)


def test_load_snapshot_invalid_json_names_file_and_position(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"run": ')
    with pytest.raises(SnapshotError, match=r"broken\.json: invalid JSON at line 1"):
        load_snapshot(p)


def test_load_snapshot_case_id_defaults_to_stem(tmp_path):
    doc = corpus_doc("dev-001")
    doc.pop("case_id")
    p = tmp_path / "mine.json"
    p.write_text(json.dumps(doc))
    assert load_snapshot(p).case_id == "mine"


def test_iter_snapshot_paths_expands_folders_sorted(tmp_path):
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in iter_snapshot_paths([str(tmp_path)])] == ["a.json", "b.json"]


@pytest.mark.parametrize("entry, in_flight", [
    ({"type": "REPAIR", "id": 5, "start_time": 1, "state": {"life_cycle_state": "RUNNING"}}, True),
    ({"type": "REPAIR", "id": 5, "start_time": 1}, True),                       # no end time, no state
    ({"type": "REPAIR", "id": 5, "start_time": 1, "end_time": 9}, False),
    ({"type": "REPAIR", "id": 5, "start_time": 1, "end_time": 9,
      "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}}, False),
])
def test_snapshot_repair_in_flight_from_latest_repair_entry(entry, in_flight):
    doc = corpus_doc("dev-043")
    doc["run"]["repair_history"] = [{"type": "ORIGINAL", "id": 1, "start_time": 0, "end_time": 1}, entry]
    assert parse_snapshot(doc).repair_in_flight is in_flight
