"""Where a resource failure hit: one test per evidence row, and the knob each place turns."""

from __future__ import annotations

import pytest

from shared.decide.classify import classify
from shared.decide.knob import WHERE, Hit, knob_params, where_it_hit
from shared.decide.policy import decide
from shared.config import Settings
from shared.models import Action, Category
from shared.snapshot import parse_snapshot
from demo.workspace import make_snapshot


def _classification(error: str):
    return classify(parse_snapshot(make_snapshot(error=error)))


@pytest.mark.parametrize("row", WHERE, ids=[r.id for r in WHERE])
def test_every_row_matches_its_example_and_places_it(row):
    assert row.pattern.search(row.example), row.id
    hit = where_it_hit(_classification(row.example))
    assert hit.place == row.place, (row.id, hit)


@pytest.mark.parametrize("error, place, knob", [
    ("Total size of serialized results of 12 tasks (4.1 GiB) is bigger than spark.driver.maxResultSize (4.0 GiB)",
     "driver", {"knob": "driver", "driver_node_type_step": 1, "driver_max_result_size_factor": 2,
                "driver_max_result_size_seen": "4g"}),
    ("Driver is up but is not responsive, likely due to GC.", "driver", {"knob": "driver", "driver_node_type_step": 1}),
    ("java.io.IOException: No space left on device", "disk", {"knob": "disk", "node_type_step": 1}),
    ("ExecutorLostFailure (executor 3 exited caused by one of the running tasks) Reason: Container killed by YARN",
     "executors", {"knob": "executors", "num_workers_factor": 2}),
    ("java.lang.OutOfMemoryError: Java heap space", "unknown", {"knob": "executors", "num_workers_factor": 2}),
])
def test_place_and_knob(error, place, knob):
    hit = where_it_hit(_classification(error))
    assert hit.place == place and knob_params(hit) == knob


def test_job_stack_trace_mentioning_the_driver_is_not_a_driver_failure():
    error = ("org.apache.spark.SparkException: Job aborted due to stage failure: Lost task 1.3 in stage 4.0: "
             "java.lang.OutOfMemoryError: Java heap space\nDriver stacktrace:\n\tat org.apache.spark...")
    assert where_it_hit(_classification(error)).place == "executors"


def test_the_decision_reason_names_the_knob_and_why():
    snap = parse_snapshot(make_snapshot(error="Total size of serialized results of 9 tasks (4.2 GiB) is bigger "
                                              "than spark.driver.maxResultSize (4.0 GiB)"))
    d = decide(snap, classify(snap), Settings.from_env({}))
    assert d.category is Category.RESOURCE and d.action is Action.RETRY_WITH_NEW_PARAMS
    assert "driver" in d.reason and "not more workers" in d.reason
    assert d.params["knob"] == "driver"


def test_unknown_place_says_so():
    assert "no sign of the driver" in Hit("unknown").because()


@pytest.mark.parametrize("error, limit", [
    ("exceeds limit of spark.driver.maxResultSize=1073741824. You can disable broadcasts", "1073741824"),
    ("Total size of serialized results of 5 tasks (1030.2 MiB) is bigger than spark.driver.maxResultSize "
     "(1024.0 MiB)", "1024m"),
    ("Total size of serialized results of 5 tasks (2.1 GiB) is bigger than spark.driver.maxResultSize", ""),
])
def test_the_limit_the_error_names_is_read(error, limit):
    hit = where_it_hit(_classification(error))
    assert hit.place == "driver" and hit.limit == limit
    assert knob_params(hit).get("driver_max_result_size_seen", "") == limit
