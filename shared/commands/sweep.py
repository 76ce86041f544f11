"""``python -m shared sweep``: one sweep, exactly as the timer function runs it.

    sweep [--inline] [--workspace HOST_OR_ID] [-o table|json] [--timeout SECONDS] [--quiet]

Without ``--inline`` the failed runs found go to the queue (TRIAGE_QUEUE_NAME in
AzureWebJobsStorage), where the deployed queue worker picks them up; with ``--inline`` each is
triaged here, one after the other (a backfill without the Functions host). Either way the
watermark advances, due actions are carried out and outcomes recorded, as on the timer.
Each failed run is reported on stderr as it is handled (``[3/30] run 10153 -> RETRY``).
Exit code 0 when everything was swept, 1 when a workspace or step failed (one error line each).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from shared.commands.common import add_output, add_timeout, describe_store, retry_policy, write_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep", help="find failed runs the webhook missed and queue (or triage) them",
        description="One timer sweep: list finished runs since the watermark, queue the failed ones "
                    "without a decision, carry out due actions, record outcomes.")
    parser.add_argument("--inline", action="store_true",
                        help="triage each failed run here instead of queuing it")
    parser.add_argument("--workspace", metavar="HOST_OR_ID",
                        help="only this configured workspace (its URL, host name or id)")
    add_output(parser)
    add_timeout(parser)
    parser.set_defaults(run=run)


def _iso(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outcome_text(outcome: Any, store: Any, inline: bool) -> str:
    """What happened to one failed run, for the progress line."""
    if outcome is None:
        return "already decided"
    status = getattr(outcome, "status", None)
    if status is None:
        return "queued" if not inline else "done"
    key = getattr(outcome, "decision_key", "")
    if status in ("decided", "duplicate") and key:
        try:
            record = store.get(key)
        except Exception:  # noqa: BLE001 - progress is best effort
            record = None
        if record is not None:
            return f"{record.action}" + (" (already decided)" if status == "duplicate" else "")
    if status == "escalated":
        return f"ESCALATE (triage failed: {getattr(outcome, 'message', '')})"
    return status


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.app.runtime import open_runtime
    from shared.app.sweep import run_sweep

    settings = ctx.settings()
    ctx.note(f"store: {describe_store(settings)}")
    policy = retry_policy(args, ctx)
    with open_runtime(settings, retry=policy) as rt:
        def progress(index: int, total: int, run_id: int, outcome: Any) -> None:
            ctx.progress(f"[{index}/{total}] run {run_id} -> {_outcome_text(outcome, rt.store, args.inline)}")

        report = run_sweep(settings, inline=args.inline, workspace=args.workspace, runtime=rt, progress=progress)
    if args.output == "json":
        write_json(ctx, report.to_dict())
    else:
        verb = "triaged" if args.inline else "queued"
        for ws in report.workspaces:
            if ws.error:
                ctx.stdout.write(f"{ws.workspace}: FAILED after {ws.listed} finished run(s), {ws.failed} failed, "
                                 f"{len(ws.enqueued)} {verb}; watermark stays at {_iso(ws.watermark_after)}\n")
                continue
            ctx.stdout.write(
                f"{ws.workspace}: window from {_iso(ws.window_from)}, {ws.listed} finished run(s), "
                f"{ws.failed} failed, {ws.already_decided} already decided, {len(ws.enqueued)} {verb}"
                f"{' ' + str(ws.enqueued) if ws.enqueued else ''}; watermark {_iso(ws.watermark_before)} -> "
                f"{_iso(ws.watermark_after)}\n")
        if report.ok:
            ctx.stdout.write(f"due actions carried out: {report.acted}; emails resent: {report.emails_resent}; "
                             f"outcomes recorded: {report.outcomes}\n")
    for error in report.errors:
        ctx.error(error)
    return 0 if report.ok else 1
