"""Cost and load, side by side: Databricks calls per failure over its first day (shadow and act),
store operations per run, first-invocation and warm latency of the worker, one sweep over 3,000
pending decisions, and the monthly cost model at 50,000 runs a day against the seed design.

Everything runs against the stand-in workspace (``demo.workspace.FakeDatabricks``, real HTTP on
loopback) and a SQLite store, through the production sweep, pipeline and worker. Counts do not
vary between runs; times do a little.

Run: ``make bench`` (or ``.venv/bin/python -m benchmarks.cost``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus" / "dev"
MIN = 60_000
HOUR = 60 * MIN
# The day of sweeps: every 5 minutes for an hour, then hourly, and one past the last check.
SWEEPS = [k * 5 * MIN for k in range(1, 13)] + [h * HOUR for h in range(2, 26)]


# --- Databricks calls per failure over its first day ----------------------------------------------

def _failures(fake: Any, now: int, limit: int = 40) -> list[int]:
    from shared.app.sweep import is_failed_run

    ids = []
    for path in sorted(CORPUS.glob("*.json")):
        doc = json.loads(path.read_text())
        if not is_failed_run(doc["run"]):
            continue
        doc.pop("history", None)
        run = doc["run"]
        run["run_id"] = 8_000_000 + len(ids)
        run.pop("repair_history", None)
        run["start_time"] = now - 50 * MIN + len(ids) * 10_000
        run["end_time"] = now - 40 * MIN + len(ids) * 10_000
        fake.load(doc)
        ids.append(run["run_id"])
        if len(ids) == limit:
            break
    return ids


def day_of_calls(mode: str, failures: int = 40) -> dict[str, Any]:
    """40 dev-corpus failures found by a sweep and triaged in ``mode``, then a day of sweeps. In act
    mode every rerun the app starts succeeds a few minutes later."""
    from demo.workspace import FakeDatabricks

    from shared.app.sweep import sweep
    from shared.config import Settings
    from shared.databricks import DatabricksClient, PatCredential
    from shared.store import open_store
    from shared.triage import triage_run

    with tempfile.TemporaryDirectory() as tmp, FakeDatabricks() as fake:
        settings = Settings.from_env({"DATABRICKS_HOST": fake.url, "TRIAGE_MODE": mode,
                                      "TRIAGE_STORAGE": f"sqlite:///{tmp}/c.db"})
        now = int(time.time() * 1000)
        run_ids = _failures(fake, now, failures)
        with open_store(settings) as store, DatabricksClient(fake.url, PatCredential(fake.token)) as client:
            def inline(request: Any) -> None:
                triage_run(request.run_id, settings, client=client, store=store, workspace=fake.url,
                           use_llm=False)

            def one(at: int) -> Any:
                return sweep(settings, clients_by_workspace={fake.url: client}, store=store, enqueue=inline,
                             now_ms=at)

            one(now)
            written = 0
            for offset in SWEEPS:
                if mode == "act":           # the reruns the app started end, successfully
                    for run_id in [*run_ids, *fake.submitted]:
                        run = fake.run(run_id)
                        if (run.get("state") or {}).get("life_cycle_state") in ("RUNNING", "PENDING", "QUEUED"):
                            fake.finish_run(run_id, "SUCCESS")
                written += one(now + offset).outcomes
            records = store.list(since_ms=now - HOUR)
    calls = Counter(r.path.rsplit("/api/2.2/jobs/", 1)[-1] for r in fake.requests)
    lists = calls.pop("runs/list", 0)
    actions = sum(calls.pop(p, 0) for p in ("runs/repair", "runs/submit", "run-now", "update"))
    return {"mode": mode, "failures": len(run_ids), "calls": dict(calls), "actions": actions,
            "per_failure": (sum(calls.values()) + actions) / len(run_ids), "list_pages": lists,
            "list_pages_per_sweep": lists / (len(SWEEPS) + 1), "outcome_writes": written,
            "decisions": Counter(r.action for r in records)}


# --- store operations per run ---------------------------------------------------------------------

def store_ops(mode: str) -> dict[str, Any]:
    from demo.workspace import FakeDatabricks

    from shared.config import Settings
    from shared.databricks import DatabricksClient, PatCredential
    from shared.store import open_store
    from shared.triage import triage_run

    ops: Counter[str] = Counter()

    class Counting:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            target = getattr(self._inner, name)
            if name in ("claim", "get", "update", "list", "state_get", "state_put") and callable(target):
                def counted(*a: Any, **k: Any) -> Any:
                    ops[name] += 1
                    return target(*a, **k)
                return counted
            return target

    runs = 0
    with tempfile.TemporaryDirectory() as tmp, FakeDatabricks() as fake:
        settings = Settings.from_env({"TRIAGE_MODE": mode, "TRIAGE_STORAGE": f"sqlite:///{tmp}/s.db"})
        with open_store(settings) as inner, DatabricksClient(fake.url, PatCredential(fake.token)) as client:
            store: Any = Counting(inner)
            for path in sorted(CORPUS.glob("*.json")):
                doc = json.loads(path.read_text())
                doc.pop("history", None)
                run_id = fake.load(doc)
                triage_run(run_id, settings, client=client, store=store, use_llm=False, act_now=True)
                runs += 1
    return {"mode": mode, "runs": runs, "per_run": sum(ops.values()) / runs,
            "ops": {k: round(v / runs, 2) for k, v in sorted(ops.items())}}


# --- worker latency: first invocation of a process, then warm -------------------------------------

_WORKER = r"""
import json, sys, time
t0 = time.perf_counter()
from shared.config import Settings
from shared.app.runtime import process_runtime
from shared.app.worker import process_message
from shared.app.messages import TriageRequest
settings = Settings.from_env()
ids = json.loads(sys.argv[1])
times = []
for i, run_id in enumerate(ids):
    body = TriageRequest(run_id=run_id, job_id=None, workspace=settings.databricks_host, source="bench",
                         request_id=f"b{i}").to_message()
    t = time.perf_counter()
    with process_runtime(settings) as rt:
        process_message(body, settings, runtime=rt)
    times.append(time.perf_counter() - t)
