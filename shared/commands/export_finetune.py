"""``python -m shared export-finetune [--since 90d] -o train.jsonl [--valid FILE]``: confirmed
decisions as OpenAI chat fine-tuning JSONL, with a deterministic validation split."""

from __future__ import annotations

import argparse
from typing import Any

from shared.config import parse_duration

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export-finetune", help="export confirmed decisions as OpenAI chat fine-tuning JSONL",
        description="Write decisions confirmed by their outcome (a retry that succeeded) or by feedback as "
                    "OpenAI chat fine-tuning JSONL (system, user, assistant), redacted, with a deterministic "
                    "validation split. See docs/learning.md.")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the training file, e.g. train.jsonl")
    p.add_argument("--valid", metavar="FILE", help="the validation file (default: FILE with .valid before "
                                                   "the extension, e.g. train.valid.jsonl)")
    p.add_argument("--since", metavar="DURATION", help="only decisions of this period, e.g. 90d (default: all)")
    p.add_argument("--valid-percent", type=int, default=15, metavar="N",
                   help="share of decisions in the validation file, 0-50 (default 15)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.learning.finetune import export_finetune, load_records
    from shared.store import open_store

    if not 0 <= args.valid_percent <= 50:
        ctx.error("--valid-percent: must be between 0 and 50")
        return 2
    since_s = parse_duration(args.since, setting="--since") if args.since else None
    with open_store(ctx.settings()) as store:
        records = load_records(store, since_s=since_s)
    summary = export_finetune(records, args.output, valid_path=args.valid, valid_percent=args.valid_percent)
    ctx.stdout.write(summary.render())
    ctx.stdout.write(f"wrote {summary.train_path} and {summary.valid_path}\n")
    return 0
