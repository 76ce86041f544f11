"""Azure Functions entry point (Python v2 programming model): the app and its blueprints.

    POST /api/databricks/webhook   blueprints/webhook.py   Databricks job notification -> queue
    queue %TRIAGE_QUEUE_NAME%      blueprints/worker.py    triage one run
    queue ...-poison               blueprints/worker.py    escalate a request the worker gave up on
    timer %TRIAGE_SWEEP_SCHEDULE%  blueprints/sweep.py     catch what the webhook missed; due actions
    GET  /api/health               blueprints/health.py    version, mode, configured integrations
    /api/feedback...               blueprints/feedback.py  people's verdicts on decisions

Importing this module does no I/O and imports no cloud SDK (see benchmarks/cold_start.py).
"""

import logging

import azure.functions as func

from blueprints import feedback, health, sweep, webhook, worker
from shared.redact import install_log_redaction

# Every log line the host ships is redacted: the worker's handler is on the root logger by the
# time the host imports this module, and the filter goes on it (and on the root logger).
install_log_redaction()

# The Python worker ships every INFO record to the host (and so to Application Insights). The
# Azure SDKs log each HTTP request and response at INFO, which was three lines in four of what an
# invocation shipped (tests/host): keep their warnings and errors only.
for _noisy in ("azure.core.pipeline.policies.http_logging_policy", "azure.identity"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for _blueprint in (webhook.bp, worker.bp, sweep.bp, health.bp, feedback.bp):
    app.register_functions(_blueprint)
