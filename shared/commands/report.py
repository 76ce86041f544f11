"""``python -m shared report [--since 7d] [-o table|json] [--out FILE]``: how the decisions of a period
worked out. ``--out`` writes the self-contained HTML report (``--html`` is its old name)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.commands.common import add_out_file, add_output, duration_arg, open_cli_store, write_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="per-category figures: retry success, escalations, agreement, recovery time",
        description="Report the decisions of a period per category and action: counts, retry success rate, "
                    "escalations, feedback and shadow agreement, top failing jobs and fingerprints, median "
                    "time to recovery (definitions in docs/learning.md).")
    p.add_argument("--since", default=duration_arg("7d"), type=duration_arg, metavar="DURATION",
                   help="the period, e.g. 24h, 7d, 30d (default 7d)")
    add_output(p)
    add_out_file(p, aliases=("--html",), help="also write a self-contained HTML report with charts to FILE")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.learning.report import load_report, render_html, render_text, report_to_dict

    with open_cli_store(ctx, write=False) as store:
        report = load_report(store, since_s=args.since, budget_usd_per_day=ctx.settings().budget_usd_per_day)
    if args.output == "json":
        write_json(ctx, report_to_dict(report))
    else:
        ctx.stdout.write(render_text(report))
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(report), encoding="utf-8")
        ctx.note(f"HTML report written to {path}")
    return 0
