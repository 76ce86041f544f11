"""The timer sweep on ``%TRIAGE_SWEEP_SCHEDULE%`` (NCRONTAB; ``0 */5 * * * *`` in the shipped settings).

One ``shared.app.sweep.run_sweep`` per tick: failed runs the webhook missed go to the queue, due
actions are carried out, outcomes recorded. ``python -m shared sweep`` is the same from a shell.
A sweep that could not cover everything raises after finishing what it could, so the invocation
shows as failed in the function's monitoring (the next tick picks up where this one stopped).
"""

from __future__ import annotations

import logging

import azure.functions as func

__all__ = ["bp", "triage_sweep", "SCHEDULE_SETTING"]

log = logging.getLogger(__name__)

bp = func.Blueprint()

SCHEDULE_SETTING = "%TRIAGE_SWEEP_SCHEDULE%"   # the host resolves it from the app setting


@bp.function_name("triage_sweep")
@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE_SETTING, run_on_startup=False, use_monitor=True)
def triage_sweep(timer: func.TimerRequest) -> None:
    from shared.config import Settings
    from shared.errors import TriageError
    from shared.app.runtime import process_runtime
    from shared.app.sweep import run_sweep

    if timer is not None and timer.past_due:
        log.warning("sweep: the timer is past due (the app was stopped or busy); catching up")
    settings = Settings.from_env()
    with process_runtime(settings) as runtime:
        report = run_sweep(settings, runtime=runtime)
    if not report.ok:
        raise TriageError("sweep finished with errors: " + "; ".join(report.errors))
