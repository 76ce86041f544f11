"""Failure snapshots: one JSON document with everything a decision needs.

Format (see README): ``snapshot_version``, ``case_id``, ``workspace_host``, ``run`` (runs/get,
verbatim), ``task_outputs`` (task run id -> runs/get-output, verbatim), ``job`` (jobs/get,
optional), ``history`` ({"prior_retries": N}). Real payloads vary; this module turns any of
them into typed objects and says clearly what is wrong with one it cannot read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from shared.errors import SnapshotError
from shared.reader import read_answers

__all__ = [
    "RunState",
    "TaskRun",
    "Snapshot",
    "parse_snapshot",
    "load_snapshot",
    "iter_snapshot_paths",
    "strip_ansi",
    "as_int",
]

SNAPSHOT_VERSION = 1
_TERMINAL = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_FAILED_RESULTS = {"FAILED", "TIMEDOUT", "CANCELED", "UPSTREAM_FAILED", "UPSTREAM_CANCELED",
                   "MAXIMUM_CONCURRENT_RUNS_REACHED", "EXCLUDED", "DISABLED"}


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text or "")


def as_int(value: Any) -> int | None:
    """An id or count from an API payload (a number or a numeric string), else None."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RunState:
    """Run or task state, from ``status`` (new) and ``state`` (legacy), whichever is present."""

    life_cycle_state: str | None = None
    result_state: str | None = None
    state_message: str = ""
    termination_code: str | None = None
    termination_type: str | None = None
    termination_message: str = ""
    user_cancelled_or_timedout: bool = False

    @classmethod
    def from_api(cls, obj: Mapping[str, Any]) -> "RunState":
        state = obj.get("state") or {}
        status = obj.get("status") or {}
        if not isinstance(state, Mapping):
            state = {}
        if not isinstance(status, Mapping):
            status = {}
        term = status.get("termination_details") or {}
        if not isinstance(term, Mapping):
            term = {}
        lcs = state.get("life_cycle_state") or status.get("state")
        return cls(
            life_cycle_state=str(lcs) if lcs else None,
            result_state=str(state["result_state"]) if state.get("result_state") else None,
            state_message=str(state.get("state_message") or ""),
            termination_code=str(term["code"]) if term.get("code") else None,
            termination_type=str(term["type"]) if term.get("type") else None,
            termination_message=str(term.get("message") or ""),
            user_cancelled_or_timedout=bool(state.get("user_cancelled_or_timedout")),
        )

    @property
    def failed(self) -> bool:
        if self.result_state:
            return self.result_state in _FAILED_RESULTS
        if self.life_cycle_state == "INTERNAL_ERROR":
            return True
        return bool(self.termination_type and self.termination_type != "SUCCESS")

    @property
    def terminal(self) -> bool:
        """The run has ended (a run being repaired is RUNNING again, or PENDING/QUEUED)."""
        if self.life_cycle_state:
            return self.life_cycle_state in _TERMINAL
        return bool(self.result_state)

    @property
    def upstream(self) -> bool:
        return self.result_state in ("UPSTREAM_FAILED", "UPSTREAM_CANCELED")

    @property
    def messages(self) -> list[str]:
        out: list[str] = []
        for m in (self.termination_message, self.state_message):
            m = strip_ansi(m).strip()
            if m and m not in out:
                out.append(m)
        return out


@dataclass(frozen=True)
class TaskRun:
    """One task of a run (or the run itself for a legacy single-task run), with its output."""

    task_key: str | None
    run_id: int | None
    state: RunState
    raw: Mapping[str, Any]
    output: Mapping[str, Any] | None = None
    depends_on: tuple[str, ...] = ()

    @property
    def error(self) -> str:
        if not self.output:
            return ""
        return strip_ansi(str(self.output.get("error") or "")).strip()

    @property
    def error_trace(self) -> str:
        if not self.output:
            return ""
        return strip_ansi(str(self.output.get("error_trace") or ""))

    @property
    def text(self) -> str:
        """All error text for this task: output error and trace, then the state messages."""
        parts = [p for p in (self.error, self.error_trace) if p]
        if self.error and self.error_trace and self.error in self.error_trace:
            parts = [self.error_trace]
        parts.extend(m for m in self.state.messages if m not in ("", *parts))
        return "\n".join(parts)

    @property
    def task_type(self) -> str:
        for k in self.raw:
            if k.endswith("_task") and isinstance(self.raw[k], Mapping):
                return k
        return "unknown"

    @property
    def compute(self) -> str:
        """'job_cluster', 'new_cluster', 'existing_cluster', 'serverless' or 'unknown'."""
        if self.raw.get("existing_cluster_id"):
            return "existing_cluster"
        if self.raw.get("new_cluster"):
            return "new_cluster"
        if self.raw.get("job_cluster_key"):
            return "job_cluster"
        if self.raw.get("environment_key") or self.task_type != "unknown":
            return "serverless"
        return "unknown"

    @property
    def run_page_url(self) -> str:
        return str(self.raw.get("run_page_url") or "")

    @property
    def cluster_id(self) -> str:
        """The cluster the task ran on (``cluster_instance.cluster_id``), or ''."""
        inst = self.raw.get("cluster_instance")
        return str(inst.get("cluster_id") or "") if isinstance(inst, Mapping) else ""


