"""Crash and fault matrices: nothing is lost, nothing is done twice.

**Crash matrix.** A real worker process (``python -m shared triage --run-id N --mode act``, the
worker's command-line twin: the same pipeline, client and store) is killed with SIGKILL at a
known point of its conversation with Databricks, on SQLite and on Azurite. The point is made
observable from outside, without any hook in the product: the fake workspace holds the action's
request (``hold_fault``) and sets ``holding``; the test kills the worker while it waits, then
lets the request end.

- ``before``: the repair (or resized rerun) request is in flight and Databricks has not carried
  it out (the worker dies after the record moved to ``acting``, before the call took effect);
- ``after``: Databricks carried it out, and the worker dies before the answer reached it (so
  before the final update).

Then the message is delivered again (the same command) and the sweeps run (``act_due``, with
the clock past ``TRIAGE_ACTING_TIMEOUT``). Every case must end with exactly one Databricks write
that took effect, the record terminal (``acted``) and knowing the id that proves it.

**Fault matrix.** 429, 5xx, time-outs and dropped connections on every call the pipeline makes
(``runs/get``, ``runs/get-output``, ``jobs/get``, ``runs/repair``, ``runs/submit``), through the
production client and the fake workspace: the failure is decided right once Databricks answers
again, the record ends terminal, and exactly one write takes effect.
"""

from __future__ import annotations


import pytest

from demo.workspace import drop_fault, hold_fault, slow_fault, status_fault
from shared.config import Settings
from shared.store import now_ms
from tests.plugins.crash import CASES, ENDPOINT, crash_env as _env, kill_while_held, load_case as _load, start_worker as _worker
from tests.plugins.crash import stored_record as _record, sweep_later as _sweep_later
from tests.plugins.crash import writes_that_took_effect as _writes_that_took_effect


@pytest.mark.parametrize("kind", ["repair", "submit"])
@pytest.mark.parametrize("point", ["before", "after"])
def test_worker_killed_mid_action_ends_with_exactly_one_write(fake_databricks, storage, channels, kind, point):
    env = _env(fake_databricks, storage, channels)
    run_id = _load(fake_databricks, CASES[kind])
    fake_databricks.inject(ENDPOINT[kind], hold_fault(processed=point == "after"))
    kill_while_held(fake_databricks, _worker(env, run_id))     # the worker dies mid-call
    rec = _record(env, run_id)
    assert rec.status == "acting"                              # what the dead worker left
    assert _writes_that_took_effect(fake_databricks, kind) == (1 if point == "after" else 0)

    again = _worker(env, run_id)                               # the queue delivers the message again
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "already decided" in out or "repair in progress" in out, out     # and nothing sent
    assert _writes_that_took_effect(fake_databricks, kind) == (1 if point == "after" else 0)
    _sweep_later(env)

    rec = _record(env, run_id)
    assert rec.status == "acted", rec.to_dict()
    assert _writes_that_took_effect(fake_databricks, kind) == 1
    if kind == "repair":
        assert rec.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    else:
        assert rec.action_result["run_id"] in fake_databricks.submitted
        tokens = {r.body["idempotency_token"] for r in fake_databricks.requests_to("runs/submit")}
        assert len(tokens) == 1


def test_channel_down_at_the_worker_the_sweep_still_tells_a_person(fake_databricks, tmp_path, channels):
    """The worker process finishes with the notification undelivered (the channel answers 503
    past its retries): the record is ``failed``, and a later sweep delivers it."""
    env = _env(fake_databricks, f"sqlite:///{tmp_path / 'triage.db'}", channels)
    run_id = _load(fake_databricks, "dev-015")                 # DATA (a missing table) -> SEND_EMAIL
    channels.inject(channels.hook_path, 503, 503, 503, 503, 503, 503, 503, 503)
    worker = _worker(env, run_id)
    out, err = worker.communicate(timeout=60)
    rec = _record(env, run_id)
    assert rec.action == "SEND_EMAIL" and rec.status == "failed", (out, err, rec.to_dict())
    channels._faults.clear()
    _sweep_later(env)
    rec = _record(env, run_id)
    assert rec.status == "acted" and rec.notification["status"] == "sent"
    assert fake_databricks.writes == []


# --- the fault matrix ------------------------------------------------------------------------------

FAULTS = {
    "429": lambda: status_fault(429, retry_after=0),
    "503": lambda: status_fault(503, retry_after=0),
    "500": lambda: status_fault(500),
    "timeout": lambda: slow_fault(1.0),
    "dropped": drop_fault,
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("call,kind", [("runs/get", "repair"), ("runs/get-output", "repair"), ("get", "repair"),
                                       ("runs/repair", "repair"), ("runs/submit", "submit")])
def test_fault_on_every_call_ends_terminal_with_one_write(fake_databricks, store, call, kind, fault):
    """The fault lasts longer than the client's own retries, then Databricks answers again:
    the queue's redelivery and the sweeps finish the work."""
    from shared.databricks import DatabricksClient, PatCredential, RetryPolicy
    from shared.errors import TriageError
    from shared.triage import act_due, triage_run

    class Told:
        def __init__(self):
            self.calls = []

        def notify(self, snapshot, decision, record):
            self.calls.append(decision.action.value)
            return {"status": "sent"}

    settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_MAX_WORKERS": "16"})
    run_id = _load(fake_databricks, CASES[kind])
    fake_databricks.inject(call, *[FAULTS[fault]() for _ in range(3)])
    policy = RetryPolicy(deadline_s=3, max_attempts=2, sleep=lambda s: None, jitter=False)
    notifier = Told()
    with DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token), retry=policy, timeout=0.5) as client:
        for _ in range(3):                                  # the queue delivers again after a failure
            try:
                result = triage_run(run_id, settings, client=client, store=store, notifier=notifier, act_now=True,
                                    use_llm=False)
                break
            except TriageError:
                continue
        else:
            pytest.fail("the triage never succeeded once Databricks answered again")
        for minutes in (3, 10, 30):
            act_due(settings, client=client, store=store, notifier=notifier, now=now_ms() + minutes * 60_000)
    rec = store.get(result.record.decision_key)
    expected = {"repair": "TIMEOUT", "submit": "RESOURCE"}[kind]
    assert rec.category == expected, rec.reason                # decided right, not blind
    assert rec.status == "acted", rec.to_dict()
    assert _writes_that_took_effect(fake_databricks, kind) == 1
    assert notifier.calls == []
