"""The crash matrix at the store-write boundaries: nothing lost, nothing done twice.

A real worker (``python -m shared triage --run-id N``, act mode) is killed with SIGKILL at each
boundary of its writes to the decision store, on SQLite and on Azurite:

- ``claimed``: the ``decided`` record is written; the ``acting`` write has not taken effect;
- ``acting``: the ``acting`` write took effect, and nothing after it (no Databricks call, no
  notification);
- ``final``: the action took effect (Databricks carried the repair or submit out, or the
  webhook delivered the notification); the final update of the record has not.

for a repair (dev-043, TIMEOUT -> RETRY), a resized rerun (dev-055, RESOURCE ->
RETRY_WITH_NEW_PARAMS, a ``runs/submit``) and a notification (dev-015, DATA ->
SEND_EMAIL through the signed-webhook channel). Then the message is delivered again (the same
command) and the sweeps run (``sweep_later``): exactly one Databricks write per decision (none
for the notification), the record terminal (``acted``) and knowing its id, and exactly one
delivery on the webhook stand-in.

How a boundary is made observable from outside, with no hook in the product:

- SQLite: a trigger installed in the store's file (``tests/fakes/sqlite_stall.py``) makes the
  worker spin inside the transaction of the write meant, which never commits.
- Azurite: the worker's ``TableEndpoint`` is a loopback proxy (``tests/fakes/table_proxy.py``)
  that holds the write meant, before forwarding it (not taken effect) or after (taken effect,
  the worker never hears).

On SQLite the ``acting`` boundary of a repair or submit is not in this file: nothing touches the
store between the ``acting`` commit and the Databricks request, so that point is the request
itself, held by the fake workspace in ``tests/test_crash_matrix.py`` (``before``). For the
notification it is the channel's claim of the message (its first write after ``acting``).

For the notification, one more point: the channel's claim of the message (its at-most-once
guard, ``sending``) took effect and the worker died before posting. The claim is not a delivery:
the decision stays undelivered (``failed``) until the claim is stale, then the sweep sends it.

What the code does and these tests pin: a kill after the lineage's retry count was written but
before the ``acting`` write took effect (``claimed``) counts that retry twice when the sweep
carries the action out: over-counted (a later retry is refused sooner), never under-counted.
The rerun's estimate is counted against the day's budget once per decision, at every point.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from tests.fakes.sqlite_stall import SqliteStall
from tests.fakes.table_proxy import TableProxy, TableRequest
from tests.plugins.crash import (
    CASES,
    crash_env,
    load_case,
    start_worker,
    sweep_later,
    writes_that_took_effect,
)

DECISIONS, STATE = "TriageDecisions", "TriageState"
FINAL = ("acted", "retrying", "escalated", "failed", "duplicate")


# --- the two ways of stopping a worker at a store write --------------------------------------------

@dataclass
class SqliteBoundary:
    """The worker spins in the write meant (a trigger in the store's file)."""

    path: Path
    storage: str

    def __post_init__(self) -> None:
        from shared.store import SqliteStore

        store = SqliteStore(self.path)       # the tables must exist before a trigger can name them
        store.check()
        store.close()
        self.stall = SqliteStall(self.path)

    def arm(self, point: str, kind: str) -> None:
        new, old = "json_extract(NEW.entity, '$.status')", "json_extract(OLD.entity, '$.status')"
        if point == "claimed":
            self.stall.arm(DECISIONS, "UPDATE", f"{old} = 'decided' AND {new} = 'acting'")
        elif point == "acting":       # the notification's first write: the channel's claim of the message
            assert kind == "email"
            self.stall.arm(STATE, "INSERT", "NEW.PartitionKey = 'channel'")
        elif point == "channel":      # the write after that claim, before the post: joining the incident
            self.stall.arm(STATE, "INSERT", "NEW.PartitionKey = 'incident'")
        else:
            self.stall.arm(DECISIONS, "UPDATE", f"{old} = 'acting' AND {new} <> 'acting'")

    def wait(self, worker: Any) -> bool:
        return self.stall.wait_stalled(worker)

    def end(self) -> None:
        self.stall.disarm()


@dataclass
class AzuriteBoundary:
    """The worker's table requests go through a proxy that holds the write meant."""

    proxy: TableProxy
    storage: str

    def arm(self, point: str, kind: str) -> None:
        if point == "channel":        # the channel's claim of the message took effect, unheard
            self.proxy.hold(lambda req: req.method == "POST" and req.table == STATE
                            and req.entity.get("PartitionKey") == "channel", forwarded=True)
            return
        wanted: Callable[[str], bool] = (lambda s: s == "acting") if point in ("claimed", "acting") \
            else (lambda s: s in FINAL)

        def match(req: TableRequest) -> bool:
            return (req.method in ("PUT", "MERGE", "PATCH") and req.table == DECISIONS
                    and wanted(str(req.entity.get("status"))))

        self.proxy.hold(match, forwarded=point == "acting")

    def wait(self, worker: Any) -> bool:
        return self.proxy.holding.wait(60)

    def end(self) -> None:
        self.proxy.release.set()


@pytest.fixture
def boundary(request, backend, tmp_path):
    """Where the worker is stopped: a SQLite file with the stall trigger, or Azurite behind the proxy."""
    if backend == "sqlite":
        path = tmp_path / "triage.db"
        yield SqliteBoundary(path, f"sqlite:///{path}")
        return
    azurite = request.getfixturevalue("azurite")
    proxy = TableProxy(azurite.endpoint("table")).start()
    try:
        yield AzuriteBoundary(proxy, proxy.connection_string(azurite.connection_string))
    finally:
        proxy.stop()


# On SQLite nothing touches the store between the acting commit and a repair's or submit's
# request: that point is the request itself (tests/test_crash_matrix.py, ``before``).
MATRIX = [(backend, point, kind) for backend in ("sqlite", "azurite") for point in ("claimed", "acting", "final")
          for kind in ("repair", "submit", "email")
          if not (backend == "sqlite" and point == "acting" and kind != "email")]


def _kill_at(boundary: SqliteBoundary | AzuriteBoundary, point: str, kind: str, env: dict[str, str],
             run_id: int) -> None:
    """Start the worker, wait until it is stopped at the boundary, kill it, then end the stop."""
    boundary.arm(point, kind)
    worker = start_worker(env, run_id)
    try:
        assert boundary.wait(worker), worker.communicate(timeout=5)
        worker.send_signal(signal.SIGKILL)                     # the worker dies at the store write
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        boundary.end()
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def _deliver_again(env: dict[str, str], run_id: int) -> None:
    """The queue delivers the message again: the same command, which sends nothing."""
    again = start_worker(env, run_id)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "already decided" in out or "repair in progress" in out, out


@pytest.fixture
def reader(boundary):
    """The test's own view of the store the worker uses (one connection for the whole test)."""
    from shared.store import open_store

    with open_store(Settings.from_env({"TRIAGE_STORAGE": boundary.storage}), check=False) as store:
        yield store


def _counts(store: Any, rec: Any) -> tuple[int, float | None, float]:
    """The lineage's retry count, the spend marker of the decision, and the day's spend of its job."""
    from shared.databricks.budget import SPENT_KIND
    from shared.store.spend import day_of, spent

    marker = store.state_get(SPENT_KIND, rec.decision_key)
    days = {day_of(rec.created_at), day_of()}
    return (store.retries(rec.lineage or str(rec.run_id)), marker.value.get("usd") if marker else None,
            sum(spent(store, day=d, job_id=rec.job_id) for d in days))


def _sweep_at(env: dict[str, str], minutes: int) -> None:
    """A sweep ``minutes`` from now whose channels read the clock moved on as well (a channel's
    claim of a message is dated by the channel's own clock)."""
    import time

    from shared.app.runtime import open_runtime
    from shared.notify.routing import RoutedNotifier, build_channels
    from shared.store import now_ms
    from shared.triage import act_due, retry_notifications

    settings = Settings.from_env(dict(env))
    with open_runtime(settings) as rt:
        later = RoutedNotifier(settings, build_channels(settings, rt.secrets, store=rt.store,
                                                        clock=lambda: time.time() + minutes * 60))
        now = now_ms() + minutes * 60_000
        act_due(settings, client=rt.client(), store=rt.store, notifier=later, now=now)
        retry_notifications(settings, client=rt.client(), store=rt.store, notifier=later, now=now)


# --- the matrix ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend,point,kind", MATRIX, ids=["-".join(m) for m in MATRIX])
def test_worker_killed_at_a_store_write_ends_terminal_once(fake_databricks, channels, boundary, reader, backend, kind,
                                                           point):
    env = crash_env(fake_databricks, boundary.storage, channels)
    run_id = load_case(fake_databricks, CASES[kind])
    sends = kind != "email"
    delivered = lambda: len(channels.to(channels.hook_path, accepted_only=True))

    _kill_at(boundary, point, kind, env, run_id)

    rec = reader.get(f"{run_id}-0")                            # what the dead worker left
    assert rec is not None and rec.mode == "act"
    assert rec.status == ("decided" if point == "claimed" else "acting"), rec.to_dict()
    took_effect = point == "final"
    if sends:
        assert writes_that_took_effect(fake_databricks, kind) == int(took_effect)
    else:
        assert fake_databricks.writes == [] and delivered() == int(took_effect)

    _deliver_again(env, run_id)
    if sends:
        assert writes_that_took_effect(fake_databricks, kind) == int(took_effect)
    assert delivered() == (0 if sends else int(took_effect))

    sweep_later(env)

    rec = reader.get(f"{run_id}-0")
    assert rec.status == "acted", rec.to_dict()
    if kind == "repair":
        assert writes_that_took_effect(fake_databricks, kind) == 1
        assert rec.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    elif kind == "submit":
        assert writes_that_took_effect(fake_databricks, kind) == 1
        assert rec.action_result["run_id"] in fake_databricks.submitted
        tokens = {r.body["idempotency_token"] for r in fake_databricks.requests_to("runs/submit")}
        assert len(tokens) == 1
    else:
        assert fake_databricks.writes == []
        assert delivered() == 1, [s.body for s in channels.to(channels.hook_path)]
        assert rec.notification["status"] == "sent" and rec.notification["channel"] == "webhook"
    assert delivered() == (0 if sends else 1)                  # a retry tells nobody; an email exactly once

    retries, marker, spent = _counts(reader, rec)
    # The lineage's retry count is written before the acting write: a kill in between counts it twice.
    assert retries == ((2 if point == "claimed" else 1) if sends else 0)
    usd = ((rec.decision.get("cost") or {}).get("rerun") or {}).get("usd")
    if sends:                                                  # the rerun's estimate is spent once
        assert usd and marker == pytest.approx(usd), rec.decision
        if backend == "sqlite":                                # (on Azurite other tests share the job)
            assert spent == pytest.approx(usd)
    else:
        assert marker is None


@pytest.mark.parametrize("backend", ["sqlite", "azurite"])
def test_worker_killed_after_the_channel_claimed_the_message_a_person_is_still_told(fake_databricks, channels,
                                                                                    boundary, reader):
    """The webhook channel claimed the message (its at-most-once guard, ``sending``) and the
    worker died before posting it. The claim is not a delivery: the decision waits undelivered
    (``failed``, counted by health) while the claim is fresh, and once it is stale the sweep takes
    it over and sends the message, once."""
    from shared.app.lifecycle import undelivered

    env = crash_env(fake_databricks, boundary.storage, channels)
    run_id = load_case(fake_databricks, CASES["email"])
    delivered = lambda: len(channels.to(channels.hook_path, accepted_only=True))

    _kill_at(boundary, "channel", "email", env, run_id)
    assert reader.get(f"{run_id}-0").status == "acting" and delivered() == 0
    _deliver_again(env, run_id)
    sweep_later(env)                                           # 2 and 5 minutes on: the claim is fresh

    rec = reader.get(f"{run_id}-0")
    assert delivered() == 0
    assert rec.status == "failed" and undelivered(rec), rec.to_dict()    # not "acted" with nobody told

    _sweep_at(env, 15)                                         # the claim is stale: taken over, sent
    rec = reader.get(f"{run_id}-0")
    assert rec.status == "acted" and rec.notification["status"] == "sent", rec.to_dict()
    assert delivered() == 1
    assert fake_databricks.writes == []
