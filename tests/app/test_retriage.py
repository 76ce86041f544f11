"""shared/app/retriage.py: a triage the queue gave up on during an outage is placed by a later sweep.

Real parts: the worker's own functions (``process_request`` as each queue delivery,
``process_poison`` as the poison trigger), the sweep, the fake workspace over HTTP with
``get-output`` down and back, the signed-webhook channel stand-in as the person's channel, and
the store on SQLite and on Azurite.
"""

from __future__ import annotations

import io
import json
import threading
import uuid

import pytest

from demo.workspace import status_fault
from shared.app.messages import TriageRequest
from shared.app.runtime import open_runtime
from shared.app.sweep import sweep
from shared.app.worker import process_poison, process_request
from shared.cli import main
from shared.config import Settings
from shared.errors import DatabricksUnavailable
from shared.store import DecisionRecord, now_ms
from tests.plugins.crash import crash_env, load_case

MIN = 60_000
DOWN = 200          # faults queued: "down until cleared"


@pytest.fixture
def env(fake_databricks, storage, channels):
    return crash_env(fake_databricks, storage, channels)


def _request(fake, run_id):
    job_id = fake.run(run_id).get("job_id")
    return TriageRequest(run_id=run_id, job_id=job_id, workspace=fake.url, request_id=uuid.uuid4().hex)


def _poisoned(fake, env, run_id):
    """get-output down: every delivery the queue allows fails, then the poison trigger escalates."""
    settings = Settings.from_env(env)
    fake.inject("runs/get-output", *[status_fault(503, retry_after=0) for _ in range(DOWN)])
    with open_runtime(settings) as rt:
        for attempt in range(1, 6):                                    # host.json maxDequeueCount
            with pytest.raises(DatabricksUnavailable):
                process_request(_request(fake, run_id), settings, runtime=rt, dequeue_count=attempt)
        outcome = process_poison(_request(fake, run_id).to_message(), settings, runtime=rt)
        process_poison(_request(fake, run_id).to_message(), settings, runtime=rt)   # delivered twice
    assert outcome.status == "escalated"
    return outcome.decision_key


def _sweep(fake, env, at):
    settings = Settings.from_env(env)
    with open_runtime(settings) as rt:
        return sweep(settings, clients_by_workspace={fake.url: rt.client()}, store=rt.store, enqueue=lambda r: None,
                     notifier=rt.notifier, now_ms=at)


def _get(env, key, job_id):
    with open_runtime(Settings.from_env(env)) as rt:
        return rt.store.get(key, str(job_id))


def _notices(channels, key):
    return [s.body["notice"] for s in channels.to(channels.hook_path, accepted_only=True) if s.body["id"] == key]


def _health(env):
    out = io.StringIO()
    code = main(["health", "--recount", "-o", "json"], env=env, stdout=out, stderr=io.StringIO())
    return code, json.loads(out.getvalue())


