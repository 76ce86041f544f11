"""The crash matrix at the store-write boundaries: nothing lost, nothing done twice.

A real worker (``python -m shared triage --run-id N``, act mode) is killed with SIGKILL at each
boundary of its writes to the decision store, on SQLite and on Azurite:

- ``claimed``: the ``decided`` record is written; the ``acting`` write has not taken effect;
- ``acting``: the ``acting`` write took effect, and nothing after it (no Databricks call, no
  notification);
- ``final``: the action took effect (Databricks carried the repair or submit out, or the
  webhook delivered the notification); the final update of the record has not.

for a repair (dev-043, TIMEOUT -> RETRY), a resized rerun (dev-055, RESOURCE ->
RETRY_WITH_NEW_PARAMS, a ``runs/submit``) and a notification (dev-015, PERMISSION ->
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

What the code does and these tests pin: a kill after the lineage's retry count was written but
before the ``acting`` write took effect (``claimed``) counts that retry twice when the sweep
carries the action out: over-counted (a later retry is refused sooner), never under-counted.
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
    stored_record,
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
        else:
            self.stall.arm(DECISIONS, "UPDATE", f"{old} = 'acting' AND {new} <> 'acting'")

    def wait(self, worker: Any) -> bool:
        return self.stall.wait_stalled(worker.pid)

    def end(self) -> None:
        self.stall.disarm()


@dataclass
class AzuriteBoundary:
    """The worker's table requests go through a proxy that holds the write meant."""

    proxy: TableProxy
    storage: str

    def arm(self, point: str, kind: str) -> None:
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


def _lineage_retries(env: dict[str, str], lineage: str) -> int:
    from shared.store import open_store

    with open_store(Settings.from_env(env)) as store:
        return store.retries(lineage)


# --- the matrix ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend,point,kind", MATRIX, ids=["-".join(m) for m in MATRIX])
def test_worker_killed_at_a_store_write_ends_terminal_once(fake_databricks, channels, boundary, kind, point):
    env = crash_env(fake_databricks, boundary.storage, channels)
    run_id = load_case(fake_databricks, CASES[kind])
    sends = kind != "email"
    delivered = lambda: len(channels.to(channels.hook_path, accepted_only=True))

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

    rec = stored_record(env, run_id)                           # what the dead worker left
    assert rec is not None and rec.mode == "act"
    assert rec.status == ("decided" if point == "claimed" else "acting"), rec.to_dict()
    took_effect = point == "final"
    if sends:
        assert writes_that_took_effect(fake_databricks, kind) == int(took_effect)
    else:
        assert fake_databricks.writes == [] and delivered() == int(took_effect)

    again = start_worker(env, run_id)                          # the queue delivers the message again
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "already decided" in out or "repair in progress" in out, out     # and nothing is sent
    if sends:
        assert writes_that_took_effect(fake_databricks, kind) == int(took_effect)
    assert delivered() == (0 if sends else int(took_effect))

    sweep_later(env)

    rec = stored_record(env, run_id)
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
    # The lineage's retry count: written before the acting write, so a kill in between counts twice.
    expected = (2 if point == "claimed" else 1) if sends else 0
    assert _lineage_retries(env, rec.lineage or str(rec.run_id)) == expected
