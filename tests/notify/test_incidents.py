"""Incident grouping state: exactly once across workers on both store backends (SQLite and Table
Storage on Azurite), causes recognised, the entry bounded."""

from __future__ import annotations

import threading

import pytest

from shared.config import Settings
from shared.models import Action, Category, Decision
from shared.notify import incidents
from shared.snapshot import parse_snapshot
from shared.store._sqlite import SqliteStore
from demo.workspace import make_snapshot


def test_workers_joining_at_once_make_one_incident(learning_store):
    settings = Settings.from_env({})
    cause = incidents.Cause("storage-503:lake.dfs.core.windows.net", "storage account lake answering 503")
    results, errors = [], []
    barrier = threading.Barrier(6)

    def worker(i):
        try:
            barrier.wait()
            results.append(incidents.join(learning_store, settings, cause, job_id=str(i), job_name=f"job-{i}",
                                          run_id=100 + i, decision_key=f"{100 + i}-3", action="ESCALATE",
                                          now_ms=5_000_000 + i))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.dedup_key for r in results}) == 1 and sum(r.opened for r in results) == 1
    final = incidents.get(learning_store, cause.key)
    assert final.count == 6 and sorted(j["name"] for j in final.jobs) == [f"job-{i}" for i in range(6)]
    # every job recovers, from two workers at once: exactly one of them resolves it
    resolved = []
    for i in range(5):
        incidents.mark_recovered(learning_store, settings, cause.key, job_id=str(i), decision_key=f"{100 + i}-3",
                                 now_ms=6_000_000)

    def last(_):
        resolved.append(incidents.mark_recovered(learning_store, settings, cause.key, job_id="5", decision_key="105-3",
                                                 now_ms=6_000_001).resolved_now)

    ts = [threading.Thread(target=last, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(resolved) == [False, True]
    # a failure after the incident resolved opens a new one
    again = incidents.join(learning_store, settings, cause, job_id="1", job_name="job-1", run_id=200, decision_key="200-0",
                           action="ESCALATE", now_ms=6_000_100)
    assert again.opened and again.generation == 2 and again.dedup_key != final.dedup_key


def test_many_jobs_keep_the_entry_small(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    settings = Settings.from_env({})
    cause = incidents.Cause("fp:x", "the same failure")
    for i in range(150):
        inc = incidents.join(store, settings, cause, job_id=str(i), job_name="n" * 300, run_id=i,
                             decision_key="k" * 200, action="ESCALATE", now_ms=1000 + i)
    assert inc.count == 150 and len(inc.jobs) == 60
    import json
    assert len(json.dumps(store.state_get(incidents.KIND, cause.key).value)) < 20_000
    store.close()


@pytest.mark.parametrize("error,category,key", [
    ("Operation failed: \"The server is busy.\", 503, PUT, https://lake01.dfs.core.windows.net/a, ServerBusy",
     Category.NETWORK, "storage-503:lake01.dfs.core.windows.net"),
    ("Cluster launch failed: AZURE_QUOTA_EXCEEDED_EXCEPTION: exceeding approved Total Regional Cores quota",
     Category.INFRASTRUCTURE, "quota:adb-0000000000000000.0.azuredatabricks.net:AZURE_QUOTA_EXCEEDED_EXCEPTION"),
    ("org.apache.hadoop.hive.ql.metadata.HiveException: java.lang.RuntimeException: Unable to instantiate "
     "org.apache.hadoop.hive.ql.metadata.SessionHiveMetaStoreClient", Category.INFRASTRUCTURE,
     "metastore:adb-0000000000000000.0.azuredatabricks.net"),
    ("DBFS_COMPONENT_UNHEALTHY: DBFS is unavailable", Category.INFRASTRUCTURE,
     "dbfs:adb-0000000000000000.0.azuredatabricks.net"),
])
def test_infrastructure_causes(error, category, key):
    snap = parse_snapshot(make_snapshot(error=error))
    decision = Decision(category=category, action=Action.ESCALATE, confidence=0.9, decided_by="rules", reason="",
                        excerpt=error, fingerprint="fp")
    assert incidents.cause_of(snap, decision).key == key


def test_a_code_error_naming_a_storage_host_is_not_an_outage():
    error = "[TABLE_OR_VIEW_NOT_FOUND] abfss://raw@lake01.dfs.core.windows.net/x 503 rows"
    snap = parse_snapshot(make_snapshot(error=error))
    decision = Decision(category=Category.DATA, action=Action.SEND_EMAIL, confidence=0.9, decided_by="rules",
                        reason="", excerpt=error, fingerprint="fp-data")
    assert incidents.cause_of(snap, decision).key.startswith("fp:")
    hive_table = "[TABLE_OR_VIEW_NOT_FOUND] The table `hive_metastore`.`db`.`t` cannot be found"
    decision = Decision(category=Category.UNKNOWN, action=Action.ESCALATE, confidence=0.3, decided_by="rules",
                        reason="", excerpt=hive_table, fingerprint="fp-u")
    assert incidents.cause_of(parse_snapshot(make_snapshot(error=hive_table)), decision).key.startswith("fp:")
