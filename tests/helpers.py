"""Small builders shared by tests: snapshots made in code, the corpus location."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from shared.snapshot import Snapshot, parse_snapshot

CORPUS = Path(__file__).parent / "corpus" / "dev"


def corpus_doc(case_id: str) -> dict[str, Any]:
    return json.loads((CORPUS / f"{case_id}.json").read_text())


def make_snapshot(
    error: str = "",
    *,
    trace: str | None = None,
    code: str | None = "RUN_EXECUTION_ERROR",
    type_: str | None = "CLIENT_ERROR",
    result_state: str = "FAILED",
    state_message: str = "Workload failed, see run output for details",
    tags: dict[str, str] | None = None,
    prior_retries: int = 0,
    tasks: list[dict[str, Any]] | None = None,
    legacy: bool = False,
    compute: str = "job_cluster",
) -> Snapshot:
    """A one-task failed run (or the given tasks) with the given error text."""
    task = {
        "run_id": 1002,
        "task_key": "main",
        "notebook_task": {"notebook_path": "/Repos/etl/main"},
        "state": {"life_cycle_state": "TERMINATED", "result_state": result_state, "state_message": state_message},
        "run_page_url": "https://adb-1.1.azuredatabricks.net/?o=1#job/7/run/1002",
    }
    if compute == "job_cluster":
        task["job_cluster_key"] = "main"
    elif compute == "existing_cluster":
        task["existing_cluster_id"] = "0101-000000-abcdefgh"
    elif compute == "new_cluster":
        task["new_cluster"] = {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", "num_workers": 2}
    if not legacy and (code or type_):
        task["status"] = {"state": "TERMINATED", "termination_details": {"code": code, "type": type_, "message": state_message}}
    run = {
        "job_id": 7,
        "run_id": 1001,
        "run_name": "nightly-etl",
        "creator_user_name": "owner@example.com",
        "run_page_url": "https://adb-1.1.azuredatabricks.net/?o=1#job/7/run/1001",
        "state": {"life_cycle_state": "TERMINATED", "result_state": result_state, "state_message": state_message},
        "tasks": tasks if tasks is not None else [task],
        "job_clusters": [{"job_cluster_key": "main", "new_cluster": {
            "spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", "num_workers": 2}}],
    }
    if not legacy and (code or type_):
        run["status"] = copy.deepcopy(task.get("status")) if tasks is None else {
            "state": "TERMINATED", "termination_details": {"code": code, "type": type_, "message": state_message}}
    outputs = {}
    if error or trace:
        outputs["1002"] = {"error": error, **({"error_trace": trace} if trace is not None else {})}
    doc = {
        "snapshot_version": 1,
        "case_id": "made",
        "workspace_host": "https://adb-1.1.azuredatabricks.net",
        "run": run,
        "task_outputs": outputs,
        "job": {"job_id": 7, "creator_user_name": "owner@example.com",
                "settings": {"name": "nightly-etl", "tags": tags or {}}},
        "history": {"prior_retries": prior_retries},
    }
    return parse_snapshot(doc)


T0 = 1_800_000_000.0   # a fixed "now" (2027-01-15) for tests that run on a clock of their own


class Clock:
    """A clock a test sets and moves (``clock.t += 60``); call it for the time in seconds."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