print(json.dumps({"import_s": 0, "first_s": times[0], "first_with_import_s": time.perf_counter() - t0 - sum(times[1:]),
                  "warm_s": times[1:]}))
"""


def worker_latency(count: int = 21) -> dict[str, float]:
    from demo.workspace import FakeDatabricks

    with tempfile.TemporaryDirectory() as tmp, FakeDatabricks() as fake:
        paths = sorted(CORPUS.glob("*.json"))[:count]
        ids = []
        for path in paths:
            doc = json.loads(path.read_text())
            doc.pop("history", None)
            ids.append(fake.load(doc))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "DATABRICKS_"))},
               "DATABRICKS_HOST": fake.url, "DATABRICKS_TOKEN": fake.token, "TRIAGE_MODE": "shadow",
               "TRIAGE_STORAGE": f"sqlite:///{tmp}/w.db"}
        out = subprocess.run([sys.executable, "-c", _WORKER, json.dumps(ids)], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {"first_ms": data["first_s"] * 1000, "first_with_import_ms": data["first_with_import_s"] * 1000,
            "warm_median_ms": statistics.median(data["warm_s"]) * 1000}


# --- one sweep over 3,000 pending decisions -------------------------------------------------------

def big_sweep(pending: int = 3000, jobs: int = 300) -> dict[str, float]:
    from demo.workspace import FakeDatabricks

    from shared.app.sweep import sweep
    from shared.config import Settings
    from shared.databricks import DatabricksClient, PatCredential
    from shared.learning.outcomes import failure_times
    from shared.store import DecisionRecord, open_store

    now = int(time.time() * 1000)
    with tempfile.TemporaryDirectory() as tmp, FakeDatabricks() as fake:
        settings = Settings.from_env({"DATABRICKS_HOST": fake.url, "TRIAGE_STORAGE": f"sqlite:///{tmp}/p.db",
                                      "TRIAGE_SWEEP_OVERLAP": "10m"})
        with open_store(settings) as store, DatabricksClient(fake.url, PatCredential(fake.token)) as client:
            failed = {"life_cycle_state": "TERMINATED", "result_state": "FAILED", "state_message": "boom"}
            for i in range(pending):
                run = {"run_id": 9_000_000 + i, "job_id": 100 + i % jobs, "run_name": "bench", "trigger": "PERIODIC",
                       "start_time": now - 20 * HOUR + i * 1000, "end_time": now - 20 * HOUR + i * 1000 + 60_000,
                       "state": dict(failed)}
                fake.load({"run": run})
                store.claim(DecisionRecord(
                    decision_key=f"{run['run_id']}-0", job_id=str(run["job_id"]), run_id=run["run_id"],
                    workspace=fake.url, category="NETWORK", action="RETRY", mode="shadow", status="decided",
                    decision={"run_times": failure_times(run)}, created_at=now - 2 * HOUR))
            store.set_watermark(fake.url, now - 5 * MIN)
            fake.clear_requests()
            start = time.perf_counter()
            report = sweep(settings, clients_by_workspace={fake.url: client}, store=store, enqueue=lambda r: None,
                           now_ms=now)   # every decision is due: its 1 h check time has just passed
            seconds = time.perf_counter() - start
            start = time.perf_counter()      # the next sweep, five minutes later: nothing is due
            sweep(settings, clients_by_workspace={fake.url: client}, store=store, enqueue=lambda r: None,
                  now_ms=now + 5 * MIN)
            idle = time.perf_counter() - start
    calls = Counter(r.path.rsplit("/api/2.2/jobs/", 1)[-1] for r in fake.requests)
    return {"pending": pending, "jobs": jobs, "seconds": seconds, "idle_seconds": idle,
            "outcomes_written": report.outcomes, "calls": dict(calls)}


# --- the monthly cost model -----------------------------------------------------------------------

RUNS_PER_DAY = 50_000
FAILING = 0.03
DAYS = 30
# Assumptions (list prices, rounded; change them here to model your own):
FUNCTIONS_USD_PER_GB_S = 0.000026          # Flex Consumption, on demand
FUNCTIONS_USD_PER_MILLION_EXECUTIONS = 0.40
INSTANCE_GB = 2.048                        # the instance memory size the app is deployed with
TABLE_USD_PER_10K_TRANSACTIONS = 0.00036   # Table Storage, LRS
QUEUE_USD_PER_10K_OPERATIONS = 0.0004
PROMPT_TOKENS, ANSWER_TOKENS = 1_120, 300  # measured prompt size; a short JSON answer
MODEL_CALLS_PER_100 = 14.5                 # make bench (model_veto): consult + retry veto, per 100 failures
EMAIL_SHARE = 0.6                          # seed design: one more model call per email (SEND_EMAIL/ESCALATE)
DATABRICKS_CALL_S = 0.15                   # one Jobs API round trip from Azure (loopback here is ~2 ms)
CHECKS_PER_DECISION = 4                    # outcome checks in a decision's first day (the back-off)


def cost_model(shadow: dict[str, Any], act: dict[str, Any], ops: dict[str, Any], big: dict[str, Any],
               worker_ms: float) -> list[tuple[str, str, str, str]]:
    from shared.config import Settings
    from shared.decide.budget import llm_call_cost, prices_of

    prices = prices_of(Settings())
    per_call = llm_call_cost({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": ANSWER_TOKENS}, prices)
    failures_day = RUNS_PER_DAY * FAILING
    failures = failures_day * DAYS
    sweeps = DAYS * 24 * 12
    # Functions bill the time an execution runs, waiting included. A sweep: its idle cost (measured
    # over 2 days of decisions, scaled to this volume) plus the decisions due at that sweep (each
    # decision is checked CHECKS_PER_DECISION times; measured per decision in the all-due sweep),
    # plus its runs/list pages' round trips. A worker: its warm time plus its Databricks round trips.
    pending = failures_day * 2
    per_due_s = max(0.0, big["seconds"] - big["idle_seconds"]) / big["pending"]
    due_per_sweep = failures_day * CHECKS_PER_DECISION / (24 * 12)
    pages_per_sweep = RUNS_PER_DAY / (24 * 12) / 25 + due_per_sweep      # workspace listing + a job listing
    sweep_s = big["idle_seconds"] * pending / big["pending"] + due_per_sweep * per_due_s \
        + pages_per_sweep * DATABRICKS_CALL_S

    def monthly(calls_per_failure: float) -> float:
        worker_s = worker_ms / 1000 + calls_per_failure * DATABRICKS_CALL_S
        gb_s = (sweeps * sweep_s + failures * worker_s) * INSTANCE_GB
        return gb_s * FUNCTIONS_USD_PER_GB_S + (failures + sweeps) / 1e6 * FUNCTIONS_USD_PER_MILLION_EXECUTIONS

    storage = failures * ops["per_run"] / 10_000 * TABLE_USD_PER_10K_TRANSACTIONS \
        + failures * 3 / 10_000 * QUEUE_USD_PER_10K_OPERATIONS
    ours_calls = failures * MODEL_CALLS_PER_100 / 100
    seed_calls = failures * (1 + EMAIL_SHARE)
    f_shadow, f_act = monthly(shadow["per_failure"]), monthly(act["per_failure"])
    return [
        ("failures", f"{failures:,.0f}", f"{failures:,.0f}", f"{failures:,.0f}"),
        ("Databricks calls (runs/list pages aside)", f"{failures * shadow['per_failure']:,.0f}",
         f"{failures * act['per_failure']:,.0f}", "-"),
        ("sweep busy time, seconds per 5 min", f"{sweep_s:.1f}", f"{sweep_s:.1f}", "-"),
        ("model calls", f"{ours_calls:,.0f}", f"{ours_calls:,.0f}", f"{seed_calls:,.0f}"),
        ("model $", f"${ours_calls * per_call:,.2f}", f"${ours_calls * per_call:,.2f}", f"${seed_calls * per_call:,.2f}"),
        ("Functions compute $", f"${f_shadow:,.2f}", f"${f_act:,.2f}", "-"),
        ("Table + queue $", f"${storage:,.2f}", f"${storage:,.2f}", "-"),
        ("total $ a month", f"${ours_calls * per_call + f_shadow + storage:,.2f}",
         f"${ours_calls * per_call + f_act + storage:,.2f}", f"${seed_calls * per_call:,.2f} (model alone)"),
    ]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    shadow, act = day_of_calls("shadow"), day_of_calls("act")
    ops_shadow, ops_act = store_ops("shadow"), store_ops("act")
    latency = worker_latency()
    big = big_sweep()
    print("Databricks calls per failure over its first day (capture + action + outcome checks; "
          "runs/list pages counted apart):")
    print(f"  {'':8s} {'per failure':>12s}  {'by endpoint':40s} {'runs/list pages':>16s} {'outcome writes':>15s}")
    for d in (shadow, act):
        ends = ", ".join(f"{k} {v}" for k, v in sorted(d["calls"].items())) + (f", actions {d['actions']}" if d["actions"] else "")
        print(f"  {d['mode']:8s} {d['per_failure']:12.2f}  {ends:40s} {d['list_pages']:9d} "
              f"({d['list_pages_per_sweep']:.1f}/sweep) {d['outcome_writes']:8d}")
    print(f"  ({shadow['failures']} dev-corpus failures found by a sweep, then sweeps every 5 min for 1 h and hourly "
          f"to 25 h; before the back-off the same replay cost 28.6 calls per failure in shadow mode)")
    print("Store operations per triaged run (76 dev failures, act_now):")
    for o in (ops_shadow, ops_act):
        print(f"  {o['mode']:8s} {o['per_run']:.2f}  {o['ops']}")
    print(f"Worker latency (one queue message, shadow, fake workspace): first invocation in a fresh process "
          f"{latency['first_ms']:.0f} ms ({latency['first_with_import_ms']:.0f} ms with imports), "
          f"warm median {latency['warm_median_ms']:.0f} ms")
    print(f"One sweep over {big['pending']:,} pending shadow decisions of {big['jobs']} jobs, all due: "
          f"{big['seconds']:.1f} s (target < 20 s); {big['outcomes_written']} outcome rows written; calls {big['calls']}; "
          f"the next sweep, nothing due: {big['idle_seconds']:.1f} s")
    rows = cost_model(shadow, act, ops_act, big, latency["warm_median_ms"])
    print(f"Monthly cost model: {RUNS_PER_DAY:,} runs/day, {FAILING:.0%} failing, {DAYS} days; ours vs the seed "
          f"design (one model call per failure plus one per email)")
    print(f"  {'':42s} {'ours, shadow':>14s} {'ours, act':>14s} {'seed design':>26s}")
    for name, sh, ac, seed in rows:
        print(f"  {name:42s} {sh:>14s} {ac:>14s} {seed:>26s}")
    print(f"  assumptions: model ${prices_of_text()} per 1M tokens (prompt, answer), {PROMPT_TOKENS} + {ANSWER_TOKENS} "
          f"tokens a call, {MODEL_CALLS_PER_100} calls per 100 failures (ours), {EMAIL_SHARE:.0%} of failures emailed; "
          f"Flex Consumption ${FUNCTIONS_USD_PER_GB_S}/GB-s and ${FUNCTIONS_USD_PER_MILLION_EXECUTIONS}/M executions "
          f"at {INSTANCE_GB} GB, free grants ignored; {DATABRICKS_CALL_S * 1000:.0f} ms per Databricks round trip; "
          f"a worker busy for its warm latency plus its round trips; a sweep busy for its measured idle time "
          f"(scaled to two days of decisions), its due checks ({CHECKS_PER_DECISION} per decision) and its "
          f"runs/list pages; Table Storage "
          f"${TABLE_USD_PER_10K_TRANSACTIONS}/10k transactions at the act-mode store operations per run; "
          f"Databricks API calls are not billed.")


def prices_of_text() -> str:
    from shared.config import Settings

    p_in, p_out = Settings().llm_price_usd_per_1m
    return f"{p_in:g}/{p_out:g}"


if __name__ == "__main__":
    main()
