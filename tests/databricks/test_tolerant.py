"""Tolerant reading, bounded fan-out and capture failures: an odd or failing answer from
Databricks yields a decision from what is valid, a passing failure is retried (never decided
blind), and a run with many failed tasks costs a bounded number of calls."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from demo.workspace import make_snapshot, status_fault
from shared.config import Settings
from shared.databricks.capture import snapshot_from_answers
from shared.reader import read_job, read_run
from shared.errors import DatabricksError, DatabricksUnavailable
from shared.triage import triage_run, triage_snapshot

CORPUS = Path(__file__).parents[1] / "corpus"
SHADOW = Settings.from_env({"TRIAGE_MODE": "shadow"})


# --- the reader -----------------------------------------------------------------------------------

def test_reader_drops_wrong_shapes_and_says_where():
    notes: list[str] = []
    run = read_run({"run_id": "42", "state": {"life_cycle_state": "TERMINATED", "result_state": 7},
                    "tasks": [{"task_key": "a", "depends_on": True, "new_cluster": {"spark_conf": "x=1",
                                                                                   "num_workers": "2"}},
                              "not a task"],
                    "repair_history": {"oops": 1}, "something_new": {"kept": True}}, notes)
    assert run["run_id"] == 42                                   # a numeric string is an id
    assert run["state"] == {"life_cycle_state": "TERMINATED"}
    assert run["tasks"] == [{"task_key": "a", "new_cluster": {"num_workers": 2}}]
    assert "repair_history" not in run and run["something_new"] == {"kept": True}
    assert notes == [
        "run.state.result_state: expected a string, found a number; ignored",
        "run.tasks[0].depends_on: expected a list, found a boolean; ignored",
        "run.tasks[0].new_cluster.spark_conf: expected an object, found a string; ignored",
        "run.tasks[1]: expected an object, found a string; ignored",
        "run.repair_history: expected a list, found an object; ignored",
    ]


def test_reader_job_tags_as_a_string():
    notes: list[str] = []
    job = read_job({"job_id": 7, "settings": {"name": "n", "tags": "triage.ignore=true"}}, notes)
    assert job == {"job_id": 7, "settings": {"name": "n"}}
    assert notes == ["job.settings.tags: expected an object, found a string; ignored"]


# --- the three odd answers of the issue, through the fake workspace and the real client -----------

def _odd(doc):
    doc = copy.deepcopy(doc)
    doc["job"]["settings"]["tags"] = "team=data"
    doc["run"]["tasks"][1]["depends_on"] = True
    doc["run"]["job_clusters"][0]["new_cluster"]["spark_conf"] = "spark.sql.shuffle.partitions=8"
    return doc


def test_odd_answers_yield_a_decision_that_says_what_was_ignored(fake_databricks, client, store):
    doc = _odd(make_snapshot(run_id=5100, tasks=[{"task_key": "extract"},
                                                 {"task_key": "transform", "result": "FAILED",
                                                  "depends_on": ["extract"]}]))
    fake_databricks.load(doc)
    result = triage_run(5100, SHADOW, client=client, store=store, use_llm=False)
    rec = result.record
    assert rec is not None and rec.status == "decided" and rec.category == "RESOURCE"
    # the resized rerun would copy a cluster definition that lost its spark_conf: the owner is told instead
    assert rec.action == "SEND_EMAIL" and rec.action_request["kind"] == "notify"
    assert "a rerun would not be the job's own" in rec.action_request["fallback_reason"]
    notes = " | ".join(rec.decision["notes"])
    assert "odd answer from Databricks: 3 field(s) ignored" in notes
    assert "job.settings.tags" in notes and "run.tasks[1].depends_on" in notes


# --- property: any mutation of a real corpus run yields a decision --------------------------------

_FILES = sorted((CORPUS / "dev").glob("*.json"))[:40] + sorted((CORPUS / "validation").glob("*.json"))[:20]
_DOCS = [json.loads(p.read_text(encoding="utf-8")) for p in _FILES]

_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(doc, path, value):
    target = doc
    for p in path[:-1]:
        target = target[p]
    if value is _DELETE and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = None if value is _DELETE else value


_DELETE = object()


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_odd_answer_yields_a_decision(data, tmp_path_factory):
    from shared.store import SqliteStore

    doc = copy.deepcopy(data.draw(st.sampled_from(_DOCS), label="corpus run"))
    answers = {"run": doc["run"], "job": doc.get("job") or {"job_id": 1, "settings": {}},
               "task_outputs": doc.get("task_outputs") or {}}
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        paths = [p for p in _paths(answers) if len(p) >= 2]
        path = data.draw(st.sampled_from(paths), label="path")
        _set(answers, path, data.draw(_values | st.just(_DELETE), label="value"))
    run_id_ok = isinstance(answers["run"], dict) and read_run(answers["run"], []) is not None \
        and read_run(answers["run"], []).get("run_id") is not None
    outputs = answers["task_outputs"] if isinstance(answers["task_outputs"], dict) else {}
    try:
        snap = snapshot_from_answers(answers["run"], outputs, answers["job"], {"prior_retries": 0},
                                     workspace_host="https://adb-1.azuredatabricks.net")
    except DatabricksError:
        assert not run_id_ok        # only a run without its id cannot be decided (the worker escalates it)
        return
    store = SqliteStore(str(tmp_path_factory.mktemp("prop") / "t.db"))
    try:
        result = triage_snapshot(snap, SHADOW, client=None, store=store, use_llm=False)
    finally:
        store.close()
    if result.record is None:   # skipped: only when what is valid says the attempt is not a finished failure
        assert result.skipped and (not snap.state.terminal or not snap.state.failed or snap.repair_in_flight)
        return
    assert result.record.category and result.record.action
    if snap.history.get("read_notes"):
        assert any(n.startswith("odd answer from Databricks") for n in result.record.decision["notes"])


# --- capture failures: retried, not decided ------------------------------------------------------

def test_get_output_unavailable_raises_and_nothing_is_claimed(fake_databricks, client, store):
    fake_databricks.load(make_snapshot(run_id=5200, error="java.lang.OutOfMemoryError: Java heap space"))
    fake_databricks.inject("runs/get-output", *[status_fault(503)] * 20)
    with pytest.raises(DatabricksUnavailable):
        triage_run(5200, SHADOW, client=client, store=store, use_llm=False)
    assert store.get("5200-0", "77") is None           # no blind decision was claimed
    fake_databricks._faults.clear()                     # Databricks answers again: the retry decides right
    rec = triage_run(5200, SHADOW, client=client, store=store, use_llm=False).record
    assert rec.category == "RESOURCE" and rec.decision_key == "5200-0"


def test_get_output_gone_for_good_is_decided_and_says_so(fake_databricks, client, store):
    fake_databricks.load(make_snapshot(run_id=5300))
    fake_databricks.inject("runs/get-output", status_fault(404, error_code="RESOURCE_DOES_NOT_EXIST",
                                                           message="Run 530001 does not exist."))
    rec = triage_run(5300, SHADOW, client=client, store=store, use_llm=False).record
    assert rec is not None
    assert any("gone for good" in n for n in rec.decision["notes"])


# --- bounded fan-out -----------------------------------------------------------------------------

def test_fan_out_is_bounded_earliest_failures_first(fake_databricks, client, store):
    tasks = [{"task_key": f"t{i:03d}", "result": "FAILED", "end_time": 1_760_000_100_000 - i * 1000}
             for i in range(60)]
    tasks += [{"task_key": f"down{i}", "result": "UPSTREAM_FAILED", "depends_on": ["t000"],
               "end_time": 1_759_000_000_000} for i in range(40)]
    fake_databricks.load(make_snapshot(run_id=5400, tasks=tasks))
    settings = Settings.from_env({"TRIAGE_MAX_TASK_OUTPUTS": "20"})
    rec = triage_run(5400, settings, client=client, store=store, use_llm=False).record
    read = fake_databricks.requests_to("runs/get-output")
    assert len(read) == 20                        # not 60 (and never the 40 upstream-failed ones)
    ids = sorted(int(r.query["run_id"]) for r in read)
    assert ids == [540000 + i + 1 for i in range(40, 60)]        # the ones that ended first
    note = next(n for n in rec.decision["notes"] if "not read" in n)
    assert note.startswith("40 more failed task(s) not read (at most 20 task outputs per run")
    assert "t000" in note and "down" not in note
    assert len(fake_databricks.requests) == 2 + 20     # runs/get (one page), 20 outputs, jobs/get


def test_reader_a_digit_that_is_not_ascii_is_not_an_id():
    """str.isdigit() is true for '²' and other Unicode digits that int() refuses: dropped, not a crash."""
    notes: list[str] = []
    run = read_run({"run_id": 5, "job_id": "²", "start_time": "١٢"}, notes)
    assert run["run_id"] == 5 and "job_id" not in run and "start_time" not in run
    assert [n.split(":")[0] for n in notes] == ["run.job_id", "run.start_time"]
