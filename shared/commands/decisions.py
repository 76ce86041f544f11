"""``python -m shared decisions``: read the decision store.

    decisions list [--job ID] [--since 24h] [--limit N] [--format table|json]
    decisions show KEY [--job ID]

The store is the one the app uses (TRIAGE_STORAGE, else AzureWebJobsStorage, else the local
SQLite file .triage/triage.db).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from typing import Any

from shared.config import parse_duration
from shared.errors import ConfigError

__all__ = ["register", "run_list", "run_show"]

_COLUMNS = ("created", "job_id", "decision_key", "category", "action", "conf", "by", "mode", "status")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("decisions", help="list or show recorded decisions",
                                   description="Read the decision store (TRIAGE_STORAGE).")
    sub = parser.add_subparsers(dest="decisions_command", metavar="{list,show}", parser_class=type(parser))
    sub.required = True

    p_list = sub.add_parser("list", help="decisions, newest first")
    p_list.add_argument("--job", metavar="ID", help="only this job's decisions")
    p_list.add_argument("--since", metavar="DURATION",
                        help="only decisions made in this period, e.g. 90m, 24h, 7d")
    p_list.add_argument("--limit", type=int, default=100, metavar="N", help="at most N rows (default 100)")
    p_list.add_argument("--format", choices=("table", "json"), default="table")
    p_list.set_defaults(run=run_list)

    p_show = sub.add_parser("show", help="one decision as JSON")
    p_show.add_argument("key", metavar="KEY", help="the decision key, <run_id>-<repair_count>")
    p_show.add_argument("--job", metavar="ID", help="the job id (faster on Table Storage)")
    p_show.set_defaults(run=run_show)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: str) -> str:
    """A table cell: control characters shown as '?' so a hostile value cannot garble the terminal."""
    return "".join(ch if ch.isprintable() else "?" for ch in value)


def _as_json(record: Any) -> dict[str, Any]:
    d = record.to_dict()
    d["etag"] = record.etag
    return d


def _open(ctx: Any):
    from shared.store import open_store

    return open_store(ctx.settings())


def run_list(args: argparse.Namespace, ctx: Any) -> int:
    if args.limit is not None and args.limit < 0:
        raise ConfigError("--limit: must be 0 or more")
    since_ms = None
    if args.since:
        since_ms = int(time.time() * 1000) - parse_duration(args.since, setting="--since") * 1000
    with _open(ctx) as store:
        records = store.list(job_id=args.job, since_ms=since_ms, limit=args.limit)
    if args.format == "json":
        json.dump([_as_json(r) for r in records], ctx.stdout, indent=2, ensure_ascii=False)
        ctx.stdout.write("\n")
        return 0
    rows = [
        tuple(_cell(c) for c in (
            _iso(r.created_at), r.job_id or "-", r.decision_key, r.category or "-", r.action or "-",
            f"{r.confidence:.2f}", r.decided_by or "-", r.mode, r.status))
        for r in records
    ]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(_COLUMNS)]
    for row in [_COLUMNS, *rows]:
        ctx.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
    if not rows:
        ctx.stdout.write("(no decisions)\n")
    return 0


def run_show(args: argparse.Namespace, ctx: Any) -> int:
    with _open(ctx) as store:
        record = store.get(args.key, job_id=args.job)
    if record is None:
        where = f" for job {args.job}" if args.job else ""
        ctx.error(f"no decision with key {args.key!r}{where}")
        return 1
    json.dump(_as_json(record), ctx.stdout, indent=2, ensure_ascii=False)
    ctx.stdout.write("\n")
    return 0
