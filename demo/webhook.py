"""The webhook path without Azure: post a Databricks failure notification to the real handler.

For ``make demo`` and for trying the app on a laptop::

    queue = MemoryQueue()
    delivery = post_notification(sample_notification(run_id, job_id=7, job_name="nightly-etl"),
                                 settings, queue=queue)
    delivery.status, delivery.body         # 202, {"status": "accepted", "request_id": ...}
    request = delivery.request             # the TriageRequest as the queue worker will read it
    process_request(request, settings, runtime=rt)    # shared.app.worker: triage it

The notification travels as a real ``azure.functions.HttpRequest`` through
``shared.app.webhook.handle_webhook`` (the same code the HTTP trigger runs), and the queued message is
parsed back from its wire text, so what the demo shows is what the deployed app does. Pass any
``TriageQueue`` (Azurite) instead of the in-memory queue to use a real queue.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.app.messages import FAILURE_EVENT, TriageRequest
from shared.app.http import status_and_json
from shared.app.webhook import WebhookCredentials, handle_webhook

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings

__all__ = ["MemoryQueue", "Delivery", "sample_notification", "post_notification"]

WEBHOOK_URL = "http://localhost:7071/api/databricks/webhook"


class MemoryQueue:
    """An in-process stand-in for the triage queue: keeps the message texts it was given."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def send(self, request: TriageRequest) -> str:
        self.messages.append(request.to_message())
        return str(len(self.messages))

    __call__ = send

    def requests(self) -> list[TriageRequest]:
        """Every queued request, parsed from its message text as the worker parses it."""
        return [TriageRequest.from_message(m) for m in self.messages]


@dataclass(frozen=True)
class Delivery:
    status: int
    body: dict[str, Any]
    requests: list[TriageRequest] = field(default_factory=list)

    @property
    def request(self) -> TriageRequest | None:
        """The request this delivery queued (None when it was ignored or rejected)."""
        return self.requests[-1] if self.requests else None


def sample_notification(run_id: int, *, job_id: int | None = None, job_name: str = "",
                        workspace_id: str = "", task_key: str = "", task_run_id: int | None = None,
                        event_type: str = FAILURE_EVENT) -> dict[str, Any]:
    """A notification shaped like Databricks' (ids as strings, as its documentation shows them).
    With ``task_key`` it is task-level: ``run.run_id`` is the task run, ``parent_run_id`` the job run."""
    doc: dict[str, Any] = {"event_type": event_type, "workspace_id": str(workspace_id or "0")}
    if task_key:
        doc["task"] = {"task_key": task_key}
        doc["run"] = {"run_id": str(task_run_id or run_id), "parent_run_id": str(run_id)}
    else:
        doc["run"] = {"run_id": str(run_id)}
    doc["job"] = {"job_id": str(job_id) if job_id is not None else "", "name": job_name}
    if job_id is None:
        doc["job"].pop("job_id")
    return doc


def post_notification(payload: dict[str, Any] | bytes, settings: "Settings", *, queue: Any = None,
                      credentials: WebhookCredentials | None = None) -> Delivery:
    """POST ``payload`` to the webhook handler as a real ``HttpRequest`` and return the answer
    and the requests it queued. ``credentials``: sent as HTTP Basic and required by the handler."""
    import azure.functions as func

    queue = MemoryQueue() if queue is None else queue
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if credentials is not None:
        token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = func.HttpRequest(method="POST", url=WEBHOOK_URL, headers=headers, body=body)
    queued: list[TriageRequest] = []

    def enqueue(triage_request: TriageRequest) -> None:
        queue(triage_request)
        queued.append(TriageRequest.from_message(triage_request.to_message()))

    status, answer = status_and_json(handle_webhook(request, settings=settings, credentials=credentials,
                                                    enqueue=enqueue))
    return Delivery(status=status, body=answer, requests=queued)
