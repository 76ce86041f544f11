"""Every labelled failure replayed as a run lineage against the stand-in workspace.

Each corpus case (dev and every blind set) is served by the fake Jobs API and triaged in act mode.
When the triage retries (a repair, or a resized rerun), the stand-in plays the outcome the label
implies: a failure people must fix (label SEND_EMAIL or ESCALATE) fails again identically; a
transient one (label RETRY or RETRY_WITH_NEW_PARAMS) succeeds. The triage then decides about the new
attempt, as the webhook or the sweep would make it, until it stops retrying. Printed:

- wasted reruns per failure people must fix, and the most any one of them cost;
- reruns saved against the seed's policy (retry up to 3 times whatever happened before);
- the median (and 90th percentile) time until a person is told about a failure they must fix:
  each rerun costs its back-off (``shared.databricks.actions.backoff_seconds``) and the run's own
  duration from the snapshot;
- transient failures whose retry succeeded and were left alone (no second decision).
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
SEED_RETRIES = 3
MAX_ROUNDS = 12


def _duration_s(doc: dict) -> int:
    run = doc["run"]
    if run.get("run_duration"):
        return int(run["run_duration"]) // 1000
    if run.get("end_time") and run.get("start_time"):
        return max(0, int(run["end_time"]) - int(run["start_time"])) // 1000
    return 600


def _fail_again(fake, doc: dict, run_id: int) -> None:
    """The repaired attempt ends exactly as the first one did (state, codes, outputs)."""
    now = fake.run(run_id)
    run = copy.deepcopy(doc["run"])
    history = now.get("repair_history") or []
    for entry in history:
        if entry.get("type") == "REPAIR" and not entry.get("end_time"):
            entry["end_time"] = int(run.get("end_time") or 1)
            entry["state"] = copy.deepcopy(run.get("state") or {"life_cycle_state": "TERMINATED", "result_state": "FAILED"})
    run["repair_history"] = history
    fake.load({**doc, "run": run})


def _resubmitted(fake, doc: dict, new_run_id: int) -> None:
    """The resized one-time run fails like the original: same tasks, states and outputs."""
    submitted = fake.run(new_run_id)
    run = copy.deepcopy(doc["run"])
    run.pop("job_id", None)
    run["run_id"] = new_run_id
    run["run_name"] = submitted.get("run_name") or run.get("run_name")
    outputs = {}
    for i, task in enumerate(run.get("tasks") or []):
        old = task.get("run_id")
        task["run_id"] = new_run_id + 1 + i
        if str(old) in doc.get("task_outputs", {}):
            outputs[str(task["run_id"])] = doc["task_outputs"][str(old)]
    if not run.get("tasks") and str(doc["run"]["run_id"]) in doc.get("task_outputs", {}):
        outputs[str(new_run_id)] = doc["task_outputs"][str(doc["run"]["run_id"])]
    fake.load({**{k: v for k, v in doc.items() if k != "job"}, "run": run, "task_outputs": outputs})


def main() -> None:
    import logging

    logging.disable(logging.WARNING)   # expected refusals (clusters the stand-in does not know) are not news
    sys.path.insert(0, str(ROOT))
    from demo.workspace import FakeDatabricks

    from shared.config import Settings
    from shared.databricks import DatabricksClient, PatCredential
    from shared.databricks.actions import backoff_seconds
    from shared.notify import NullNotifier
    from shared.store import open_store
    from shared.triage import triage_run

    folders = [CORPUS / "dev", *sorted(p for p in CORPUS.glob("validation*") if p.is_dir())]
    must_fix = transient = 0
    wasted: list[int] = []
    told_s: list[int] = []
    seed_told_s: list[int] = []
    seed_reruns = 0
    transient_left_alone = transient_retried = 0
    with tempfile.TemporaryDirectory() as tmp, FakeDatabricks() as fake:
        settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_STORAGE": f"sqlite:///{tmp}/lineage.db",
                                      "TRIAGE_MAX_WORKERS": "64"})
        with open_store(settings) as store, DatabricksClient(fake.url, PatCredential(fake.token)) as client:
            for folder in folders:
                for path in sorted(folder.glob("*.json")):
                    doc = json.loads(path.read_text())
                    label = doc.pop("expected")["action"]
                    if label == "IGNORE":
                        continue
                    prior = int((doc.pop("history", None) or {}).get("prior_retries") or 0)
                    people = label in ("SEND_EMAIL", "ESCALATE")
                    must_fix += people
                    transient += not people
                    run_id = fake.load(doc)
                    for _ in range(prior):          # retries already spent on this lineage
                        store.add_retry(str(run_id))
                    reruns = elapsed = 0
                    first_retry = False
                    first_category = "UNKNOWN"
                    current = run_id
                    for round_ in range(MAX_ROUNDS):
                        result = triage_run(current, settings, client=client, store=store, notifier=NullNotifier(),
                                            use_llm=False, act_now=True)
                        rec = result.record
                        if rec is None or rec.action not in ("RETRY", "RETRY_WITH_NEW_PARAMS") or rec.status != "acted":
                            break
                        if round_ == 0:
                            first_retry, first_category = True, rec.category
                        reruns += 1
                        elapsed += backoff_seconds(rec.category, reruns - 1) + _duration_s(doc)
                        new_run = (rec.action_result or {}).get("run_id")
                        if people:
                            if new_run:
                                _resubmitted(fake, doc, int(new_run))
                                current = int(new_run)
                            else:
                                _fail_again(fake, doc, current)
                        else:
                            fake.finish_run(int(new_run) if new_run else current, "SUCCESS")
                            break
                    if people:
                        wasted.append(reruns)
                        told_s.append(elapsed)
                        seed = SEED_RETRIES if first_retry else 0
                        seed_reruns += seed
                        seed_told_s.append(sum(backoff_seconds(first_category, i) + _duration_s(doc) for i in range(seed)))
                    else:
                        transient_retried += reruns > 0
                        if reruns > 0:
                            after = triage_run(current, settings, client=client, store=store, notifier=NullNotifier(),
                                               use_llm=False, act_now=True)
                            transient_left_alone += after.skipped or after.duplicate
    ours = sum(wasted)
    print(f"{must_fix + transient} failures replayed as lineages ({must_fix} a person must fix, {transient} transient)")
    print(f"wasted reruns on failures people must fix: {ours} in all, {ours / max(1, must_fix):.3f} per failure; "
          f"at most {max(wasted or [0])} for any one; {sum(1 for w in wasted if w)} of {must_fix} retried at all")
    print(f"seed policy (retry up to {SEED_RETRIES} times): {seed_reruns} reruns on the same failures; "
          f"saved {seed_reruns - ours} reruns ({(seed_reruns - ours) / max(1, seed_reruns):.0%})")
    if told_s:
        p90 = sorted(told_s)[int(0.9 * (len(told_s) - 1))]
        wrong = [t for t, w in zip(told_s, wasted) if w]
        print(f"time until a person is told (failures people must fix): median {statistics.median(told_s) / 60:.1f} min, "
              f"90th percentile {p90 / 60:.1f} min, mean {statistics.mean(told_s) / 60:.2f} min; after a wrong retry: median "
              f"{(statistics.median(wrong) if wrong else 0) / 60:.1f} min "
              f"(seed policy: {(statistics.median([s for s, w in zip(seed_told_s, wasted) if w]) if wrong else 0) / 60:.1f} min)")
    print(f"transient failures retried: {transient_retried} of {transient}; left alone after the retry succeeded: "
          f"{transient_left_alone} of {transient_retried}")


if __name__ == "__main__":
    main()
