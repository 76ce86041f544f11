"""The Azure Functions side: what the thin triggers in ``blueprints/`` call.

- ``runtime``: per-process clients (store, Databricks, secrets, notifier) built from settings.
- ``messages``: the queue message (``TriageRequest``); ``queue``: the Azure Storage queue.
- ``webhook``: the Databricks notification endpoint (validate, authenticate, enqueue, 202).
- ``worker``: a queue message in, a decision out (and the poison path).
- ``sweep``: the timer's sweep of the Jobs API, and the due work it owns.
- ``feedback``: the feedback HTTP endpoints.

Submodules are imported directly (``from shared.app.worker import process_message``) so that a
trigger loads only what it uses; see docs/functions.md.
"""

__all__: list[str] = []
