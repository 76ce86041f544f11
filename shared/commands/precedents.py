"""``python -m shared precedents list|show|remove``: the corrections that decide failures
(shared/learning/precedents.py)."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

__all__ = ["register", "run"]

COLUMNS = ("id", "scope", "job_id", "action", "category", "fired", "expires", "from_decision")


def register(subparsers: Any) -> None:
    from shared.commands.common import add_output

    p = subparsers.add_parser("precedents", help="list, show or remove precedents (corrections that decide)",
                              description="A correction (feedback --verdict wrong --action A) on a failure "
                                          "fingerprint decides the next failure with that fingerprint in the "
                                          "same job (or workspace, with --scope workspace).")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    ls = verbs.add_parser("list", help="the live precedents (newest first)")
    ls.add_argument("--all", action="store_true", help="include expired ones")
    add_output(ls, legacy_format=False)
    show = verbs.add_parser("show", help="one precedent, whole")
    show.add_argument("id", metavar="ID")
    rm = verbs.add_parser("remove", help="stop a precedent from deciding")
    rm.add_argument("id", metavar="ID")
    p.set_defaults(run=run)


def _date(ms: Any) -> str:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.commands.common import open_cli_store, render_table, write_json
    from shared.learning.precedents import get_precedent, list_precedents, remove_precedent

    with open_cli_store(ctx, write=False) as store:
        if args.verb == "list":
            items = list_precedents(store, include_expired=args.all)
            if args.output == "json":
                write_json(ctx, items)
            else:
                rows = [{"id": p.get("id"), "scope": p.get("scope"),
                         "job_id": p.get("job_id") if p.get("scope") == "job" else "*", "action": p.get("action"),
                         "category": p.get("category"), "fired": p.get("fired") or 0,
                         "expires": "expired" if p.get("expired") else _date(p.get("expires_at")),
                         "from_decision": p.get("decision_key")} for p in items]
                ctx.stdout.write(render_table(rows, COLUMNS) + "\n")
            ctx.note(f"{len(items)} precedent(s)")
            return 0
        if args.verb == "show":
            p = get_precedent(store, args.id)
            if p is None:
                ctx.error(f"no precedent {args.id!r} (see: python -m shared precedents list)")
                return 1
            write_json(ctx, p)
            return 0
        if not remove_precedent(store, args.id):
            ctx.error(f"no precedent {args.id!r} (see: python -m shared precedents list)")
            return 1
        ctx.note(f"precedent {args.id} removed: it no longer decides")
        return 0
