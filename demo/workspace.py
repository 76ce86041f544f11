"""A local fake Databricks workspace: Jobs API 2.2 over real HTTP on 127.0.0.1.

It serves runs from failure snapshots and accepts the writes the triage app makes, with the
validation the real API applies to them, so the production client is tested end to end:

- ``GET runs/get``: ``snapshot.run``; arrays (tasks, job_clusters, job_parameters, repair_history)
  paginated ``page_size`` at a time (100 like Databricks; smaller to test pagination), repair
  history only with ``include_history=true``. Unknown run -> 404 RESOURCE_DOES_NOT_EXIST.
- ``GET runs/get-output``: ``snapshot.task_outputs`` by task run id; a multi-task parent run ->
  400 INVALID_PARAMETER_VALUE, as Databricks answers.
- ``GET jobs/get``: ``snapshot.job``; unknown job -> 400 INVALID_PARAMETER_VALUE "Job N does not exist."
- ``GET runs/list``: every run, newest first; ``job_id``, ``active_only``/``completed_only``,
  ``start_time_from``/``to``, ``run_type``, ``expand_tasks``, ``limit`` (<= 25), ``page_token``.
- ``POST runs/repair``: run exists and is terminal; ``rerun_tasks`` xor ``rerun_all_failed_tasks``;
  ``latest_repair_id`` must be the last REPAIR id when the run has repairs (and absent otherwise);
  unknown fields -> 400. A repair appends to ``repair_history`` and puts the run back to RUNNING
  (``finish_run()`` ends it).
- ``POST runs/submit``: every task has compute, none a ``job_cluster_key``, ``depends_on`` stays
  inside the submission, ``idempotency_token`` <= 64 chars and the same token answers the same run.
  ``run_as`` is exactly one of user_name / service_principal_name, and the caller may act as it
  (``may_run_as``; 403 PERMISSION_DENIED otherwise, as for a missing servicePrincipal.user role);
  ``access_control_list`` entries name one principal and a run permission level.
- ``POST run-now``: job exists; idempotency tokens as for submit.
- ``POST /api/2.1/clusters/events``: the snapshot's ``cluster_events`` for ``cluster_id`` (unknown
  cluster -> 400 INVALID_PARAMETER_VALUE); ``order`` ASC/DESC by timestamp, ``event_types`` filter,
  ``limit`` 1..500, ``offset``; answers ``events``, ``total_count`` and ``next_page`` when more remain.
- ``POST jobs/update``: ``job_id``, ``new_settings`` (top-level fields replaced; ``tasks``,
  ``job_clusters``, ``environments`` and ``parameters`` merged by key, an entry replaced whole),
  ``fields_to_remove``. ``POST jobs/reset``: ``new_settings`` replaces every setting. Each write is
  kept in ``job_history``; every repair in ``repairs`` with the job's clusters at that moment (a
  repair runs with the job's current settings). ``edit_job()`` is someone else's edit,
  ``start_tasks()`` starts the pending tasks of a repair.

- ``POST /oidc/v1/token``: OAuth machine-to-machine for the service principals added with
  ``add_oauth_client(client_id, secret)``: the client credentials grant (HTTP Basic, or
  ``client_id``/``client_secret`` form fields), scope ``all-apis``; answers an access token valid
  for ``oauth_token_lifetime_s``, which the Jobs API then accepts as a bearer token until it
  expires (then 401, as a workspace answers an expired token). A wrong client -> 401
  ``invalid_client``; another grant -> 400 ``unsupported_grant_type``.

Every request is recorded (method, path, query, body, headers without Authorization, and whether
auth was ``valid``/``invalid``/``missing``). Faults are injected per path on demand: an HTTP
status (429 with ``Retry-After``, 500, 503 ...), a slow answer, a malformed body, a dropped
connection.

Standalone: ``python -m demo.workspace --port 8765 --snapshots DIR [--token T]`` prints
the URL (and the token when it made one up) and serves until interrupted.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import secrets
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Fault",
    "status_fault",
    "slow_fault",
    "malformed_fault",
    "drop_fault",
    "lost_answer_fault",
    "RecordedRequest",
    "make_snapshot",
    "FakeDatabricks",
    "make_token",
    "main",
]

API = "/api/2.2/jobs/"
TERMINAL = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
ACTIVE = {"PENDING", "QUEUED", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY"}
_FAILED_RESULTS = {"FAILED", "TIMEDOUT", "CANCELED", "UPSTREAM_FAILED", "UPSTREAM_CANCELED",
                   "MAXIMUM_CONCURRENT_RUNS_REACHED", "EXCLUDED", "DISABLED"}
_PAGED = ("tasks", "job_clusters", "job_parameters", "repair_history")

REPAIR_FIELDS = {
    "run_id", "rerun_tasks", "rerun_all_failed_tasks", "rerun_dependent_tasks", "latest_repair_id",
    "job_parameters", "performance_target", "pipeline_params", "jar_params", "notebook_params",
    "python_params", "spark_submit_params", "python_named_params", "sql_params", "dbt_commands",
}
SUBMIT_FIELDS = {
    "run_name", "tasks", "idempotency_token", "timeout_seconds", "git_source", "environments",
    "email_notifications", "webhook_notifications", "notification_settings", "health", "queue",
    "run_as", "access_control_list", "budget_policy_id", "usage_policy_id",
}
SUBMIT_TASK_FIELDS = {
    "task_key", "description", "depends_on", "run_if", "new_cluster", "existing_cluster_id",
    "environment_key", "libraries", "timeout_seconds", "health", "email_notifications",
    "webhook_notifications", "notification_settings", "disable_auto_optimization",
}
RUN_NOW_FIELDS = {
    "job_id", "idempotency_token", "job_parameters", "only", "notebook_params", "python_params",
    "jar_params", "spark_submit_params", "python_named_params", "sql_params", "dbt_commands",
    "pipeline_params", "queue", "performance_target",
}
UPDATE_FIELDS = {"job_id", "new_settings", "fields_to_remove"}
RESET_FIELDS = {"job_id", "new_settings"}
# jobs/update merges these arrays by their key (entries replaced whole); other fields are replaced.
_MERGED_ARRAYS = {"tasks": "task_key", "job_clusters": "job_cluster_key", "environments": "environment_key",
                  "parameters": "name"}
_PRINCIPALS = ("user_name", "group_name", "service_principal_name")
_RUN_PERMISSIONS = {"CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"}
# Task types that need a cluster even where serverless compute is enabled.
_NEEDS_CLUSTER = {"spark_jar_task", "spark_submit_task"}
# Task types that never run on a cluster of their own.
_NO_CLUSTER = {"sql_task", "pipeline_task", "run_job_task", "condition_task", "dashboard_task",
               "for_each_task", "power_bi_task", "dbt_cloud_task"}


def make_token() -> str:
    """A random personal-access-token-shaped string, made at run time (never a literal)."""
    return "dapi" + secrets.token_hex(16)


# --- faults -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, used for one matching request."""

    kind: str                         # status | slow | malformed | drop | lost_answer
    status: int = 200
    retry_after: str | None = None
    error_code: str | None = None
    message: str = ""
    seconds: float = 0.0


