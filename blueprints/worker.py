"""The queue worker (``%TRIAGE_QUEUE_NAME%``) and its poison-queue twin (``%TRIAGE_QUEUE_NAME%-poison``).

The worker triages one request per message (``shared.app.worker.process_message``). A transient
failure raises, so the host makes the message visible again and retries it, up to
``maxDequeueCount`` (host.json); then the host moves it to ``<queue>-poison``, where
``triage_poison`` escalates "triage failed for run X" by the notifier, so no failure is dropped
silently. Both listen on the host storage connection ``AzureWebJobsStorage``.
"""

from __future__ import annotations

import logging

import azure.functions as func

__all__ = ["bp", "triage_worker", "triage_poison", "QUEUE_SETTING", "POISON_SUFFIX"]

log = logging.getLogger(__name__)

bp = func.Blueprint()

QUEUE_SETTING = "%TRIAGE_QUEUE_NAME%"   # resolved by the host from the app setting
POISON_SUFFIX = "-poison"               # the host's naming of a queue's poison queue
CONNECTION = "AzureWebJobsStorage"


@bp.function_name("triage_worker")
@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_SETTING, connection=CONNECTION)
def triage_worker(msg: func.QueueMessage) -> None:
    from shared.config import Settings
    from shared.app.runtime import process_runtime
    from shared.app.worker import process_message

    settings = Settings.from_env()
    attempt = getattr(msg, "dequeue_count", None) or 1
    with process_runtime(settings) as runtime:
        outcome = process_message(msg.get_body(), settings, dequeue_count=attempt, message_id=msg.id or "",
                                  runtime=runtime)
    log.info("queue message %s: %s %s", msg.id, outcome.status, outcome.decision_key)


@bp.function_name("triage_poison")
@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_SETTING + POISON_SUFFIX, connection=CONNECTION)
def triage_poison(msg: func.QueueMessage) -> None:
    from shared.config import Settings
    from shared.app.runtime import process_runtime
    from shared.app.worker import process_poison

    settings = Settings.from_env()
    with process_runtime(settings) as runtime:
        outcome = process_poison(msg.get_body(), settings, message_id=msg.id or "",
                                 dequeue_count=getattr(msg, "dequeue_count", None) or 0, runtime=runtime)
    log.info("poison message %s: %s %s", msg.id, outcome.status, outcome.decision_key)
