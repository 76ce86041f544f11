"""``python -m shared report [--since 7d] [--html FILE]``: how the decisions of a period worked out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.config import parse_duration

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="per-category figures: retry success, escalations, agreement, recovery time",
        description="Report the decisions of a period per category and action: counts, retry success rate, "
                    "escalations, feedback and shadow agreement, top failing jobs and fingerprints, median "
                    "time to recovery (definitions in docs/learning.md).")
    p.add_argument("--since", default="7d", metavar="DURATION", help="the period, e.g. 24h, 7d, 30d (default 7d)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with charts")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.learning.report import load_report, render_html, render_text
    from shared.store import open_store

    since_s = parse_duration(args.since, setting="--since")
    with open_store(ctx.settings()) as store:
        report = load_report(store, since_s=since_s)
    ctx.stdout.write(render_text(report))
    if args.html:
        path = Path(args.html)
        path.write_text(render_html(report), encoding="utf-8")
        ctx.stdout.write(f"HTML report written to {path}\n")
    return 0
