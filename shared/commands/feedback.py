"""``python -m shared feedback KEY --verdict correct|wrong [--action ACTION] [--comment TEXT]``:
record a person's verdict on a decision (see docs/learning.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from shared.errors import DecisionNotFound
from shared.models import Action, Category

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "feedback", help="record whether a decision was right",
        description="Record a person's verdict on a decision. A wrong verdict with --action is a "
                    "correction: the model sees it as an example, and the fine-tuning export uses it "
                    "as the label.")
    p.add_argument("key", metavar="KEY", help="the decision key, <run_id>-<repair_count>")
    p.add_argument("--verdict", required=True, choices=("correct", "wrong"))
    p.add_argument("--action", metavar="ACTION", type=str.upper,
                   choices=[a.value for a in Action], help="what should have been done (with --verdict wrong)")
    p.add_argument("--category", metavar="CATEGORY", type=str.upper,
                   choices=[c.value for c in Category], help="what the failure really was (with --verdict wrong)")
    p.add_argument("--comment", metavar="TEXT", help="a note (redacted, at most 1000 characters)")
    p.add_argument("--job", metavar="NAME_OR_ID", help="the job id (faster on Table Storage) or name")
    p.add_argument("--scope", choices=("job", "workspace"),
                   help="a correction decides the next failure like this one in the same job (default) "
                        "or in any job of the workspace")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.commands.common import open_cli_store
    from shared.learning.feedback import record_feedback

    with open_cli_store(ctx, write=False) as store:   # an existing decision is updated; nothing created
        job = (args.job or "").strip() or None
        if job is not None and store.get(args.key, job_id=job) is None:     # --job may be the job's name
            found = store.get(args.key)
            if found is not None and (found.job_name or "").casefold() == job.casefold():
                job = found.job_id
        try:
            record = record_feedback(store, args.key, args.verdict, correct_action=args.action,
                                     correct_category=args.category, comment=args.comment, source="cli",
                                     job_id=job, settings=ctx.settings(), scope=args.scope)
        except ValueError as exc:
            ctx.error(exc)
            return 2
        except DecisionNotFound as exc:
            ctx.error(exc)
            return 1
    fb = {k: v for k, v in record.feedback.items() if k != "history"}
    if fb.get("verdict") == "wrong" and fb.get("correct_action"):
        ctx.note(f"precedent: the next failure like this one in "
                 f"{'the workspace' if args.scope == 'workspace' else 'job ' + record.job_id} is decided "
                 f"{fb['correct_action']} (python -m shared precedents list)")
    ctx.stdout.write(f"feedback on {record.decision_key} (job {record.job_id}, {record.category} -> "
                     f"{record.action}): {json.dumps(fb, ensure_ascii=False, sort_keys=True)}\n")
    return 0
