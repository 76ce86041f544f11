"""shared/app/sweep.py against the fake workspace: pagination, watermark, overlap, catch-up, outages."""

import pytest

from shared.config import Settings
from shared.databricks import DatabricksClient, PatCredential
from shared.errors import QueueError
from shared.store import DecisionRecord
from shared.app.sweep import ACTIVE_KIND, is_failed_run, needs_triage, sweep
from demo.workspace import slow_fault, status_fault

NOW = 1_800_000_000_000
MIN = 60_000
HOUR = 60 * MIN


def run_doc(run_id, start, end, result="FAILED", life="TERMINATED", job_id=7):
    state = {"life_cycle_state": life, "state_message": ""}
    if result:
        state["result_state"] = result
    return {"run": {"run_id": run_id, "job_id": job_id, "run_name": f"job-{job_id}", "start_time": start,
                    "end_time": end, "state": dict(state),
                    "tasks": [{"run_id": run_id * 10, "task_key": "main", "state": dict(state)}]}}


class Queue(list):
    def __call__(self, request):
        self.append(request)


@pytest.fixture
def client_retry():
    return {"max_attempts": 2}


def _settings(fake, **env):
    return Settings.from_env({"DATABRICKS_HOST": fake.url, "TRIAGE_SWEEP_OVERLAP": "10m",
                              "TRIAGE_SWEEP_MAX_LOOKBACK": "24h", **env})


def _sweep(fake, client, store, queue, now=NOW, **env):
    return sweep(_settings(fake, **env), clients_by_workspace={fake.url: client}, store=store, enqueue=queue,
                 now_ms=now)


def _list_params(fake):
    return [r.query for r in fake.requests_to("runs/list")]


def test_sweep_pages_through_runs_list_and_queues_failed_runs_only(fake_databricks, client, store):
    failed = set()
    for i in range(1, 31):
        result = ("FAILED", "SUCCESS", "TIMEDOUT", "CANCELED", "SUCCESS_WITH_FAILURES")[i % 5]
        fake_databricks.load(run_doc(1000 + i, NOW - 2 * HOUR + i * MIN, NOW - HOUR + i * MIN, result=result))
        if result in ("FAILED", "TIMEDOUT"):
            failed.add(1000 + i)
    fake_databricks.load(run_doc(2000, NOW - HOUR, NOW - 30 * MIN, result=None, life="INTERNAL_ERROR"))
    failed.add(2000)
    queue = Queue()
    report = _sweep(fake_databricks, client, store, queue)
    assert report.ok, report.errors
    assert {r.run_id for r in queue} == failed and len(queue) == len(failed)
    assert all(r.source == "sweep" and r.workspace == fake_databricks.url and r.request_id for r in queue)
    params = _list_params(fake_databricks)
    assert len(params) == 2 and "page_token" in params[1]
    assert all(p["expand_tasks"] == "true" and p["limit"] == "25" for p in params)
    assert fake_databricks.requests_to("runs/get") == []        # no N+1
    assert report.workspaces[0].listed == 31


def test_sweep_queues_oldest_failure_first(fake_databricks, client, store):
    fake_databricks.load(run_doc(1, NOW - 3 * HOUR, NOW - HOUR))
    fake_databricks.load(run_doc(2, NOW - 4 * HOUR, NOW - 2 * HOUR))
    queue = Queue()
    _sweep(fake_databricks, client, store, queue)
    assert [r.run_id for r in queue] == [2, 1]


def test_sweep_skips_runs_that_already_have_a_decision(fake_databricks, client, store):
    fake_databricks.load(run_doc(11, NOW - HOUR, NOW - 50 * MIN))
    fake_databricks.load(run_doc(12, NOW - HOUR, NOW - 40 * MIN))
    store.claim(DecisionRecord(decision_key="11-0", job_id="7", run_id=11))
    queue = Queue()
    report = _sweep(fake_databricks, client, store, queue)
    assert [r.run_id for r in queue] == [12] and report.workspaces[0].already_decided == 1


