"""Fixtures and builders for the learning area (outcomes, feedback, report, fine-tuning export).

``learning_store`` is a decision store on each backend in turn: a SQLite file, and Table
Storage on Azurite (tables of this test only). ``decision(...)`` builds a ``DecisionRecord``
and ``failed_run(...)`` a failed run document for the fake workspace.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.store import DecisionRecord

JOB_ID = 4242


@pytest.fixture(params=["sqlite", "tables"])
def learning_store(request, tmp_path):
    """A fresh store, once per backend (SQLite, and Table Storage on Azurite)."""
    if request.param == "sqlite":
        from shared.store import SqliteStore

        store = SqliteStore(tmp_path / "learning.db")
    else:
        from shared.store import TablesStore

        azurite = request.getfixturevalue("azurite")
        store = TablesStore.from_connection_string(azurite.connection_string,
                                                   table_prefix=request.getfixturevalue("table_prefix"),
                                                   retry_total=1, retry_backoff_factor=0.1)
    store.check()
    try:
        yield store
    finally:
        store.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def decision(key: str = "1001-0", *, job_id: Any = JOB_ID, run_id: int | None = None, category: str = "NETWORK",
             action: str = "RETRY", mode: str = "act", status: str = "acted", fingerprint: str = "fp-net-1",
             excerpt: str = "java.net.ConnectException: Connection refused", created_at: int | None = None,
             **kw: Any) -> DecisionRecord:
    """A stored-decision record with sensible defaults (an acted NETWORK retry)."""
    if run_id is None:
        run_id = int(key.split("-")[0])
    kw.setdefault("decision", {"category": category, "action": action, "evidence": ["exception ConnectException"],
                               "failed_tasks": ["main"], "deciding_task": "main", "excerpt": excerpt,
                               "suggested_fix": "", "params": {}})
    return DecisionRecord(decision_key=key, job_id=str(job_id), run_id=run_id, category=category, action=action,
                          mode=mode, status=status, fingerprint=fingerprint, excerpt=excerpt,
                          created_at=now_ms() if created_at is None else created_at,
                          job_name=kw.pop("job_name", "nightly-etl"), **kw)


def failed_run(run_id: int, *, job_id: int | None = JOB_ID, end_time: int | None = None,
               trigger: str = "PERIODIC", message: str = "Connection refused") -> dict[str, Any]:
    """A failed one-task job run document (a snapshot) for the fake workspace."""
    end = now_ms() - 60_000 if end_time is None else end_time
    task_run = run_id * 10 + 1
    failed = {"life_cycle_state": "TERMINATED", "result_state": "FAILED", "state_message": message}
    run: dict[str, Any] = {
        "run_id": run_id, "run_name": "nightly-etl", "start_time": end - 300_000, "end_time": end,
        "trigger": trigger, "state": dict(failed),
        "status": {"state": "TERMINATED", "termination_details": {"code": "RUN_EXECUTION_ERROR",
                                                                   "type": "CLIENT_ERROR", "message": message}},
        "tasks": [{"run_id": task_run, "task_key": "main", "state": dict(failed),
                   "notebook_task": {"notebook_path": "/Repos/etl/main"},
                   "new_cluster": {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2",
                                   "num_workers": 2}}],
    }
    if job_id is not None:
        run["job_id"] = job_id
    return {
        "snapshot_version": 1,
        "run": run,
        "task_outputs": {str(task_run): {"error": message}},
        "job": {"job_id": job_id, "settings": {"name": "nightly-etl", "tags": {}}} if job_id is not None else None,
    }


@pytest.fixture(params=["sqlite", "tables"])
def app_storage(request, tmp_path):
    """(env, store): a TRIAGE_STORAGE setting on each backend in turn, and the store the app opens
    from it (Table Storage uses the default table names here: tests use unique decision keys)."""
    from shared.config import Settings
    from shared.store import open_store

    if request.param == "sqlite":
        env = {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 'app.db'}"}
    else:
        env = {"TRIAGE_STORAGE": request.getfixturevalue("azurite").connection_string}
    store = open_store(Settings.from_env(env), retry_total=1, retry_backoff_factor=0.1) \
        if request.param == "tables" else open_store(Settings.from_env(env))
    try:
        yield env, store
    finally:
        store.close()


def unique_key() -> str:
    """A decision key no other test uses ('<run_id>-0')."""
    import uuid

    return f"{uuid.uuid4().int % 10**12}-0"