def test_outage_poisons_then_the_sweep_places_the_failure_as_an_approval(fake_databricks, env, channels):
    """dev-043 (TIMEOUT -> RETRY): escalated once, rescheduled while still down, placed after
    recovery as an approval request (nothing sent); approving with the CLI repairs exactly once."""
    run_id = load_case(fake_databricks, "dev-043")
    job_id = fake_databricks.run(run_id)["job_id"]
    key = _poisoned(fake_databricks, env, run_id)
    assert key == f"{run_id}-triage-failed" and len(_notices(channels, key)) == 1
    failed = _get(env, key, job_id)
    plan = failed.action_result["retriage"]
    assert failed.status == "acted" and plan["state"] == "waiting" and plan["attempts"] == 0
    assert "triages the run again" in failed.reason
    code, health = _health(env)
    assert code == 0 and health["lifecycle"]["awaiting_retriage"] >= 1        # visible, not stuck

    start = now_ms()
    _sweep(fake_databricks, env, start + 5 * MIN)                     # not due yet: nothing tried
    assert _get(env, key, job_id).action_result["retriage"]["attempts"] == 0
    report = _sweep(fake_databricks, env, start + 16 * MIN)           # due, still down: the next back-off
    plan = _get(env, key, job_id).action_result["retriage"]
    assert report.retriaged == 0 and plan["state"] == "waiting" and plan["attempts"] == 1
    assert "DatabricksUnavailable" in plan["last_error"]
    assert plan["next_at"] == start + 16 * MIN + 3600 * 1000
    assert _get(env, f"{run_id}-0", job_id) is None

    fake_databricks.clear_faults()
    _sweep(fake_databricks, env, start + 30 * MIN)                    # up again, but not due before 1 h
    assert _get(env, f"{run_id}-0", job_id) is None
    report = _sweep(fake_databricks, env, start + 80 * MIN)
    assert report.retriaged == 1
    placed = _get(env, f"{run_id}-0", job_id)
    assert placed.category == "TIMEOUT" and placed.action == "SEND_EMAIL"
    assert placed.decision["proposed_action"] == "RETRY" and placed.decision["approval"] == "pending"
    assert "triage of this run had failed and a person was paged" in placed.reason
    assert fake_databricks.writes == []                                # proposed, not sent
    [notice] = _notices(channels, f"{run_id}-0")
    assert notice["action"] == "SEND_EMAIL"
    plan = _get(env, key, job_id).action_result["retriage"]
    assert plan["state"] == "placed" and plan["placed_by"] == f"{run_id}-0" and plan["placed_at"] == start + 80 * MIN
    _sweep(fake_databricks, env, start + 200 * MIN)                   # later sweeps change nothing
    assert len(_notices(channels, f"{run_id}-0")) == 1 and fake_databricks.writes == []
    if env["TRIAGE_STORAGE"].startswith("sqlite"):                   # (Azurite is shared with other tests)
        assert _health(env)[1]["lifecycle"]["awaiting_retriage"] == 0

    out = io.StringIO()
    assert main(["approve", f"{run_id}-0", "--by", "oncall", "-o", "json"], env=env, stdout=out,
                stderr=io.StringIO()) == 0
    assert json.loads(out.getvalue())["acted"]
    assert len(fake_databricks.requests_to("runs/repair")) == 1 and len(fake_databricks.repairs) == 1
    shown = io.StringIO()
    assert main(["decisions", "show", key, "-o", "json"], env=env, stdout=shown, stderr=io.StringIO()) == 0
    assert f'"placed_by": "{run_id}-0"' in shown.getvalue()


def test_an_email_decision_is_placed_and_sent_once(fake_databricks, env, channels):
    run_id = load_case(fake_databricks, "dev-015")                   # DATA -> SEND_EMAIL (its label)
    job_id = fake_databricks.run(run_id)["job_id"]
    _poisoned(fake_databricks, env, run_id)
    fake_databricks.clear_faults()
    start = now_ms()
    for minutes in (16, 21, 90):
        _sweep(fake_databricks, env, start + minutes * MIN)
    placed = _get(env, f"{run_id}-0", job_id)
    assert placed.category == "DATA" and placed.action == "SEND_EMAIL" and placed.status == "acted"
    assert not placed.decision.get("proposed_action")
    assert [n["action"] for n in _notices(channels, f"{run_id}-0")] == ["SEND_EMAIL"]
    assert fake_databricks.writes == []


def test_a_run_repaired_by_hand_meanwhile_is_not_repaired_again(fake_databricks, env, channels, client):
    run_id = load_case(fake_databricks, "dev-043")
    job_id = fake_databricks.run(run_id)["job_id"]
    key = _poisoned(fake_databricks, env, run_id)
    fake_databricks.clear_faults()
    client.repair_run({"run_id": run_id, "rerun_all_failed_tasks": True})   # the paged person, by hand
    start = now_ms()
    _sweep(fake_databricks, env, start + 16 * MIN)                    # still running: tried again later
    plan = _get(env, key, job_id).action_result["retriage"]
    assert plan["state"] == "waiting" and plan["attempts"] == 1 and "repair in progress" in plan["note"]
    fake_databricks.finish_run(run_id, "SUCCESS")
    _sweep(fake_databricks, env, start + 80 * MIN)
    plan = _get(env, key, job_id).action_result["retriage"]
    assert plan["state"] == "settled"
    assert _get(env, f"{run_id}-0", job_id) is None and _get(env, f"{run_id}-1", job_id) is None
    assert len(fake_databricks.repairs) == 1                         # the person's, not ours
    _sweep(fake_databricks, env, start + 2000 * MIN)
    assert len(fake_databricks.repairs) == 1


def test_a_hand_repair_that_fails_again_is_decided_as_its_new_attempt(fake_databricks, env, channels, client):
    run_id = load_case(fake_databricks, "dev-043")
    job_id = fake_databricks.run(run_id)["job_id"]
    key = _poisoned(fake_databricks, env, run_id)
    fake_databricks.clear_faults()
    client.repair_run({"run_id": run_id, "rerun_all_failed_tasks": True})
    fake_databricks.finish_run(run_id, "TIMEDOUT")
    _sweep(fake_databricks, env, now_ms() + 16 * MIN)
    placed = _get(env, f"{run_id}-1", job_id)
    assert placed is not None and placed.decision.get("approval") == "pending"
    assert _get(env, key, job_id).action_result["retriage"]["placed_by"] == f"{run_id}-1"
    assert len(fake_databricks.repairs) == 1