def test_needs_triage_follows_repairs_to_the_next_attempt(store):
    run = run_doc(21, NOW - HOUR, NOW - MIN)["run"]
    assert needs_triage(store, run)
    store.claim(DecisionRecord(decision_key="21-0", job_id="7", run_id=21, action_result={"repair_id": 5}))
    assert needs_triage(store, run)           # the repair failed again: attempt 1 has no decision
    store.claim(DecisionRecord(decision_key="21-1", job_id="7", run_id=21, action_result={}))
    assert not needs_triage(store, run)
    assert needs_triage(store, {**run, "repair_history": [{"type": "ORIGINAL"}, {"type": "REPAIR", "id": 5},
                                                          {"type": "REPAIR", "id": 6}]})
    store.claim(DecisionRecord(decision_key="22-triage-failed", job_id="7", run_id=22))
    assert not needs_triage(store, {**run, "run_id": 22})   # triage gave up and escalated: no loop


def test_is_failed_run_matches_on_failure():
    assert is_failed_run({"state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}})
    assert is_failed_run({"state": {"life_cycle_state": "TERMINATED", "result_state": "TIMEDOUT"}})
    assert is_failed_run({"state": {"life_cycle_state": "INTERNAL_ERROR"}})
    assert not is_failed_run({"state": {"life_cycle_state": "TERMINATED", "result_state": "CANCELED"}})
    assert not is_failed_run({"state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS_WITH_FAILURES"}})
    assert not is_failed_run({"state": {"life_cycle_state": "SKIPPED"}})
    assert is_failed_run({"status": {"state": "TERMINATED", "termination_details": {
        "code": "RUN_EXECUTION_ERROR", "type": "CLIENT_ERROR"}}})
    assert not is_failed_run({"status": {"state": "TERMINATED", "termination_details": {
        "code": "USER_CANCELED", "type": "SUCCESS"}}})


def test_sweep_first_time_reaches_back_the_catch_up_bound(fake_databricks, client, store):
    fake_databricks.load(run_doc(31, NOW - 30 * HOUR, NOW - 29 * HOUR))    # before the bound
    fake_databricks.load(run_doc(32, NOW - 20 * HOUR, NOW - 19 * HOUR))
    queue = Queue()
    report = _sweep(fake_databricks, client, store, queue)
    assert report.workspaces[0].window_from == NOW - 24 * HOUR
    assert _list_params(fake_databricks)[0]["start_time_from"] == str(NOW - 24 * HOUR)
    assert [r.run_id for r in queue] == [32]


def test_sweep_watermark_advances_and_next_window_overlaps(fake_databricks, client, store):
    fake_databricks.load(run_doc(41, NOW - 2 * HOUR, NOW - HOUR, result="SUCCESS"))
    fake_databricks.load(run_doc(42, NOW - 2 * HOUR, NOW - 5 * MIN))
    _sweep(fake_databricks, client, store, Queue())
    assert store.watermark(fake_databricks.url) == NOW - 5 * MIN
    fake_databricks.clear_requests()
    queue = Queue()
    report = _sweep(fake_databricks, client, store, queue, now=NOW + 5 * MIN)
    expected_from = NOW - 5 * MIN - 10 * MIN
    assert report.workspaces[0].window_from == expected_from
    assert _list_params(fake_databricks)[0]["start_time_from"] == str(expected_from)
    assert queue == []      # both runs started before the window: not listed again


def test_sweep_overlap_catches_a_run_that_ended_just_before_the_watermark(fake_databricks, client, store):
    fake_databricks.load(run_doc(51, NOW - 20 * MIN, NOW - 2 * MIN, result="SUCCESS"))
    _sweep(fake_databricks, client, store, Queue())
    assert store.watermark(fake_databricks.url) == NOW - 2 * MIN
    # A failure recorded late by Databricks: it ended before the watermark but started inside the overlap.
    fake_databricks.load(run_doc(52, NOW - 8 * MIN, NOW - 3 * MIN))
    queue = Queue()
    _sweep(fake_databricks, client, store, queue, now=NOW + 5 * MIN)
    assert [r.run_id for r in queue] == [52]
    assert store.watermark(fake_databricks.url) == NOW - 2 * MIN


def test_sweep_catch_up_after_downtime_is_bounded(fake_databricks, client, store):
    store.set_watermark(fake_databricks.url, NOW - 72 * HOUR)
    fake_databricks.load(run_doc(61, NOW - 48 * HOUR, NOW - 47 * HOUR))
    fake_databricks.load(run_doc(62, NOW - 2 * HOUR, NOW - HOUR))
    queue = Queue()
    report = _sweep(fake_databricks, client, store, queue)
    assert report.workspaces[0].window_from == NOW - 24 * HOUR
    assert [r.run_id for r in queue] == [62]
    assert store.watermark(fake_databricks.url) == NOW - HOUR


def test_sweep_databricks_outage_mid_listing_keeps_the_watermark(fake_databricks, client, store):
    store.set_watermark(fake_databricks.url, NOW - 3 * HOUR)
    for i in range(30):
        fake_databricks.load(run_doc(100 + i, NOW - 2 * HOUR + i * MIN, NOW - HOUR + i * MIN))
    # First page answers, then runs/list is down for longer than the retry budget.
    fake_databricks.inject("runs/list", slow_fault(0), status_fault(503), status_fault(503))
    queue = Queue()
    report = _sweep(fake_databricks, client, store, queue)
    ws = report.workspaces[0]
    assert not report.ok and "runs/list failed" in ws.error and "DatabricksUnavailable" in ws.error
    assert store.watermark(fake_databricks.url) == NOW - 3 * HOUR          # not advanced
    assert len(queue) == 25                                                  # the first page's failures
    # Databricks is back: the next sweep covers everything, and only then the watermark moves.
    queue2 = Queue()
    report = _sweep(fake_databricks, client, store, queue2, now=NOW + 5 * MIN)
    assert report.ok and {r.run_id for r in queue2} == {100 + i for i in range(30)}
    assert store.watermark(fake_databricks.url) == NOW - HOUR + 29 * MIN


def test_sweep_queue_failure_stops_and_watermark_stays_before_it(fake_databricks, client, store):
    for i in range(5):
        fake_databricks.load(run_doc(200 + i, NOW - 5 * HOUR + i * HOUR, NOW - 4 * HOUR + i * HOUR))
    queued = []

    def flaky(request):
        if request.run_id == 202:
            raise QueueError("queue down")
        queued.append(request.run_id)

    report = _sweep(fake_databricks, client, store, flaky)
    assert queued == [200, 201] and "could not queue run 202" in report.workspaces[0].error
    assert store.watermark(fake_databricks.url) == NOW - 3 * HOUR       # end of run 201, before run 202
    remembered = store.state_get(ACTIVE_KIND, fake_databricks.url).value["runs"]
    assert {"202", "203", "204"} <= set(remembered)
    # Much later, with the runs far outside the window, they are still found (runs/get).
    queue = Queue()
    report = _sweep(fake_databricks, client, store, queue, now=NOW + 6 * HOUR)
    assert report.ok and sorted(r.run_id for r in queue) == [202, 203, 204]


def test_sweep_finds_a_long_run_that_ended_after_leaving_the_window(fake_databricks, client, store):
    fake_databricks.load(run_doc(300, NOW - 5 * HOUR, 0, result=None, life="RUNNING"))
    fake_databricks.load(run_doc(301, NOW - 30 * MIN, NOW - 20 * MIN, result="SUCCESS"))
    assert _sweep(fake_databricks, client, store, Queue()).ok
    fake_databricks.finish_run(300, "FAILED", "boom")
    queue = Queue()
    report = _sweep(fake_databricks, client, store, queue, now=NOW + 5 * MIN)
    assert [r.run_id for r in queue] == [300] and report.workspaces[0].long_runs == 1
    assert [r.query["run_id"] for r in fake_databricks.requests_to("runs/get")] == ["300"]
    assert "300" not in store.state_get(ACTIVE_KIND, fake_databricks.url).value["runs"]


def _repaired_run(run_id, result, *, start, end):
    """A run the app repaired (repair 5); the repair ended ``result`` (None: still going)."""
    doc = run_doc(run_id, start, end, result=result, life="TERMINATED" if result else "RUNNING")
    repair_state = {"life_cycle_state": "TERMINATED", "result_state": result} if result else \
        {"life_cycle_state": "RUNNING"}
    doc["run"]["repair_history"] = [
        {"type": "ORIGINAL", "start_time": start, "end_time": start + MIN,
         "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}},
        {"type": "REPAIR", "id": 5, "start_time": NOW - 20 * MIN, "end_time": end if result else 0,
         "state": repair_state}]
    return doc


def _repaired_decision(fake, run_id, **kw):
    return DecisionRecord(decision_key=f"{run_id}-0", job_id="7", run_id=run_id, workspace=fake.url, mode="act",
                          status="acted", action="RETRY", action_result={"repair_id": 5},
                          created_at=NOW - 30 * MIN, **kw)


def test_sweep_queues_the_failed_repair_of_a_run_that_started_before_the_window(fake_databricks, client, store):
    store.set_watermark(fake_databricks.url, NOW - 10 * MIN)
    fake_databricks.load(_repaired_run(500, "FAILED", start=NOW - 5 * HOUR, end=NOW - 2 * MIN))
    store.claim(_repaired_decision(fake_databricks, 500))
    queue = Queue()
    report = _sweep(fake_databricks, client, store, queue)
    assert report.ok, report.errors
    assert [r.run_id for r in queue] == [500] and report.workspaces[0].long_runs == 1
    # Once attempt 1 is decided, the run is not read again.
    store.claim(DecisionRecord(decision_key="500-1", job_id="7", run_id=500, workspace=fake_databricks.url))
    fake_databricks.clear_requests()
    queue = Queue()
    assert _sweep(fake_databricks, client, store, queue, now=NOW + 5 * MIN).ok
    assert queue == [] and fake_databricks.requests_to("runs/get") == []


def test_sweep_remembers_a_repair_in_flight_and_skips_succeeded_or_foreign_ones(fake_databricks, client, store):
    store.set_watermark(fake_databricks.url, NOW - 10 * MIN)
    fake_databricks.load(_repaired_run(510, None, start=NOW - 5 * HOUR, end=0))
    fake_databricks.load(_repaired_run(511, "SUCCESS", start=NOW - 5 * HOUR, end=NOW - 2 * MIN))
    fake_databricks.load(_repaired_run(512, "FAILED", start=NOW - 5 * HOUR, end=NOW - 2 * MIN))
    store.claim(_repaired_decision(fake_databricks, 510))
    store.claim(_repaired_decision(fake_databricks, 511, outcome={"result": "succeeded", "final": True}))
    other = _repaired_decision(fake_databricks, 512)
    other.workspace = "https://adb-42.1.azuredatabricks.net"
    store.claim(other)
    queue = Queue()
    assert _sweep(fake_databricks, client, store, queue).ok
    assert queue == []
    read = {r.query["run_id"] for r in fake_databricks.requests_to("runs/get")}
    assert "510" in read and not read & {"511", "512"}
    assert "510" in store.state_get(ACTIVE_KIND, fake_databricks.url).value["runs"]


def test_sweep_waits_for_a_repair_in_flight_even_if_the_run_state_says_failed(fake_databricks, client, store):
    store.set_watermark(fake_databricks.url, NOW - 10 * MIN)
    doc = _repaired_run(520, None, start=NOW - 5 * HOUR, end=0)
    doc["run"]["state"] = {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}   # lags the repair
    fake_databricks.load(doc)
    store.state_put(ACTIVE_KIND, fake_databricks.url, {"runs": {"520": NOW - 5 * HOUR}})
    queue = Queue()
    assert _sweep(fake_databricks, client, store, queue).ok
    assert queue == [] and "520" in store.state_get(ACTIVE_KIND, fake_databricks.url).value["runs"]
    fake_databricks.finish_run(520, "FAILED", "failed again")
    assert _sweep(fake_databricks, client, store, queue, now=NOW + 5 * MIN).ok
    assert [r.run_id for r in queue] == [520]


def test_sweep_report_summary_and_dict(fake_databricks, client, store):
    fake_databricks.load(run_doc(400, NOW - HOUR, NOW - MIN))
    report = _sweep(fake_databricks, client, store, Queue())
    assert report.to_dict()["workspaces"][0]["enqueued"] == [400]
    assert "1 queued" in report.summary()


def test_sweep_carries_out_due_actions_of_its_workspace_only(fake_databricks, client, store):
    from shared.triage import triage_run
    from demo.workspace import FakeDatabricks
    from tests.helpers import corpus_doc

    doc = corpus_doc("dev-043")                     # a time-out: RETRY after a back-off
    doc.pop("history", None)
    run_id = fake_databricks.load(doc)
    settings = _settings(fake_databricks, TRIAGE_MODE="act")
    record = triage_run(run_id, settings, client=client, store=store, workspace=fake_databricks.url).record
    assert record.status == "decided" and record.not_before > 0
    with FakeDatabricks() as other, DatabricksClient(other.url, PatCredential(other.token)) as other_client:
        report = sweep(settings, clients_by_workspace={fake_databricks.url: client, other.url: other_client},
                       store=store, enqueue=Queue(), now_ms=record.not_before + 1000)
        assert other.requests_to("runs/get") == []          # never asked about the other workspace's run
    assert report.acted == 1 and report.ok, report.errors
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    assert store.get(record.decision_key, record.job_id).status == "acted"
