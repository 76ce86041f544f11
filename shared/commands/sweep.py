"""``python -m shared sweep``: one sweep, exactly as the timer function runs it.

    sweep [--inline] [--workspace HOST_OR_ID] [--format text|json]

Without ``--inline`` the failed runs found go to the queue (TRIAGE_QUEUE_NAME in
AzureWebJobsStorage), where the deployed queue worker picks them up; with ``--inline`` each is
triaged here, one after the other (a backfill without the Functions host). Either way the
watermark advances, due actions are carried out and outcomes recorded, as on the timer.
Exit code 0 when everything was swept, 1 when a workspace or step failed (the report says which).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

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
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def _iso(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.app.sweep import run_sweep

    report = run_sweep(ctx.settings(), inline=args.inline, workspace=args.workspace)
    if args.format == "json":
        json.dump(report.to_dict(), ctx.stdout, indent=2)
        ctx.stdout.write("\n")
    else:
        verb = "triaged" if args.inline else "queued"
        for ws in report.workspaces:
            ctx.stdout.write(
                f"{ws.workspace}: window from {_iso(ws.window_from)}, {ws.listed} finished run(s), "
                f"{ws.failed} failed, {ws.already_decided} already decided, {len(ws.enqueued)} {verb}"
                f"{' ' + str(ws.enqueued) if ws.enqueued else ''}; watermark {_iso(ws.watermark_before)} -> "
                f"{_iso(ws.watermark_after)}\n")
        ctx.stdout.write(f"due actions carried out: {report.acted}; emails resent: {report.emails_resent}; "
                         f"outcomes recorded: {report.outcomes}\n")
    for error in report.errors:
        ctx.error(error)
    return 0 if report.ok else 1
