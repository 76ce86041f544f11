"""What shadow mode costs in Databricks calls: 40 failures found and decided by a sweep, then a day of
sweeps (every 5 minutes for an hour, hourly after) on a moved clock. Capture included, the sweep's and
the outcome checks' runs/list pages aside, a failure must cost at most 8 calls over its first day."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from demo.workspace import API
from shared.config import Settings
from shared.app.sweep import is_failed_run, sweep
from shared.triage import triage_run

VALIDATION = Path(__file__).parents[1] / "corpus" / "validation"
MIN = 60_000
HOUR = 60 * MIN
BUDGET_PER_FAILURE = 8


def _load_failures(fake, count: int, now: int) -> list[int]:
    run_ids: list[int] = []
    for path in sorted(VALIDATION.glob("*.json")):
        doc = json.loads(path.read_text())
        if not is_failed_run(doc["run"]):
            continue                                      # a cancellation: no jobs.on_failure
        if len(run_ids) == count:
            break
        i = len(run_ids)
        doc.pop("history", None)
        run = doc["run"]
        run["run_id"] = 7_000_000 + i                     # unique, whatever the corpus says
        run.pop("repair_history", None)
        run["start_time"] = now - 50 * MIN + i * 10_000
        run["end_time"] = now - 40 * MIN + i * 10_000
        fake.load(doc)
        run_ids.append(run["run_id"])
    return run_ids


def _person_repairs(fake, run_id: int) -> None:
    """Someone repairs the run from the UI (not through the app's client), and it works."""
    fake.handle("POST", API + "runs/repair", {}, {"run_id": run_id, "rerun_all_failed_tasks": True})
    fake.finish_run(run_id, "SUCCESS")


def _person_runs_job(fake, job_id: int) -> None:
    new = fake.handle("POST", API + "run-now", {}, {"job_id": job_id})
    fake.finish_run(int(new["run_id"]), "SUCCESS")


def test_a_day_of_shadow_sweeps_costs_at_most_8_calls_per_failure(fake_databricks, client, store):
    now = int(time.time() * 1000)
    run_ids = _load_failures(fake_databricks, 40, now)
    assert len(run_ids) == 40
    settings = Settings.from_env({"DATABRICKS_HOST": fake_databricks.url, "TRIAGE_MODE": "shadow"})

    def triage_inline(request) -> None:
        triage_run(request.run_id, settings, client=client, store=store, workspace=fake_databricks.url,
                   use_llm=False)

    def one_sweep(at: int):
        report = sweep(settings, clients_by_workspace={fake_databricks.url: client}, store=store,
                       enqueue=triage_inline, now_ms=at)
        assert report.ok, report.errors
        return report

    first = one_sweep(now)
    decided = store.list(since_ms=now - HOUR)
    assert sorted(first.enqueued) == run_ids and len(decided) == 40

    # People react to some failures: three repairs, two new runs of the job.
    for run_id in run_ids[:3]:
        _person_repairs(fake_databricks, run_id)
    jobs = [r.job_id for r in decided if r.job_id.isdigit() and int(r.run_id) not in run_ids[:3]][:2]
    for job_id in jobs:
        _person_runs_job(fake_databricks, int(job_id))

    written = 0
    times = [now + k * 5 * MIN for k in range(1, 13)] + [now + h * HOUR for h in range(2, 26)]
    for at in times:
        written += one_sweep(at).outcomes

    calls = Counter(r.path.rsplit("/api/2.2/jobs/", 1)[-1] for r in fake_databricks.requests)
    lists = calls.pop("runs/list", 0)
    per_failure = sum(calls.values()) / 40
    print(f"{per_failure:.2f} calls per failure: {dict(calls)}; runs/list pages: {lists}")
    assert per_failure <= BUDGET_PER_FAILURE, (per_failure, dict(calls), lists)
    assert not any(p in calls for p in ("runs/repair", "runs/submit", "run-now"))    # shadow: nothing sent

    records = store.list(since_ms=now - HOUR)
    checked = [r for r in records if r.action != "IGNORE"]
    assert checked and all(r.outcome.get("final") for r in checked)      # every outcome closed in the day
    repaired = {r.run_id: r.outcome for r in records if r.run_id in run_ids[:3] and r.action != "IGNORE"}
    assert all(o["human_action"] == "repair" and o["human_result"] == "succeeded" for o in repaired.values())
    assert any(r.outcome.get("human_action") == "new_run" for r in checked) or not jobs
    # a row is written only when the outcome changed: at most "pending" then "final" per decision
    assert written <= 2 * len(checked), written