def status_fault(status: int, *, retry_after: float | str | None = None, error_code: str | None = None,
                 message: str | None = None) -> Fault:
    default_code = {429: "REQUEST_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR", 503: "TEMPORARILY_UNAVAILABLE",
                    403: "PERMISSION_DENIED", 401: "UNAUTHENTICATED"}.get(status)
    return Fault("status", status=status, retry_after=None if retry_after is None else str(retry_after),
                 error_code=error_code or default_code, message=message or f"injected HTTP {status}")


def slow_fault(seconds: float) -> Fault:
    """Wait ``seconds`` before answering normally (makes a client with a short timeout give up)."""
    return Fault("slow", seconds=float(seconds))


def malformed_fault(status: int = 200) -> Fault:
    """Answer with a body that is not JSON (a proxy's HTML page)."""
    return Fault("malformed", status=status)


def drop_fault() -> Fault:
    """Close the connection without answering (the request is not processed)."""
    return Fault("drop")


def hold_fault(*, processed: bool) -> Fault:
    """Hold the request: the fake sets ``holding`` and waits for ``release`` (at most a minute),
    then closes the connection without answering. ``processed``: the request is carried out
    first (the write happened; its answer never arrives), else not at all. A test kills the
    client while it waits: a crash at a known point of its conversation with Databricks."""
    return Fault("hold_after" if processed else "hold_before")


def lost_answer_fault() -> Fault:
    """Process the request, then close the connection without answering: the client cannot
    know whether its write happened (what idempotency tokens are for)."""
    return Fault("lost_answer")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]           # without Authorization
    auth: str                         # valid | invalid | missing
    status: int | None = None         # what the fake answered (None: dropped)
    fault: str | None = None

    @property
    def endpoint(self) -> str:
        """The path below /api/2.2/jobs/, e.g. 'runs/get'."""
        return self.path[len(API):] if self.path.startswith(API) else self.path


class _ApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def _bad(message: str) -> _ApiError:
    return _ApiError(400, "INVALID_PARAMETER_VALUE", message)


def _state_failed(obj: Mapping[str, Any]) -> bool:
    state = obj.get("state") or {}
    if state.get("result_state"):
        return state["result_state"] in _FAILED_RESULTS
    if state.get("life_cycle_state") == "INTERNAL_ERROR":
        return True
    term = ((obj.get("status") or {}).get("termination_details") or {})
    return bool(term.get("type") and term.get("type") != "SUCCESS")


def _life_cycle(obj: Mapping[str, Any]) -> str:
    return str((obj.get("state") or {}).get("life_cycle_state") or (obj.get("status") or {}).get("state") or "")


