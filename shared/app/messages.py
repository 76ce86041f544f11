"""The queue message: what the webhook and the sweep put on the ``triage-requests`` queue, and
how the worker reads it back (a compact, versioned JSON document)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from shared.errors import RequestError

__all__ = ["MESSAGE_VERSION", "FAILURE_EVENT", "TriageRequest", "parse_id"]

MESSAGE_VERSION = 1
FAILURE_EVENT = "jobs.on_failure"
_MAX_ID = 2**63 - 1
_MAX_NAME = 1024          # job names are at most 4096 in Databricks; we keep a bounded label


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", float: "a fraction", bool: "a boolean",
            int: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _excerpt(value: Any, limit: int = 40) -> str:
    """A short, printable, quoted excerpt of a client value (for error messages)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_id(value: Any, where: str) -> int | None:
    """A Databricks id given as a number or a string of digits; None when absent.
    ``RequestError`` (400) naming ``where`` when it is anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RequestError(f"{where} must be a number or a string of digits, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            raise RequestError(f"{where} must be a number or a string of digits, got {_excerpt(value)}")
        number = int(text)
    else:
        raise RequestError(f"{where} must be a number or a string of digits, not {_json_type(value)}")
    if not 0 < number <= _MAX_ID:
        raise RequestError(f"{where} must be a positive 64-bit id, got {number}")
    return number



@dataclass(frozen=True)
class TriageRequest:
    """A request to triage one job run: what the webhook and the sweep put on the queue."""

    run_id: int                         # the job run to triage (the parent for task-level events)
    job_id: int | None = None
    job_name: str = ""
    workspace_id: str = ""              # as Databricks sent it (the sweep: the configured id)
    workspace: str = ""                 # the workspace host it resolved to
    task_key: str = ""                  # task-level notifications only
    task_run_id: int | None = None      # task-level notifications only: run.run_id
    event_type: str = FAILURE_EVENT
    source: str = "webhook"             # webhook | sweep | demo | cli
    request_id: str = ""
    received_at: int = 0                # ms epoch

    def to_message(self) -> str:
        """The queue message: compact JSON with a version number."""
        return json.dumps({"v": MESSAGE_VERSION, **asdict(self)}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_message(cls, text: str | bytes) -> "TriageRequest":
        """Parse a queue message. ``RequestError`` (status 400) says what is wrong."""
        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            doc = json.loads(text, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RequestError(f"the queue message is not JSON ({type(exc).__name__})") from exc
        if not isinstance(doc, dict):
            raise RequestError("the queue message is not a JSON object")
        version = doc.get("v")
        if version != MESSAGE_VERSION:
            raise RequestError(f"the queue message has version {version!r}; this app reads version {MESSAGE_VERSION}")
        run_id = parse_id(doc.get("run_id"), "run_id")
        if run_id is None:
            raise RequestError("the queue message has no run_id")
        job_id = parse_id(doc.get("job_id"), "job_id")
        task_run_id = parse_id(doc.get("task_run_id"), "task_run_id")
        strings = {}
        for name in ("job_name", "workspace_id", "workspace", "task_key", "event_type", "source", "request_id"):
            value = doc.get(name, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise RequestError(f"the queue message's {name} is not a string")
            strings[name] = value[:_MAX_NAME]
        received = doc.get("received_at", 0)
        if isinstance(received, bool) or not isinstance(received, int):
            raise RequestError("the queue message's received_at is not a whole number")
        return cls(run_id=run_id, job_id=job_id, task_run_id=task_run_id, received_at=received,
                   **{k: v for k, v in strings.items() if v or k not in ("event_type", "source")})