@dataclass(frozen=True)
class Snapshot:
    run: Mapping[str, Any]
    task_outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    job: Mapping[str, Any] | None = None
    history: Mapping[str, Any] = field(default_factory=dict)
    workspace_host: str = ""
    case_id: str = ""
    snapshot_version: int = SNAPSHOT_VERSION
    source: str = ""
    # cluster id -> a clusters/events answer ({"events": [...]}), read when the events could change
    # the decision (shared.databricks.events); optional, so a replay stays offline.
    cluster_events: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    # --- identity -------------------------------------------------------------
    @property
    def run_id(self) -> int:
        return as_int(self.run.get("run_id")) or 0

    @property
    def job_id(self) -> int | None:
        return as_int(self.run.get("job_id")) or (as_int(self.job.get("job_id")) if self.job else None)

    @property
    def job_name(self) -> str:
        if self.job and isinstance(self.job.get("settings"), Mapping) and self.job["settings"].get("name"):
            return str(self.job["settings"]["name"])
        return str(self.run.get("run_name") or f"job {self.job_id or '?'}")

    @property
    def run_page_url(self) -> str:
        return str(self.run.get("run_page_url") or "")

    @property
    def creator(self) -> str:
        return str(self.run.get("creator_user_name") or (self.job or {}).get("creator_user_name") or "")

    @property
    def repair_history(self) -> list[Mapping[str, Any]]:
        rh = self.run.get("repair_history") or []
        return [r for r in rh if isinstance(r, Mapping)]

    @property
    def repair_count(self) -> int:
        return sum(1 for r in self.repair_history if r.get("type") == "REPAIR")

    @property
    def latest_repair_id(self) -> int | None:
        repairs = [r for r in self.repair_history if r.get("type") == "REPAIR" and r.get("id") is not None]
        return as_int(repairs[-1]["id"]) if repairs else None

    @property
    def repair_in_flight(self) -> bool:
        """The latest repair has not ended: its entry in repair_history has no end time, or a
        state that is not terminal. The run's own state may lag behind it."""
        repairs = [r for r in self.repair_history if r.get("type") == "REPAIR"]
        if not repairs:
            return False
        last = repairs[-1]
        state = RunState.from_api(last)
        if state.life_cycle_state or state.result_state:
            return not state.terminal
        return not as_int(last.get("end_time"))

    @property
    def decision_key(self) -> str:
        """``<run_id>-<repair_count>``: one decision per attempt of a run lineage."""
        return f"{self.run_id}-{self.repair_count}"

    @property
    def tags(self) -> dict[str, str]:
        settings = (self.job or {}).get("settings") or {}
        tags = settings.get("tags") if isinstance(settings, Mapping) else None
        return {str(k): str(v) for k, v in (tags or {}).items()}

    @property
    def prior_retries(self) -> int:
        return max(as_int(self.history.get("prior_retries")) or 0, self.repair_count)

    # --- state ----------------------------------------------------------------
    @property
    def state(self) -> RunState:
        return RunState.from_api(self.run)

    @property
    def tasks(self) -> list[TaskRun]:
        """Every task, with its output attached; a legacy single-task run is one pseudo-task."""
        raw_tasks = [t for t in (self.run.get("tasks") or []) if isinstance(t, Mapping)]
        if not raw_tasks:
            out = self.task_outputs.get(str(self.run_id)) or (
                next(iter(self.task_outputs.values())) if len(self.task_outputs) == 1 else None
            )
            return [TaskRun(task_key=None, run_id=self.run_id, state=self.state, raw=self.run, output=out)]
        tasks = []
        for t in raw_tasks:
            rid = as_int(t.get("run_id"))
            deps = tuple(str(d.get("task_key")) for d in (t.get("depends_on") or []) if isinstance(d, Mapping))
            tasks.append(
                TaskRun(
                    task_key=str(t.get("task_key")) if t.get("task_key") is not None else None,
                    run_id=rid,
                    state=RunState.from_api(t),
                    raw=t,
                    output=self.task_outputs.get(str(rid)) if rid is not None else None,
                    depends_on=deps,
                )
            )
        return tasks

    @property
    def failed_tasks(self) -> list[TaskRun]:
        return [t for t in self.tasks if t.state.failed]

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"snapshot_version": self.snapshot_version}
        if self.case_id:
            d["case_id"] = self.case_id
        d["workspace_host"] = self.workspace_host
        d["run"] = self.run
        d["task_outputs"] = self.task_outputs
        if self.job is not None:
            d["job"] = self.job
        d["history"] = dict(self.history)
        if self.cluster_events:
            d["cluster_events"] = {k: dict(v) for k, v in self.cluster_events.items()}
        return d