def _encode_token(payload: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()


def _decode_token(token: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError):
        raise _bad(f"Invalid page_token: {token[:40]}") from None
    if not isinstance(data, dict):
        raise _bad("Invalid page_token")
    return data


def _int_param(query: Mapping[str, str], name: str, required: bool = False) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        if required:
            raise _bad(f"Missing required field: {name}")
        return None
    try:
        return int(raw)
    except ValueError:
        raise _bad(f"Invalid value for {name}: {raw!r} is not an integer") from None


def _bool_param(query: Mapping[str, str], name: str) -> bool:
    return str(query.get(name, "")).lower() == "true"


# --- the fake workspace ---------------------------------------------------------------------------

class FakeDatabricks:
    """The fake workspace. ``start()``/``stop()`` (or ``with``); ``url`` and ``token`` to connect."""

    def __init__(self, *, token: str | None = None, page_size: int = 100, host: str = "127.0.0.1",
                 port: int = 0, serverless_enabled: bool = True, caller: str = "triage-app",
                 may_run_as: Iterable[str] | None = None) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.token = token or make_token()
        self.page_size = page_size
        self.serverless_enabled = serverless_enabled
        # Who the token belongs to, and whom it may run as (runs/submit run_as): the caller itself
        # always; others only when listed (the servicePrincipal.user role on a service principal,
        # or admin rights for a user). None: anyone (a workspace admin's token).
        self.caller = caller
        self.may_run_as = None if may_run_as is None else set(may_run_as)
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._runs: dict[int, dict[str, Any]] = {}
        self._task_parent: dict[int, int] = {}
        self._outputs: dict[int, dict[str, Any]] = {}
        self._jobs: dict[int, dict[str, Any]] = {}
        self._cluster_events: dict[str, list[dict[str, Any]]] = {}
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._requests: list[RecordedRequest] = []
        self._idempotency: dict[str, int] = {}
        self.submitted: dict[int, dict[str, Any]] = {}   # run id -> the runs/submit body
        self.holding = threading.Event()                 # a request is held (hold_fault)
        self.release = threading.Event()                 # let the held request end (its connection closes)
        self.oauth_clients: dict[str, str] = {}           # client id -> secret (add_oauth_client)
        self.oauth_token_lifetime_s = 3600.0
        self.oauth_tokens: dict[str, tuple[str, float]] = {}   # access token -> (client id, expiry)
        self.repairs: list[dict[str, Any]] = []          # every accepted repair, with the job's clusters then
        self.start_repaired_tasks = False                # True: repaired tasks start at once (RUNNING, not PENDING)
        self.job_history: dict[int, list[dict[str, Any]]] = defaultdict(list)  # job id -> settings after each write
        self._next_id = 900_000_000_000_001
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---
    def start(self) -> "FakeDatabricks":
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer((self._host, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-databricks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeDatabricks":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake workspace is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- data ---
    def load(self, snapshot: str | Path | Mapping[str, Any] | Any) -> int:
        """Serve a snapshot (a path, a snapshot document, or a ``shared.snapshot.Snapshot``).
        Returns its run id. Loading the same run again replaces it."""
        if isinstance(snapshot, (str, Path)):
            doc = json.loads(Path(snapshot).read_text(encoding="utf-8"))
        elif isinstance(snapshot, Mapping):
            doc = snapshot
        elif hasattr(snapshot, "to_json"):
            doc = snapshot.to_json()
        else:
            raise TypeError("load() takes a snapshot path, document or Snapshot")
        doc = copy.deepcopy(dict(doc))
        run = dict(doc["run"])
        run_id = int(run["run_id"])
        with self._lock:
            self._runs[run_id] = run
            for t in run.get("tasks") or []:
                if t.get("run_id") is not None:
                    self._task_parent[int(t["run_id"])] = run_id
            for key, out in (doc.get("task_outputs") or {}).items():
                self._outputs[int(key)] = dict(out)
            for cid, answer in (doc.get("cluster_events") or {}).items():
                self._cluster_events[str(cid)] = [dict(e) for e in (answer or {}).get("events") or []]
            job = doc.get("job")
            if job:
                job_id = int(job.get("job_id") or run.get("job_id"))
                self._jobs[job_id] = {**job, "job_id": job_id}
        return run_id

    def load_all(self, paths: Iterable[str | Path]) -> list[int]:
        ids = []
        for p in paths:
            p = Path(p)
            files = sorted(p.glob("*.json")) if p.is_dir() else [p]
            ids.extend(self.load(f) for f in files)
        return ids

    def run(self, run_id: int) -> dict[str, Any]:
        """The current state of a run (a copy)."""
        with self._lock:
            return copy.deepcopy(self._runs[int(run_id)])

    def finish_run(self, run_id: int, result_state: str = "FAILED", message: str = "") -> None:
        """End a run that a repair (or submit/run-now) put in motion."""
        with self._lock:
            run = self._runs[int(run_id)]
            done = {"life_cycle_state": "TERMINATED", "result_state": result_state,
                    "state_message": message, "user_cancelled_or_timedout": False}
            run["state"] = dict(done)
            run["status"] = {"state": "TERMINATED", "termination_details": {
                "code": "SUCCESS" if result_state == "SUCCESS" else "RUN_EXECUTION_ERROR",
                "type": "SUCCESS" if result_state == "SUCCESS" else "CLIENT_ERROR", "message": message}}
            run["end_time"] = int(time.time() * 1000)
            for entry in run.get("repair_history") or []:  # the repair in motion ends with the run
                if entry.get("type") == "REPAIR" and not entry.get("end_time"):
                    entry["end_time"] = run["end_time"]
                    entry["state"] = dict(done)
            for t in run.get("tasks") or []:
                if _life_cycle(t) in ACTIVE:
                    t["state"] = dict(done)
                    t["status"] = copy.deepcopy(run["status"])

    # --- OAuth M2M ---
    def add_oauth_client(self, client_id: str | None = None, secret: str | None = None) -> tuple[str, str]:
        """A service principal that may get tokens at /oidc/v1/token; returns (client id, secret)."""
        client_id = client_id or f"sp-{secrets.token_hex(8)}"
        secret = secret or "dose" + secrets.token_hex(16)
        with self._lock:
            self.oauth_clients[client_id] = secret
        return client_id, secret

    def _issue_token(self, form: Mapping[str, str], basic: str | None) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if basic:
            try:
                client_id, _, secret = base64.b64decode(basic).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return 401, {"error": "invalid_client", "error_description": "malformed Basic credentials"}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type",
                         "error_description": f"grant_type {form.get('grant_type')!r} is not supported"}
        with self._lock:
            known = self.oauth_clients.get(client_id)
            if not client_id or known is None or not secrets.compare_digest(known, secret):
                return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
            if "all-apis" not in (form.get("scope") or "").split():
                return 400, {"error": "invalid_scope", "error_description": "scope must include all-apis"}
            token = "eyJfake." + secrets.token_urlsafe(24)
            self.oauth_tokens[token] = (client_id, time.time() + self.oauth_token_lifetime_s)
        return 200, {"access_token": token, "token_type": "Bearer", "scope": "all-apis",
                     "expires_in": int(self.oauth_token_lifetime_s)}

    def _bearer(self, given: str | None) -> str:
        """'valid', 'expired', 'invalid' or 'missing' for an Authorization header."""
        if not given:
            return "missing"
        if given == f"Bearer {self.token}":
            return "valid"
        with self._lock:
            issued = self.oauth_tokens.get(given[len("Bearer "):]) if given.startswith("Bearer ") else None
        if issued is None:
            return "invalid"
        return "valid" if issued[1] > time.time() else "expired"

    # --- faults and records ---
    @staticmethod
    def _norm(path: str) -> str:
        if path == "*" or path.startswith("/"):
            return path
        return API + path.lstrip("/")

    def inject(self, path: str, *faults: Fault | int) -> None:
        """Queue faults for the next requests to ``path`` ('runs/get', '/api/2.2/jobs/runs/get',
        or '*' for any path). An int is shorthand for ``status_fault(int)``."""
        with self._lock:
            for f in faults:
                self._faults[self._norm(path)].append(status_fault(f) if isinstance(f, int) else f)

    def clear_faults(self, path: str | None = None) -> None:
        """Drop the faults still queued for ``path`` (every path when None): the service answers again."""
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop(self._norm(path), None)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for key in (path, "*"):
                if self._faults.get(key):
                    return self._faults[key].popleft()
        return None

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, endpoint: str, method: str | None = None) -> list[RecordedRequest]:
        path = self._norm(endpoint)
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    @property
    def writes(self) -> list[RecordedRequest]:
        """Requests that could change the workspace (POSTs), answered or not."""
        return [r for r in self.requests if r.method == "POST"]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)

    def _new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    # --- endpoints ---
    def handle(self, method: str, path: str, query: Mapping[str, str], body: Any) -> dict[str, Any]:
        routes = {
            ("GET", API + "runs/get"): self._runs_get,
            ("GET", API + "runs/get-output"): self._runs_get_output,
            ("GET", API + "get"): self._jobs_get,
            ("GET", API + "runs/list"): self._runs_list,
            ("POST", API + "runs/repair"): self._runs_repair,
            ("POST", API + "runs/submit"): self._runs_submit,
            ("POST", API + "run-now"): self._run_now,
            ("POST", "/api/2.1/clusters/events"): self._clusters_events,
            ("POST", API + "update"): self._jobs_update,
            ("POST", API + "reset"): self._jobs_reset,
        }
        fn = routes.get((method, path))
        if fn is None:
            if any(p == path for (_, p) in routes):
                raise _ApiError(405, "BAD_REQUEST", f"Method {method} is not allowed on {path}")
            raise _ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        with self._lock:
            return fn(query if method == "GET" else body)

    def _get_run_or_404(self, run_id: int) -> dict[str, Any]:
        run = self._runs.get(run_id)
        if run is None:
            raise _ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.")
        return run

    def _runs_get(self, q: Mapping[str, str]) -> dict[str, Any]:
        run_id = _int_param(q, "run_id", required=True)
        run = copy.deepcopy(self._get_run_or_404(run_id))
        if not _bool_param(q, "include_history"):
            run.pop("repair_history", None)
        page = 0
        if q.get("page_token"):
            tok = _decode_token(q["page_token"])
            if tok.get("run_id") != run_id:
                raise _bad("page_token does not belong to this run")
            page = int(tok.get("page", 0))
        lo, hi = page * self.page_size, (page + 1) * self.page_size
        more = False
        for key in _PAGED:
            if isinstance(run.get(key), list):
                full = run[key]
                run[key] = full[lo:hi]
                more = more or len(full) > hi
        if more:
            run["next_page_token"] = _encode_token({"run_id": run_id, "page": page + 1})
        return run

    def _runs_get_output(self, q: Mapping[str, str]) -> dict[str, Any]:
        run_id = _int_param(q, "run_id", required=True)
        if run_id in self._runs:
            run = self._runs[run_id]
            if run.get("tasks"):
                raise _bad("Retrieving the output of runs with multiple tasks is not supported. "
                           "Please retrieve the output of each individual task run instead.")
            meta = {k: v for k, v in run.items() if k not in ("tasks", "job_clusters", "repair_history")}
            return copy.deepcopy(self._outputs.get(run_id) or {"metadata": meta})
        parent = self._task_parent.get(run_id)
        if parent is None:
            raise _ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.")
        out = self._outputs.get(run_id)
        if out is not None:
            return copy.deepcopy(out)
        task = next(t for t in self._runs[parent].get("tasks") or [] if t.get("run_id") == run_id)
        return {"metadata": copy.deepcopy(task)}

    def _jobs_get(self, q: Mapping[str, str]) -> dict[str, Any]:
        job_id = _int_param(q, "job_id", required=True)
        job = self._jobs.get(job_id)
        if job is None:
            raise _bad(f"Job {job_id} does not exist.")
        return copy.deepcopy(job)

    def _runs_list(self, q: Mapping[str, str]) -> dict[str, Any]:
        limit = _int_param(q, "limit")
        limit = 20 if limit is None else (25 if limit == 0 else limit)
        if not 1 <= limit <= 25:
            raise _bad(f"Invalid limit {limit}: must be between 1 and 25")
        active, completed = _bool_param(q, "active_only"), _bool_param(q, "completed_only")
        if active and completed:
            raise _bad("active_only and completed_only cannot both be true")
        job_id = _int_param(q, "job_id")
        t_from, t_to = _int_param(q, "start_time_from"), _int_param(q, "start_time_to")
        run_type = q.get("run_type")
        runs = []
        for run in self._runs.values():
            lcs = _life_cycle(run)
            if job_id is not None and run.get("job_id") != job_id:
                continue
            if completed and lcs not in TERMINAL:
                continue
            if active and lcs not in ACTIVE:
                continue
            start = int(run.get("start_time") or 0)
            if (t_from is not None and start < t_from) or (t_to is not None and start > t_to):
                continue
            if run_type and run.get("run_type", "JOB_RUN") != run_type:
                continue
            runs.append(run)
        runs.sort(key=lambda r: (int(r.get("start_time") or 0), int(r["run_id"])), reverse=True)
        offset = 0
        if q.get("page_token"):
            offset = int(_decode_token(q["page_token"]).get("offset", 0))
        page = runs[offset: offset + limit]
        out_runs = []
        for run in page:
            r = copy.deepcopy(run)
            r.pop("repair_history", None)
            if not _bool_param(q, "expand_tasks"):
                r.pop("tasks", None)
                r.pop("job_clusters", None)
            out_runs.append(r)
        answer: dict[str, Any] = {"has_more": offset + limit < len(runs)}
        if out_runs:                      # like Databricks, an empty array is left out
            answer["runs"] = out_runs
        if answer["has_more"]:
            answer["next_page_token"] = _encode_token({"offset": offset + limit})
        if offset > 0:
            answer["prev_page_token"] = _encode_token({"offset": max(0, offset - limit)})
        return answer

    @staticmethod
    def _check_fields(body: Any, allowed: set[str], what: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _ApiError(400, "MALFORMED_REQUEST", f"{what}: the request body must be a JSON object")
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _bad(f"{what}: unknown field(s): {', '.join(unknown)}")
        return body

    def _runs_repair(self, body: Any) -> dict[str, Any]:
        body = self._check_fields(body, REPAIR_FIELDS, "runs/repair")
        if body.get("run_id") is None:
            raise _bad("Missing required field: run_id")
        run = self._get_run_or_404(int(body["run_id"]))
        if _life_cycle(run) not in TERMINAL:
            raise _ApiError(400, "INVALID_STATE", f"Run {run['run_id']} is still in progress and cannot be repaired.")
        has_tasks, has_all = "rerun_tasks" in body, bool(body.get("rerun_all_failed_tasks"))
        if has_tasks == has_all:
            raise _bad("Exactly one of rerun_tasks or rerun_all_failed_tasks must be given.")
        history = list(run.get("repair_history") or [])
        repairs = [h for h in history if h.get("type") == "REPAIR"]
        latest = body.get("latest_repair_id")
        if repairs:
            if latest is None:
                raise _bad("The latest repair ID needs to be provided in order to create a new repair.")
            if int(latest) != int(repairs[-1]["id"]):
                raise _bad(f"The latest repair ID {latest} does not match the latest repair "
                           f"{repairs[-1]['id']} of run {run['run_id']}.")
        elif latest is not None:
            raise _bad(f"Run {run['run_id']} has no repair with ID {latest}.")
        jp = body.get("job_parameters")
        if jp is not None and not (isinstance(jp, dict) and all(isinstance(v, str) for v in jp.values())):
            raise _bad("job_parameters must be an object of parameter names to string values")
        pt = body.get("performance_target")
        if pt is not None and pt not in ("PERFORMANCE_OPTIMIZED", "STANDARD"):
            raise _bad(f"Invalid performance_target: {pt}")
        tasks = run.get("tasks") or []
        keys = {t.get("task_key") for t in tasks}
        if has_tasks:
            wanted = body["rerun_tasks"]
            if not isinstance(wanted, list) or not wanted:
                raise _bad("rerun_tasks must be a non-empty list of task keys")
            missing = [k for k in wanted if k not in keys]
            if tasks and missing:
                raise _bad(f"Task(s) {', '.join(map(str, missing))} not found in run {run['run_id']}.")
            chosen = [t for t in tasks if t.get("task_key") in wanted]
        else:
            chosen = [t for t in tasks if _state_failed(t)]
            if tasks and not chosen:
                raise _bad(f"Run {run['run_id']} has no failed tasks to repair.")
        repair_id = self._new_id()
        now = int(time.time() * 1000)
        if not history:
            history.append({"type": "ORIGINAL", "start_time": run.get("start_time"), "end_time": run.get("end_time"),
                            "state": copy.deepcopy(run.get("state")), "task_run_ids": [t.get("run_id") for t in tasks]})
        history.append({"type": "REPAIR", "id": repair_id, "start_time": now,
                        "state": {"life_cycle_state": "RUNNING"}, "task_run_ids": [t.get("run_id") for t in chosen]})
        run["repair_history"] = history
        run["state"] = {"life_cycle_state": "RUNNING", "state_message": "", "user_cancelled_or_timedout": False}
        run["status"] = {"state": "RUNNING"}
        began = "RUNNING" if self.start_repaired_tasks else "PENDING"
        for t in chosen:
            t["state"] = {"life_cycle_state": began, "state_message": ""}
            t["status"] = {"state": began}
        job = self._jobs.get(int(run.get("job_id") or 0)) or {}
        settings = job.get("settings") or {}
        self.repairs.append({"run_id": run["run_id"], "repair_id": repair_id, "body": copy.deepcopy(body),
                             "rerun": [t.get("task_key") for t in chosen],
                             # a repair runs with the job's current settings: the clusters it launches with
                             "job_clusters": copy.deepcopy(settings.get("job_clusters") or []),
                             "tasks": copy.deepcopy(settings.get("tasks") or [])})
        return {"repair_id": repair_id}

    def _check_run_as(self, run_as: Any) -> str | None:
        """runs/submit ``run_as``: exactly one of user_name / service_principal_name, and the caller
        must be allowed to act as it (servicePrincipal.user on a service principal; a non-admin
        may name only itself as a user)."""
        if run_as is None:
            return None
        if not isinstance(run_as, dict):
            raise _bad("run_as must be an object")
        unknown = sorted(set(run_as) - {"user_name", "service_principal_name"})
        if unknown:
            raise _bad(f"run_as: unknown field(s): {', '.join(unknown)}")
        given = [(k, v) for k, v in run_as.items() if v]
        if len(given) != 1 or not isinstance(given[0][1], str):
            raise _bad("run_as: exactly one of user_name or service_principal_name must be given")
        kind, who = given[0]
        if who != self.caller and self.may_run_as is not None and who not in self.may_run_as:
            what = ("the servicePrincipal.user role on service principal" if kind == "service_principal_name"
                    else "admin rights to run as user")
            raise _ApiError(403, "PERMISSION_DENIED", f"{self.caller} cannot set run_as to {who}: "
                                                      f"it needs {what} {who}.")
        return who

    @staticmethod
    def _check_acl(acl: Any) -> None:
        if acl is None:
            return
        if not isinstance(acl, list):
            raise _bad("access_control_list must be a list")
        for i, entry in enumerate(acl):
            if not isinstance(entry, dict):
                raise _bad(f"access_control_list[{i}] must be an object")
            unknown = sorted(set(entry) - set(_PRINCIPALS) - {"permission_level"})
            if unknown:
                raise _bad(f"access_control_list[{i}]: unknown field(s): {', '.join(unknown)}")
            if len([p for p in _PRINCIPALS if entry.get(p)]) != 1:
                raise _bad(f"access_control_list[{i}]: exactly one of user_name, group_name or "
                           "service_principal_name is required")
            if entry.get("permission_level") not in _RUN_PERMISSIONS:
                raise _bad(f"access_control_list[{i}]: invalid permission_level {entry.get('permission_level')!r}")

    def _job_or_400(self, body: Mapping[str, Any]) -> dict[str, Any]:
        if body.get("job_id") is None:
            raise _bad("Missing required field: job_id")
        job = self._jobs.get(int(body["job_id"]))
        if job is None:
            raise _bad(f"Job {body['job_id']} does not exist.")
        return job

    def _check_settings(self, settings: Any) -> dict[str, Any]:
        if not isinstance(settings, dict):
            raise _bad("new_settings must be an object")
        for field, key in _MERGED_ARRAYS.items():
            if field in settings:
                if not isinstance(settings[field], list):
                    raise _bad(f"new_settings.{field} must be a list")
                for entry in settings[field]:
                    if not isinstance(entry, dict) or not entry.get(key):
                        raise _bad(f"new_settings.{field}: every entry needs its {key}")
        for jc in settings.get("job_clusters") or []:
            self._check_cluster(f"job cluster {jc['job_cluster_key']}", jc.get("new_cluster"))
        for t in settings.get("tasks") or []:
            if t.get("new_cluster") is not None:
                self._check_cluster(t["task_key"], t["new_cluster"])
        return settings

    def _jobs_update(self, body: Any) -> dict[str, Any]:
        """jobs/update: top-level fields of ``new_settings`` replace the job's; the arrays tasks,
        job_clusters, environments and parameters are merged by key (an entry replaced whole);
        ``fields_to_remove`` drops top-level fields or ``tasks/<key>`` / ``job_clusters/<key>``."""
        body = self._check_fields(body, UPDATE_FIELDS, "jobs/update")
        job = self._job_or_400(body)
        new = self._check_settings(body.get("new_settings") or {})
        remove = body.get("fields_to_remove") or []
        if not isinstance(remove, list) or not all(isinstance(f, str) and f for f in remove):
            raise _bad("fields_to_remove must be a list of field names")
        settings = copy.deepcopy(job.get("settings") or {})
        for field, value in new.items():
            key = _MERGED_ARRAYS.get(field)
            if key is None:
                settings[field] = copy.deepcopy(value)
                continue
            merged = list(settings.get(field) or [])
            for entry in value:
                at = next((i for i, e in enumerate(merged) if e.get(key) == entry[key]), None)
                if at is None:
                    merged.append(copy.deepcopy(entry))
                else:
                    merged[at] = copy.deepcopy(entry)
            settings[field] = merged
        for name in remove:
            field, _, item = name.partition("/")
            if item:
                if field not in ("tasks", "job_clusters"):
                    raise _bad(f"fields_to_remove: nested field {name} cannot be removed")
                key = _MERGED_ARRAYS[field]
                settings[field] = [e for e in settings.get(field) or [] if e.get(key) != item]
            else:
                settings.pop(field, None)
        job["settings"] = settings
        self.job_history[int(job["job_id"])].append(copy.deepcopy(settings))
        return {}

    def _jobs_reset(self, body: Any) -> dict[str, Any]:
        """jobs/reset: ``new_settings`` replaces every setting of the job."""
        body = self._check_fields(body, RESET_FIELDS, "jobs/reset")
        job = self._job_or_400(body)
        job["settings"] = copy.deepcopy(self._check_settings(body.get("new_settings")))
        self.job_history[int(job["job_id"])].append(copy.deepcopy(job["settings"]))
        return {}

    def edit_job(self, job_id: int, new_settings: Mapping[str, Any]) -> None:
        """Someone else edits the job (a jobs/update not made by the client under test)."""
        with self._lock:
            self._jobs_update({"job_id": int(job_id), "new_settings": copy.deepcopy(dict(new_settings))})

    def job(self, job_id: int) -> dict[str, Any]:
        """The job as jobs/get would answer it now (a copy)."""
        with self._lock:
            return copy.deepcopy(self._jobs[int(job_id)])

    def start_tasks(self, run_id: int) -> None:
        """The pending tasks of a run (e.g. a repair's) get their clusters and start running."""
        with self._lock:
            for t in self._runs[int(run_id)].get("tasks") or []:
                if _life_cycle(t) in ("PENDING", "QUEUED", "BLOCKED"):
                    t["state"] = {"life_cycle_state": "RUNNING", "state_message": ""}
                    t["status"] = {"state": "RUNNING"}

    def _check_idempotency(self, body: Mapping[str, Any]) -> int | None:
        token = body.get("idempotency_token")
        if token is None:
            return None
        if not isinstance(token, str) or not token or len(token) > 64:
            raise _bad("idempotency_token must be a string of 1 to 64 characters")
        return self._idempotency.get(token)

    def _runs_submit(self, body: Any) -> dict[str, Any]:
        body = self._check_fields(body, SUBMIT_FIELDS, "runs/submit")
        run_as = self._check_run_as(body.get("run_as"))
        self._check_acl(body.get("access_control_list"))
        existing = self._check_idempotency(body)
        if existing is not None:
            return {"run_id": existing}
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise _bad("runs/submit: 'tasks' must be a non-empty list")
        keys: list[str] = []
        for i, t in enumerate(tasks):
            if not isinstance(t, dict) or not isinstance(t.get("task_key"), str) or not t["task_key"]:
                raise _bad(f"tasks[{i}]: task_key is required")
            keys.append(t["task_key"])
        if len(set(keys)) != len(keys):
            raise _bad("runs/submit: task keys must be unique")
        envs = {e.get("environment_key") for e in body.get("environments") or [] if isinstance(e, dict)}
        for t in tasks:
            key = t["task_key"]
            if "job_cluster_key" in t:
                raise _bad(f"task {key}: Shared job cluster feature is not supported in runs/submit API.")
            types = [k for k in t if k.endswith("_task") and isinstance(t[k], dict)]
            unknown = sorted(k for k in set(t) - SUBMIT_TASK_FIELDS if k not in types)
            if unknown:
                raise _bad(f"task {key}: unknown field(s): {', '.join(unknown)}")
            if len(types) != 1:
                raise _bad(f"task {key}: exactly one task type (notebook_task, spark_python_task, ...) is required")
            computes = [c for c in ("new_cluster", "existing_cluster_id", "environment_key") if t.get(c)]
            if len(computes) > 1:
                raise _bad(f"task {key}: only one of new_cluster, existing_cluster_id, environment_key may be given")
            if not computes and types[0] not in _NO_CLUSTER and (
                    types[0] in _NEEDS_CLUSTER or not self.serverless_enabled):
                raise _bad(f"task {key}: a cluster is required (new_cluster or existing_cluster_id)")
            if t.get("environment_key") and t["environment_key"] not in envs:
                raise _bad(f"task {key}: environment {t['environment_key']} is not defined in 'environments'")
            nc = t.get("new_cluster")
            if nc is not None:
                self._check_cluster(key, nc)
            for dep in t.get("depends_on") or []:
                dk = dep.get("task_key") if isinstance(dep, dict) else None
                if dk not in keys or dk == key:
                    raise _bad(f"task {key}: depends_on names task {dk!r}, which is not in this submission")
        run_id = self._new_id()
        now = int(time.time() * 1000)
        run_tasks = []
        for t in tasks:
            rt = copy.deepcopy(t)
            rt["run_id"] = self._new_id()
            rt["state"] = {"life_cycle_state": "PENDING", "state_message": ""}
            rt["status"] = {"state": "PENDING"}
            self._task_parent[rt["run_id"]] = run_id
            run_tasks.append(rt)
        self._runs[run_id] = {
            "run_id": run_id, "run_name": body.get("run_name") or "Untitled", "run_type": "SUBMIT_RUN",
            "start_time": now, "creator_user_name": self.caller, "run_as_user_name": run_as or self.caller, "state": {"life_cycle_state": "PENDING", "state_message": ""},
            "status": {"state": "PENDING"}, "tasks": run_tasks,
        }
        self.submitted[run_id] = copy.deepcopy(body)
        if body.get("idempotency_token"):
            self._idempotency[body["idempotency_token"]] = run_id
        return {"run_id": run_id}

    @staticmethod
    def _check_cluster(key: str, nc: Any) -> None:
        if not isinstance(nc, dict):
            raise _bad(f"task {key}: new_cluster must be an object")
        if not nc.get("spark_version"):
            raise _bad(f"task {key}: new_cluster.spark_version is required")
        if not (nc.get("node_type_id") or nc.get("instance_pool_id")):
            raise _bad(f"task {key}: new_cluster needs node_type_id or instance_pool_id")
        auto = nc.get("autoscale")
        if auto is not None:
            if "num_workers" in nc:
                raise _bad(f"task {key}: new_cluster cannot have both num_workers and autoscale")
            lo, hi = auto.get("min_workers"), auto.get("max_workers")
            if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
                raise _bad(f"task {key}: autoscale needs 0 <= min_workers <= max_workers")
        elif not (isinstance(nc.get("num_workers"), int) and nc["num_workers"] >= 0):
            raise _bad(f"task {key}: new_cluster needs num_workers >= 0 or autoscale")

    def _clusters_events(self, body: Any) -> dict[str, Any]:
        body = self._check_fields(body, {"cluster_id", "start_time", "end_time", "order", "event_types", "offset",
                                         "limit", "page_size", "page_token"}, "clusters/events")
        cid = body.get("cluster_id")
        if not cid:
            raise _bad("Missing required field: cluster_id")
        if str(cid) not in self._cluster_events:
            raise _bad(f"Cluster {cid} does not exist")
        order = body.get("order", "DESC")
        if order not in ("ASC", "DESC"):
            raise _bad(f"Invalid order: {order}")
        limit = body.get("limit", 50)
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            raise _bad("limit must be between 1 and 500")
        offset = body.get("offset", 0)
        if not isinstance(offset, int) or offset < 0:
            raise _bad("offset must be a non-negative integer")
        events = sorted(self._cluster_events[str(cid)], key=lambda e: int(e.get("timestamp") or 0),
                        reverse=order == "DESC")
        types = body.get("event_types")
        if types:
            events = [e for e in events if e.get("type") in set(types)]
        page = copy.deepcopy(events[offset:offset + limit])
        out: dict[str, Any] = {"events": page, "total_count": len(events)}
        if offset + limit < len(events):
            out["next_page"] = {"cluster_id": cid, "offset": offset + limit, "limit": limit, "order": order}
        return out

    def _run_now(self, body: Any) -> dict[str, Any]:
        body = self._check_fields(body, RUN_NOW_FIELDS, "run-now")
        if body.get("job_id") is None:
            raise _bad("Missing required field: job_id")
        job_id = int(body["job_id"])
        if job_id not in self._jobs:
            raise _bad(f"Job {job_id} does not exist.")
        existing = self._check_idempotency(body)
        if existing is not None:
            return {"run_id": existing, "number_in_job": existing}
        run_id = self._new_id()
        self._runs[run_id] = {
            "run_id": run_id, "job_id": job_id, "run_type": "JOB_RUN", "start_time": int(time.time() * 1000),
            "run_name": (self._jobs[job_id].get("settings") or {}).get("name", ""),
            "state": {"life_cycle_state": "PENDING", "state_message": ""}, "status": {"state": "PENDING"},
        }
        if body.get("idempotency_token"):
            self._idempotency[body["idempotency_token"]] = run_id
        return {"run_id": run_id, "number_in_job": run_id}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeDatabricks  # set on the bound subclass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY each answer waits for a delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _send(self, status: int, payload: Any, extra: Mapping[str, str] | None = None, raw: bytes | None = None,
              content_type: str = "application/json") -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its time-out)
            self.close_connection = True

    def _serve(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        body: Any = None
        body_error = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body_error = "the request body is not valid JSON"
        given = self.headers.get("Authorization")
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        fault = fake._take_fault(parts.path)
        if parts.path == "/oidc/v1/token":
            self._serve_token(method, parts.path, raw_body, given, headers, fault)
            return
        auth = fake._bearer(given)

        def record(status: int | None, fault_kind: str | None = None) -> None:
            fake._record(RecordedRequest(method, parts.path, query, body if body_error is None else raw_body.decode(
                "utf-8", "replace"), headers, auth, status, fault_kind))

        if fault is not None:
            if fault.kind == "drop":
                record(None, "drop")
                self.close_connection = True
                return
            if fault.kind == "malformed":
                record(fault.status, "malformed")
                self._send(fault.status, None, raw=b"<html><body>502 Bad Gateway</body></html>",
                           content_type="text/html")
                return
            if fault.kind == "status":
                record(fault.status, "status")
                extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
                self._send(fault.status, {"error_code": fault.error_code, "message": fault.message}, extra)
                return
            if fault.kind == "slow":
                time.sleep(fault.seconds)
            if fault.kind == "hold_before":
                record(None, "hold_before")
                fake.holding.set()
                fake.release.wait(60)
                self.close_connection = True
                return
        fault_kind = fault.kind if fault is not None else None
        if auth == "missing":
            record(401, fault_kind)
            self._send(401, {"error_code": "UNAUTHENTICATED",
                             "message": "Credential was not sent or was of an unsupported type for this API."})
            return
        if auth == "expired":
            record(401, fault_kind)
            self._send(401, {"error_code": "UNAUTHENTICATED", "message": "Token is expired."})
            return
        if auth == "invalid":
            record(403, fault_kind)
            self._send(403, {"error_code": "PERMISSION_DENIED", "message": "Invalid access token."})
            return
        if body_error:
            record(400, fault_kind)
            self._send(400, {"error_code": "MALFORMED_REQUEST", "message": body_error})
            return
        try:
            answer = fake.handle(method, parts.path, query, body)
        except _ApiError as exc:
            record(exc.status, fault_kind)
            self._send(exc.status, {"error_code": exc.error_code, "message": exc.message})
            return
        except Exception as exc:  # noqa: BLE001 - a bug in the fake must still answer
            record(500, fault_kind)
            self._send(500, {"error_code": "INTERNAL_ERROR", "message": f"fake workspace bug: {exc!r}"})
            return
        if fault_kind in ("lost_answer", "hold_after"):
            record(None, fault_kind)
            if fault_kind == "hold_after":
                fake.holding.set()
                fake.release.wait(60)
            self.close_connection = True
            return
        record(200, fault_kind)
        self._send(200, answer)


    def _serve_token(self, method: str, path: str, raw_body: bytes, given: str | None, headers: dict[str, str],
                     fault: Fault | None) -> None:
        fake = self.fake
        form = {k: v[-1] for k, v in parse_qs(raw_body.decode("utf-8", "replace")).items()}
        shown = {k: ("***" if k == "client_secret" else v) for k, v in form.items()}

        def record(status: int | None, kind: str | None = None) -> None:
            fake._record(RecordedRequest(method, path, {}, shown, headers, "basic" if given else "missing",
                                         status, kind))

        if fault is not None and fault.kind == "status":
            record(fault.status, "status")
            self._send(fault.status, {"error": "temporarily_unavailable", "error_description": fault.message})
            return
        if method != "POST":
            record(405)
            self._send(405, {"error": "invalid_request", "error_description": "use POST"})
            return
        basic = given[len("Basic "):].strip() if given and given.startswith("Basic ") else None
        status, answer = fake._issue_token(form, basic)
        record(status)
        self._send(status, answer)


def make_snapshot(*, run_id: int = 1001, job_id: int | None = 77, job_name: str = "nightly-etl",
                  tasks: list[dict[str, Any]] | None = None, job_clusters: list[dict[str, Any]] | None = None,
                  repair_ids: Iterable[int] = (), legacy: bool = False, with_job: bool = True,
                  start_time: int = 1_760_000_000_000, result_state: str = "FAILED",
                  error: str = "java.lang.OutOfMemoryError: Java heap space",
                  job_settings: Mapping[str, Any] | None = None, run_as: Mapping[str, str] | None = None,
                  job_parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A small, valid snapshot document for tests.

    ``tasks``: dicts with ``task_key``, optional ``result`` (default SUCCESS), ``depends_on``
    (keys), and compute (``job_cluster_key`` default "main", or ``new_cluster``,
    ``existing_cluster_id``, ``environment_key``, or ``serverless: True`` for none); each failed
    task that did not fail upstream gets an output with ``error``. Task run ids are
    ``run_id * 100 + i + 1``. ``legacy``: a single-task run without a tasks array. ``run_as``:
    the job's ``settings.run_as`` (else the job runs as its creator, owner@example.com).
    ``job_parameters``: name -> the value the run used (the job's default is ``default-<name>``)."""
    def state(result: str) -> dict[str, Any]:
        return {"life_cycle_state": "TERMINATED", "result_state": result,
                "state_message": "" if result == "SUCCESS" else "Workload failed, see run output for details",
                "user_cancelled_or_timedout": False}

    run: dict[str, Any] = {"run_id": run_id, "run_name": job_name, "run_type": "JOB_RUN",
                           "start_time": start_time, "end_time": start_time + 60_000,
                           "creator_user_name": "owner@example.com", "state": state(result_state)}
    if job_id is not None:
        run["job_id"] = job_id
    if job_parameters:
        run["job_parameters"] = [{"name": k, "default": f"default-{k}", "value": v} for k, v in job_parameters.items()]
    outputs: dict[str, Any] = {}
    default_cluster = {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", "num_workers": 2}
    if legacy:
        run["notebook_task"] = {"notebook_path": "/Workspace/etl/main"}
        run["cluster_spec"] = {"new_cluster": dict(default_cluster)}
        if result_state != "SUCCESS":
            outputs[str(run_id)] = {"error": error, "error_trace": error, "metadata": {"run_id": run_id}}
    else:
        if tasks is None:
            tasks = [{"task_key": "main", "result": result_state}]
        run["tasks"] = []
        for i, spec in enumerate(tasks):
            spec = dict(spec)
            trid = run_id * 100 + i + 1
            result = spec.pop("result", "SUCCESS")
            t: dict[str, Any] = {"run_id": trid, "task_key": spec.pop("task_key"),
                                 **({} if any(k.endswith("_task") for k in spec) else
                                    {"notebook_task": {"notebook_path": f"/Workspace/etl/{i}"}}),
                                 "state": state(result), "attempt_number": 0, "start_time": start_time}
            deps = spec.pop("depends_on", [])
            if deps:
                t["depends_on"] = [{"task_key": d} for d in deps]
            if spec.pop("serverless", False):
                pass
            elif not any(k in spec for k in ("new_cluster", "existing_cluster_id", "environment_key")):
                t["job_cluster_key"] = spec.pop("job_cluster_key", "main")
            t.update(spec)
            run["tasks"].append(t)
            if result not in ("SUCCESS", "UPSTREAM_FAILED", "UPSTREAM_CANCELED"):
                outputs[str(trid)] = {"error": error, "error_trace": error,
                                      "metadata": {"run_id": trid, "task_key": t["task_key"]}}
        run["job_clusters"] = job_clusters if job_clusters is not None else [
            {"job_cluster_key": "main", "new_cluster": dict(default_cluster)}]
    history = []
    if repair_ids:
        history.append({"type": "ORIGINAL", "start_time": start_time, "state": state(result_state)})
        history.extend({"type": "REPAIR", "id": rid, "start_time": start_time + 1000 * (n + 1),
                        "state": state(result_state)} for n, rid in enumerate(repair_ids))
        run["repair_history"] = history
    doc: dict[str, Any] = {"snapshot_version": 1, "workspace_host": "https://adb-0000000000000000.0.azuredatabricks.net",
                           "run": run, "task_outputs": outputs, "history": {"prior_retries": 0}}
    if with_job and job_id is not None:
        settings: dict[str, Any] = {"name": job_name, "tags": {"team": "data"}}
        if run_as:
            settings["run_as"] = dict(run_as)
        if job_parameters:
            settings["parameters"] = [{"name": k, "default": f"default-{k}"} for k in job_parameters]
        if not legacy and job_clusters is None:
            settings["job_clusters"] = copy.deepcopy(run["job_clusters"])
        doc["job"] = {"job_id": job_id, "creator_user_name": "owner@example.com",
                      "run_as_user_name": (run_as or {}).get("user_name") or (run_as or {}).get(
                          "service_principal_name") or "owner@example.com",
                      "settings": {**settings, **dict(job_settings or {})}}
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.workspace",
                                     description="A local fake Databricks workspace (Jobs API 2.2).")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--snapshots", action="append", default=[], metavar="PATH",
                        help="a snapshot file or a folder of them (repeatable)")
    parser.add_argument("--token", help="the token to accept (default: a random one, printed)")
    parser.add_argument("--page-size", type=int, default=100, help="runs/get array page size")
    args = parser.parse_args(argv)
    fake = FakeDatabricks(token=args.token, page_size=args.page_size, port=args.port)
    loaded = fake.load_all(args.snapshots)
    fake.start()
    print(fake.url, flush=True)
    if not args.token:
        print(f"DATABRICKS_TOKEN={fake.token}", flush=True)
    print(f"serving {len(loaded)} run(s); Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
