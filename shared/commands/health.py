"""``python -m shared health [-o table|json] [--recount]``: the command-line twin of
``GET /api/health`` (the same figures, from ``shared.app.health.health_report``): is every
decision moving on (decisions past their deadline, actions retrying, notifications undelivered,
approvals being carried out), and the day's budget. Exit 0 when healthy; 1 when something is
stuck beyond its bound (or the store cannot be read, or the sweep stopped), with one line on
stderr saying what. Unlike the anonymous endpoint it shows the keys of what is stuck."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from shared.commands.common import add_output

    p = subparsers.add_parser(
        "health", help="is every decision moving on: what is stuck, retrying or undelivered, and the budget",
        description="The figures of GET /api/health from the decision store (TRIAGE_STORAGE; never created): "
                    "decisions past their deadline, actions retrying, notifications undelivered, approvals "
                    "being carried out, today's spend against the budget. Exit 0 when healthy, 1 when something "
                    "is stuck beyond its bound (docs/lifecycle.md).")
    p.add_argument("--recount", action="store_true",
                   help="count the last week's decisions now, instead of reading the summary the last sweep kept")
    add_output(p, legacy_format=False)
    p.set_defaults(run=run)


_FIGURES = (("past_deadline", "decisions past their deadline"), ("retrying", "actions retrying"),
            ("undelivered", "notifications undelivered"),
            ("undelivered_stuck", "undelivered for over 15 minutes"), ("approving", "approvals being carried out"),
            ("escalated", "escalated (handed to a person)"),
            ("awaiting_retriage", "triages that failed, to be placed again"), ("stuck_for_s", "oldest stuck for (s)"),
            ("summary_age_s", "sweep summary age (s)"))


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.app.health import health_report, store_spend_today
    from shared.commands.common import describe_store, render_table, write_json

    settings = ctx.settings()                  # invalid settings: one line naming the setting, exit 1
    ctx.note(f"store: {describe_store(settings)}")
    status, body = health_report(ctx.env, spend_today=store_spend_today, recount=args.recount, keys=True)
    lifecycle = body.get("lifecycle") or {}
    if args.output == "json":
        write_json(ctx, body)
    else:
        budget = body.get("budget") or {}
        rows = [{"figure": "status", "value": body.get("status")},
                {"figure": "verdict", "value": lifecycle.get("verdict")}]
        rows += [{"figure": label, "value": lifecycle.get(name)} for name, label in _FIGURES if name in lifecycle]
        rows += [{"figure": "stuck keys", "value": ", ".join(lifecycle.get("stuck_keys") or []) or "-"},
                 {"figure": "undelivered keys", "value": ", ".join(lifecycle.get("undelivered_keys") or []) or "-"}]
        rows += [{"figure": "budget per day (USD)", "value": budget.get("usd_per_day") or "none"},
                 {"figure": "spent today (USD)", "value": budget.get("today_usd")},
                 {"figure": "of it the model (USD)", "value": budget.get("today_model_usd")},
                 {"figure": "mode", "value": body.get("mode")}]
        ctx.stdout.write(render_table(rows, ("figure", "value"), widths={"value": 200}) + "\n")
    if status != 200:
        ctx.error(f"unhealthy: {lifecycle.get('verdict') or body.get('status')}")
        return 1
    return 0
