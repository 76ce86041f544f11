"""``python -m shared decisions``: read the decision store.

    decisions list [--job NAME_OR_ID] [--since 24h] [--limit N] [-o table|json]
    decisions show KEY [--job NAME_OR_ID]
    decisions handled KEY [--job NAME_OR_ID]     a person dealt with it: resolve its page

The store is the one the app uses (TRIAGE_STORAGE, else AzureWebJobsStorage, else the local
SQLite file .triage/triage.db), named on stderr; a store that does not exist is an error (a
read never creates one). The table is followed, on stderr, by "100 of 600 decisions shown".
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from typing import Any

from shared.commands.common import (add_output, duration_arg, non_negative_int, open_cli_store, render_table, shown,
                                    write_json)

__all__ = ["register", "run_list", "run_show", "run_handled"]

_COLUMNS = ("created", "job_id", "job_name", "decision_key", "category", "action", "confidence", "decided_by",
            "mode", "status")
_COUNT_CAP = 10_000        # decisions counted to say "100 of 600 shown"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("decisions", help="list or show recorded decisions, or mark one handled",
                                   description="Read the decision store (TRIAGE_STORAGE). Never creates it.")
    sub = parser.add_subparsers(dest="decisions_command", metavar="{list,show,handled}", parser_class=type(parser))
    sub.required = True

    p_list = sub.add_parser("list", help="decisions, newest first")
    p_list.add_argument("--job", metavar="NAME_OR_ID", help="only this job's decisions (its id or its name)")
    p_list.add_argument("--since", metavar="DURATION", type=duration_arg,
                        help="only decisions made in this period, e.g. 90m, 24h, 7d")
    p_list.add_argument("--limit", type=non_negative_int, default=100, metavar="N",
                        help="at most N rows (default 100; 0 for all)")
    add_output(p_list)
    p_list.set_defaults(run=run_list)

    p_show = sub.add_parser("show", help="one decision as JSON")
    p_show.add_argument("key", metavar="KEY", help="the decision key, <run_id>-<repair_count>")
    p_show.add_argument("--job", metavar="NAME_OR_ID", help="the job id or name (an id is faster on Table Storage)")
    p_show.add_argument("-o", "--output", choices=("json",), default="json", help="output format (json)")
    p_show.set_defaults(run=run_show)

    p_handled = sub.add_parser("handled", help="mark a paged decision handled: its PagerDuty alert (or its "
                                                "incident, once every job of it is handled or recovered) is resolved")
    p_handled.add_argument("key", metavar="KEY", help="the decision key, <run_id>-<repair_count>")
    p_handled.add_argument("--job", metavar="NAME_OR_ID", help="the job id (faster on Table Storage)")
    p_handled.add_argument("-o", "--output", choices=("json",), default="json", help="output format (json)")
    p_handled.set_defaults(run=run_handled)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_json(record: Any) -> dict[str, Any]:
    d = record.to_dict()
    d["etag"] = record.etag
    return d


def _select(store: Any, job: str | None, since_ms: int | None, limit: int | None) -> tuple[list[Any], int | None]:
    """(the newest ``limit`` decisions of the filter, how many match in all (None past the cap)).
    ``job`` is a job id or, when no decision has that id, a job name (case-insensitive)."""
    job = (job or "").strip() or None
    fetched = store.list(job_id=job, since_ms=since_ms, limit=_COUNT_CAP + 1)
    if job is not None and not fetched:
        name = job.casefold()
        fetched = [r for r in store.list(since_ms=since_ms) if (r.job_name or "").casefold() == name]
    total: int | None = len(fetched) if len(fetched) <= _COUNT_CAP else None
    return (fetched[:limit] if limit else fetched[:_COUNT_CAP]), total


def run_list(args: argparse.Namespace, ctx: Any) -> int:
    since_ms = None
    if args.since is not None:
        since_ms = int(time.time() * 1000) - args.since * 1000
    with open_cli_store(ctx, write=False) as store:
        records, total = _select(store, args.job, since_ms, args.limit)
    if args.output == "json":
        write_json(ctx, [_as_json(r) for r in records])
    else:
        rows = [{"created": _iso(r.created_at), "job_id": r.job_id, "job_name": r.job_name,
                 "decision_key": r.decision_key, "category": r.category, "action": r.action,
                 "confidence": f"{r.confidence:.2f}", "decided_by": r.decided_by, "mode": r.mode,
                 "status": r.status} for r in records]
        if rows:
            ctx.stdout.write(render_table(rows, _COLUMNS, widths={"job_name": 30}) + "\n")
        else:
            ctx.stdout.write("(no decisions)\n")
    if total is None:
        ctx.note(f"{len(records)} of more than {_COUNT_CAP} decisions shown (use --limit to see more)")
    elif records:
        ctx.note(shown(len(records), total, "decisions"))
    return 0


def run_show(args: argparse.Namespace, ctx: Any) -> int:
    job = (args.job or "").strip() or None
    with open_cli_store(ctx, write=False) as store:
        record = store.get(args.key, job_id=job)
        if record is None and job is not None:       # --job may be the job's name
            record = store.get(args.key)
            if record is not None and (record.job_name or "").casefold() != job.casefold():
                record = None
    if record is None:
        where = f" for job {args.job}" if args.job else ""
        ctx.error(f"no decision with key {args.key!r}{where}")
        return 1
    write_json(ctx, _as_json(record))
    return 0


def run_handled(args: argparse.Namespace, ctx: Any) -> int:
    """A person dealt with the failure: record it and resolve what was paged for it."""
    from shared.app.runtime import open_runtime
    from shared.notify.routing import recovered

    settings = ctx.settings()
    job = (args.job or "").strip() or None
    with open_cli_store(ctx, write=False, settings=settings) as store:
        record = store.get(args.key, job_id=job)
        if record is None:
            ctx.error(f"no decision with key {args.key!r}" + (f" for job {args.job}" if args.job else ""))
            return 1
        if (record.notification or {}).get("recovered_at"):
            write_json(ctx, {"decision_key": record.decision_key, "status": "already recovered",
                             "how": record.notification.get("recovered_how")})
            return 0
        with open_runtime(settings, store=store) as rt:
            out = recovered(settings, record, store=store, notifier=rt.notifier, now_ms=int(time.time() * 1000),
                            how="marked handled")
    write_json(ctx, {"decision_key": record.decision_key, "status": "handled", "resolved": out})
    if out is not None and out.get("status") not in ("resolved",):
        ctx.error(f"the page was not resolved: {out.get('error') or out.get('status')}")
        return 1
    return 0
