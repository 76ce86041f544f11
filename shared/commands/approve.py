"""``python -m shared approve KEY`` / ``python -m shared reject KEY``: the command-line twins of
the Approve and Reject buttons of an approval request (docs/trust.md)."""

from __future__ import annotations

import argparse
from typing import Any

from shared.errors import DecisionNotFound

__all__ = ["register", "run_approve", "run_reject"]


def register(subparsers: Any) -> None:
    from shared.commands.common import add_output

    for name, fn, what in (("approve", run_approve, "approve the proposed retry of a decision and carry it out once"),
                           ("reject", run_reject, "reject the proposed retry of a decision")):
        p = subparsers.add_parser(name, help=what, description=what[0].upper() + what[1:] + ". A decision asks for "
                                  "approval when a retry was proposed that the policy will not make on its own.")
        p.add_argument("key", metavar="KEY", help="the decision key, <run_id>-<repair_count>")
        p.add_argument("--job", metavar="ID", help="the job id (faster on Table Storage)")
        p.add_argument("--by", metavar="NAME", default="cli", help="who approves or rejects (recorded)")
        add_output(p, legacy_format=False)
        if name == "reject":
            p.add_argument("--comment", metavar="TEXT", help="why (redacted, at most 1000 characters)")
        p.set_defaults(run=fn)


def _print(args: argparse.Namespace, ctx: Any, result: Any) -> int:
    from shared.commands.common import render_table, write_json

    rec = result.record
    out = {"decision_key": rec.decision_key if rec else None, "job_id": rec.job_id if rec else None,
           "approval": result.state, "changed": result.changed, "acted": result.acted, "message": result.message}
    if rec is not None:
        out.update(action=rec.action, status=rec.status, decided_by=rec.decided_by,
                   action_result=rec.action_result)
    ctx.note(result.message)
    if args.output == "json":
        write_json(ctx, out)
    else:
        ctx.stdout.write(render_table([out], ("decision_key", "job_id", "approval", "changed", "action", "status",
                                              "decided_by")) + "\n")
    return 0


def run_approve(args: argparse.Namespace, ctx: Any) -> int:
    from shared.app.approvals import approve
    from shared.app.runtime import build_client, build_notifier, build_secrets, workspace_for_host

    settings = ctx.settings()
    clients: list[Any] = []

    from shared.commands.common import open_cli_store

    with build_secrets(settings) as secrets, open_cli_store(ctx, write=False, settings=settings) as store:
        def client_for(record: Any) -> Any:
            c = build_client(settings, secrets, workspace=workspace_for_host(settings, record.workspace))
            clients.append(c)
            return c

        notifier = build_notifier(settings, secrets, store=store)
        try:
            result = approve(store, args.key, settings, client_for=client_for, notifier=notifier,
                             by=args.by, job_id=args.job)
        except DecisionNotFound as exc:
            ctx.error(exc)
            return 1
        finally:
            for c in clients:
                c.close()
    return _print(args, ctx, result)


def run_reject(args: argparse.Namespace, ctx: Any) -> int:
    from shared.app.approvals import reject
    from shared.commands.common import open_cli_store

    with open_cli_store(ctx, write=False) as store:
        try:
            result = reject(store, args.key, ctx.settings(), by=args.by, comment=args.comment, job_id=args.job)
        except DecisionNotFound as exc:
            ctx.error(exc)
            return 1
    return _print(args, ctx, result)
