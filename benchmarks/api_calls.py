"""Databricks API calls per triaged run, against the budget: 1 runs/get + 1 get-output per failed
task + 1 jobs/get + the action (+ 1 clusters/events per job cluster, at most 2, when the rules are
unsure or the failure looks like infrastructure and the tasks name their cluster).

Every dev-corpus failure is served by the local fake workspace and triaged in act mode (so
the action is sent too); the client counts its calls per endpoint.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus" / "dev"


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from demo.workspace import FakeDatabricks

    from shared.notify import NullNotifier
    from shared.config import Settings
    from shared.databricks import DatabricksClient, PatCredential
    from shared.databricks.events import MAX_CLUSTERS
    from shared.snapshot import load_snapshot
    from shared.store import open_store
    from shared.triage import triage_run

    over, total_runs, totals = [], 0, Counter()
    with tempfile.TemporaryDirectory() as tmp, FakeDatabricks() as fake:
        settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_STORAGE": f"sqlite:///{tmp}/b.db"})
        with open_store(settings) as store:
            for path in sorted(CORPUS.glob("*.json")):
                snap = load_snapshot(path)
                doc = snap.to_json()
                doc.pop("history", None)
                run_id = fake.load(doc)
                with DatabricksClient(fake.url, PatCredential(fake.token)) as client:
                    result = triage_run(run_id, settings, client=client, store=store, notifier=NullNotifier(),
                                        use_llm=False, act_now=True)
                    calls = Counter(client.calls)
                failed = [t for t in snap.failed_tasks if not t.state.upstream]
                action_calls = 1 if result.record.action in ("RETRY", "RETRY_WITH_NEW_PARAMS") else 0
                budget = 1 + len(failed) + 1 + action_calls + min(calls["/api/2.1/clusters/events"], MAX_CLUSTERS)
                used = sum(calls.values())
                totals.update(calls)
                total_runs += 1
                if used > budget:
                    over.append((snap.case_id, used, budget, dict(calls)))
    print(f"{total_runs} runs triaged in act mode; API calls in all: {sum(totals.values())} "
          f"({sum(totals.values()) / total_runs:.2f} per run)")
    for endpoint, n in sorted(totals.items()):
        print(f"  {endpoint:40s} {n:4d}  ({n / total_runs:.2f} per run)")
    print(f"runs over the budget (1 runs/get + 1 get-output per failed task + 1 jobs/get + action): {len(over)}")
    for case, used, budget, calls in over:
        print(f"  {case}: {used} > {budget}: {calls}")


if __name__ == "__main__":
    main()
