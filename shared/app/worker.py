"""The queue worker's logic: one ``TriageRequest`` in, one decision (or an escalation) out.

``blueprints/worker.py`` (queue trigger) and ``python -m shared sweep --inline`` call
``process_request``; the poison-queue trigger calls ``process_poison``.

What happens to a failure while triaging:

- ``DatabricksUnavailable`` (429/5xx/connection errors outlived the retry budget), ``StoreError``
  (the store or the queue), ``SecretError`` (Key Vault unreachable): **raise**. The host retries
  the message (``maxDequeueCount`` in host.json), then moves it to ``<queue>-poison``.
- Any other Databricks refusal (run not found, token refused, bad request), ``ConfigError``:
  **permanent**. Escalate "triage failed for run X" now
  (``shared.triage.report_triage_failure``) and complete the message.
- A message that is not a triage request: logged as an error with its id and dropped
  (retrying cannot fix it).
- Anything unexpected (a bug): raises, so it is retried, poisoned, then escalated by the poison
  trigger.
- The poison escalation carries a re-triage schedule: later sweeps triage the run again until it
  is placed (``shared.app.retriage``); the permanent escalations above do not.

The last error of a transient or unexpected failure is kept for two days in ``TriageState`` (kind
``triage_error``, key the run id), so the poison escalation can say what went wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import (
    ConfigError,
    DatabricksError,
    DatabricksUnavailable,
    RequestError,
    SecretError,
    StoreError,
)
from shared.app.messages import TriageRequest

if TYPE_CHECKING:  # pragma: no cover
    from shared.store.base import Store
    from shared.config import Settings
    from shared.app.runtime import Runtime

__all__ = ["WorkerOutcome", "TRANSIENT_ERRORS", "is_transient", "process_request", "process_message",
           "process_poison"]

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (DatabricksUnavailable, StoreError, SecretError)
_ERROR_KIND = "triage_error"
_ERROR_TTL_S = 2 * 86400


@dataclass(frozen=True)
class WorkerOutcome:
    """What one message led to: ``status`` is decided / duplicate / skipped / escalated / malformed."""

    status: str
    run_id: int | None = None
    decision_key: str = ""
    message: str = ""


def is_transient(exc: BaseException) -> bool:
    """True when retrying the message later may succeed."""
    return isinstance(exc, TRANSIENT_ERRORS)


def _remember_error(store: Store, run_id: int, error: str) -> None:
    try:
        store.state_put(_ERROR_KIND, str(run_id), {"error": error[:2000]}, ttl_s=_ERROR_TTL_S)
    except Exception as exc:  # noqa: BLE001 - best effort: the store may be what is failing
        log.debug("could not keep the error of run %s: %s", run_id, exc)


def _last_error(store: Store, run_id: int) -> str:
    try:
        entry = store.state_get(_ERROR_KIND, str(run_id))
    except Exception:  # noqa: BLE001 - best effort
        return ""
    return str(entry.value.get("error", "")) if entry else ""


def _describe(exc: BaseException) -> str:
    from shared.redact import redact

    return redact(f"{type(exc).__name__}: {exc}")[:2000]


def process_request(request: TriageRequest, settings: "Settings", *, runtime: "Runtime",
                    dequeue_count: int = 1) -> WorkerOutcome:
    """Triage one request. Raises transient errors (see the table above); escalates permanent ones."""
    from shared.app.runtime import workspace_for_host
    from shared.triage import report_triage_failure, triage_run

    store = runtime.store
    job_id = str(request.job_id or "nojob")
    try:
        workspace = workspace_for_host(settings, request.workspace)
        client = runtime.client(workspace)
        result = triage_run(request.run_id, settings, client=client, store=store, notifier=runtime.notifier,
                            workspace=workspace.host)
    except TRANSIENT_ERRORS as exc:
        error = _describe(exc)
        log.warning("triage of run %s failed (attempt %s), the queue will retry: %s",
                    request.run_id, dequeue_count, error)
        _remember_error(store, request.run_id, error)
        raise
    except (DatabricksError, ConfigError) as exc:
        error = _describe(exc)
        log.error("triage of run %s failed for good, escalating: %s", request.run_id, error)
        record = report_triage_failure(request.run_id, error, settings, store=store, notifier=runtime.notifier,
                                       workspace=request.workspace, job_id=job_id)
        return WorkerOutcome("escalated", request.run_id, record.decision_key, error)
    except Exception as exc:
        # Unexpected (a bug, an answer we cannot read): retried, then poisoned; keep what went
        # wrong so the poison escalation can say it.
        _remember_error(store, request.run_id, _describe(exc))
        raise
    record = result.record
    if record is None:  # the run is running again or did not fail: nothing to decide
        log.info("run %s: %s", request.run_id, result.message)
        return WorkerOutcome("skipped", request.run_id, "", result.message)
    status = "duplicate" if result.duplicate else "decided"
    log.info("run %s: %s %s -> %s (%s)%s", request.run_id, record.category, record.decision_key, record.action,
             record.status, " [duplicate delivery]" if result.duplicate else "")
    return WorkerOutcome(status, request.run_id, record.decision_key, result.message)


def _parse(body: str | bytes, message_id: str) -> TriageRequest | None:
    try:
        return TriageRequest.from_message(body)
    except RequestError as exc:
        log.error("queue message %s is not a triage request and is dropped: %s", message_id or "?", exc.message)
        return None


def process_message(body: str | bytes, settings: "Settings", *, dequeue_count: int = 1, message_id: str = "",
                    runtime: "Runtime | None" = None) -> WorkerOutcome:
    """The queue trigger's work: parse, build the runtime (unless given), triage."""
    from shared.app.runtime import open_runtime

    request = _parse(body, message_id)
    if request is None:
        return WorkerOutcome("malformed", message=f"message {message_id} dropped")
    rt = runtime or open_runtime(settings)
    try:
        return process_request(request, settings, runtime=rt, dequeue_count=dequeue_count)
    finally:
        if runtime is None:
            rt.close()


def process_poison(body: str | bytes, settings: "Settings", *, message_id: str = "", dequeue_count: int = 0,
                   runtime: "Runtime | None" = None) -> WorkerOutcome:
    """A request the worker gave up on: escalate "triage failed for run X" (once per run)."""
    from shared.app.retriage import schedule
    from shared.app.runtime import open_runtime
    from shared.store import now_ms
    from shared.triage import report_triage_failure

    request = _parse(body, message_id)
    if request is None:
        return WorkerOutcome("malformed", message=f"poison message {message_id} dropped")
    rt = runtime or open_runtime(settings)
    try:
        last = _last_error(rt.store, request.run_id)
        error = ("the triage request failed on every attempt the queue allows (maxDequeueCount)"
                 + (f"; last error: {last}" if last else "; see the function log")
                 + (f" (request {request.request_id})" if request.request_id else "")
                 + "; the sweep triages the run again from 15 minutes on (a rerun it proposes waits for approval)")
        # a passing failure: later sweeps try again (shared.app.retriage); a refusal above is not retried
        record = report_triage_failure(request.run_id, error, settings, store=rt.store, notifier=rt.notifier,
                                       workspace=request.workspace, job_id=str(request.job_id or "nojob"),
                                       action_result=schedule(now_ms()))
        log.error("run %s: triage gave up; escalated as %s", request.run_id, record.decision_key)
        return WorkerOutcome("escalated", request.run_id, record.decision_key, error)
    finally:
        if runtime is None:
            rt.close()