def parse_snapshot(doc: Any, *, source: str = "<snapshot>") -> Snapshot:
    """Validate the shape of a snapshot document and wrap it. Raises SnapshotError (one line)."""

    def bad(what: str) -> SnapshotError:
        return SnapshotError(f"{source}: {what}")

    if not isinstance(doc, Mapping):
        raise bad(f"expected a JSON object, found {type(doc).__name__}")
    version = doc.get("snapshot_version", SNAPSHOT_VERSION)
    if as_int(version) != SNAPSHOT_VERSION:
        raise bad(f"snapshot_version {version!r} is not supported (expected {SNAPSHOT_VERSION})")
    run = doc.get("run")
    if not isinstance(run, Mapping):
        raise bad("'run' is missing or not an object (it holds the runs/get response)")
    if as_int(run.get("run_id")) is None:
        raise bad("'run.run_id' is missing or not a number")
    if not isinstance(run.get("state"), (Mapping, type(None))) or not isinstance(run.get("status"), (Mapping, type(None))):
        raise bad("'run.state' / 'run.status' must be objects")
    if not run.get("state") and not run.get("status"):
        raise bad("'run' has neither 'state' nor 'status'")
    tasks = run.get("tasks", [])
    if not isinstance(tasks, list):
        raise bad("'run.tasks' must be a list")
    for i, t in enumerate(tasks):
        if not isinstance(t, Mapping):
            raise bad(f"'run.tasks[{i}]' must be an object")
    outputs = doc.get("task_outputs")
    outputs = {} if outputs is None else outputs
    if not isinstance(outputs, Mapping):
        raise bad("'task_outputs' must be an object keyed by task run id")
    for k, v in outputs.items():
        if not isinstance(v, Mapping):
            raise bad(f"'task_outputs.{k}' must be an object (a runs/get-output response)")
    job = doc.get("job")
    if job is not None and not isinstance(job, Mapping):
        raise bad("'job' must be an object (a jobs/get response) or absent")
    history = doc.get("history")
    history = {} if history is None else history
    if not isinstance(history, Mapping):
        raise bad("'history' must be an object")
    pr = history.get("prior_retries", 0)
    if as_int(pr) is None or as_int(pr) < 0:
        raise bad(f"'history.prior_retries' must be a whole number >= 0, found {pr!r}")
    events = doc.get("cluster_events")
    events = {} if events is None else events
    if not isinstance(events, Mapping):
        raise bad("'cluster_events' must be an object keyed by cluster id")
    for k, v in events.items():
        if not isinstance(v, Mapping) or not isinstance(v.get("events", []), list):
            raise bad(f"'cluster_events.{k}' must be an object with an 'events' list (a clusters/events response)")
    run, outputs, job, history = _read_tolerantly(run, outputs, job, history)
    return Snapshot(
        run=run,
        task_outputs=outputs,
        job=job,
        history=history,
        workspace_host=str(doc.get("workspace_host") or ""),
        case_id=str(doc.get("case_id") or ""),
        source=source,
        cluster_events={str(k): {"events": [e for e in (v.get("events") or []) if isinstance(e, Mapping)]}
                        for k, v in events.items()},
    )


def _read_tolerantly(run: Mapping[str, Any], outputs: Mapping[str, Any], job: Mapping[str, Any] | None,
                     history: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None,
                                                          Mapping[str, Any]]:
    """Below the document's own structure, every field goes through the typed reader of
    Databricks answers (``shared.reader``): a field with the wrong shape (tags as a
    string, ``depends_on`` as a boolean) is dropped and noted in ``history.read_notes``, so the
    failure is still decided from what is valid."""
    notes: list[str] = []
    clean_run, clean_outputs, clean_job = read_answers(run, outputs, job, notes)
    if notes:
        earlier = [str(n) for n in (history.get("read_notes") or []) if isinstance(history.get("read_notes"), list)]
        history = {**history, "read_notes": earlier + [n for n in notes if n not in earlier]}
    return clean_run or {}, clean_outputs, clean_job, history


def load_snapshot(path: str | Path) -> Snapshot:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SnapshotError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SnapshotError(f"{p}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{p}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    snap = parse_snapshot(doc, source=str(p))
    if not snap.case_id:
        snap = Snapshot(**{**snap.__dict__, "case_id": p.stem})
    return snap


def iter_snapshot_paths(paths: list[str]) -> Iterator[Path]:
    """Expand files and folders (their ``*.json``, subfolders included, sorted) in the order given.
    An empty folder is a SnapshotError naming it."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.json") if q.is_file())
            if not found:
                raise SnapshotError(f"{p}: no *.json snapshots in this folder or its subfolders")
            yield from found
        else:
            yield p