def test_two_sweeps_at_the_same_time_place_it_once(fake_databricks, env, channels):
    run_id = load_case(fake_databricks, "dev-015")
    job_id = fake_databricks.run(run_id)["job_id"]
    key = _poisoned(fake_databricks, env, run_id)
    fake_databricks.clear_faults()
    at = now_ms() + 16 * MIN
    fake_databricks.clear_requests()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait(5)
            _sweep(fake_databricks, env, at)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    plan = _get(env, key, job_id).action_result["retriage"]
    assert plan["attempts"] == 1 and plan["state"] == "placed"
    assert len(_notices(channels, f"{run_id}-0")) == 1
    # only a triage reads task outputs (the other steps of a sweep read the run, not its outputs)
    failed_tasks = [t for t in fake_databricks.run(run_id)["tasks"] if t["state"].get("result_state") == "FAILED"]
    
    assert len(fake_databricks.requests_to("runs/get-output")) == len(failed_tasks)    # one triage, not two


def test_an_escalation_without_a_schedule_is_left_alone(fake_databricks, env, channels):
    """A -triage-failed record written before the schedule existed (or a permanent refusal the
    worker escalated at once) is not re-triaged: a person has it, and it cannot tell a passing
    failure from a permanent one. A schedule whose fields have the wrong shape is read as due
    (its state says waiting), not a crash."""
    old_id, odd_id = load_case(fake_databricks, "dev-043"), load_case(fake_databricks, "dev-015")
    settings = Settings.from_env(env)
    with open_runtime(settings) as rt:
        for run_id, result in ((old_id, {}), (odd_id, {"retriage": {"state": "waiting", "next_at": "soon",
                                                                    "attempts": [1], "until": "never"}})):
            rt.store.claim(DecisionRecord(decision_key=f"{run_id}-triage-failed", run_id=run_id, workspace=fake_databricks.url,
                                          job_id=str(fake_databricks.run(run_id)["job_id"]), action="ESCALATE",
                                          category="UNKNOWN", mode="act", status="acted", action_result=result))
    queued: list[TriageRequest] = []
    with open_runtime(settings) as rt:
        report = sweep(settings, clients_by_workspace={fake_databricks.url: rt.client()}, store=rt.store,
                       enqueue=queued.append, notifier=rt.notifier, now_ms=now_ms() + 16 * MIN)
    assert not {r.run_id for r in queued} & {old_id, odd_id} and report.retriaged == 1
    assert _get(env, f"{old_id}-0", fake_databricks.run(old_id)["job_id"]) is None
    old = _get(env, f"{old_id}-triage-failed", fake_databricks.run(old_id)["job_id"])
    assert old.action_result == {} and old.status == "acted"
    odd = _get(env, f"{odd_id}-triage-failed", fake_databricks.run(odd_id)["job_id"])
    assert odd.action_result["retriage"]["state"] == "placed" and odd.action_result["retriage"]["attempts"] == 1
    assert _get(env, f"{odd_id}-0", fake_databricks.run(odd_id)["job_id"]).action == "SEND_EMAIL"
    assert fake_databricks.writes == []


def test_the_back_off_while_databricks_stays_down_then_the_week_ends_it(fake_databricks, env, channels):
    """15 min, 1 h, 6 h, 24 h, then daily; an hour inside the sweep's week look-back it gives up
    (the escalation a person has stands) instead of slipping out of the sweep's sight."""
    run_id = load_case(fake_databricks, "dev-043")
    job_id = fake_databricks.run(run_id)["job_id"]
    key = _poisoned(fake_databricks, env, run_id)
    first = _get(env, key, job_id).action_result["retriage"]
    assert first["next_at"] - _get(env, key, job_id).created_at == pytest.approx(15 * MIN, abs=5000)
    gaps = []
    at = first["next_at"]
    for _ in range(5):
        fake_databricks.inject("runs/get-output", *[status_fault(503, retry_after=0) for _ in range(8)])
        _sweep(fake_databricks, env, at)
        plan = _get(env, key, job_id).action_result["retriage"]
        gaps.append((plan["next_at"] - at) // MIN)
        at = plan["next_at"]
    assert gaps == [60, 360, 1440, 1440, 1440]
    fake_databricks.clear_faults()
    _sweep(fake_databricks, env, first["until"])
    plan = _get(env, key, job_id).action_result["retriage"]
    assert plan["state"] == "given_up" and plan["attempts"] == 5 and "a week" in plan["note"]
    assert _get(env, f"{run_id}-0", job_id) is None and fake_databricks.writes == []
