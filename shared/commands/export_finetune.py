"""``python -m shared export-finetune [--since 90d] --out train.jsonl [--valid FILE]``: confirmed
decisions as OpenAI chat fine-tuning JSONL, with a deterministic validation split."""

from __future__ import annotations

import argparse
from typing import Any

from shared.commands.common import add_output, duration_arg, int_range, note_deprecated, open_cli_store, write_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export-finetune", help="export confirmed decisions as OpenAI chat fine-tuning JSONL",
        description="Write decisions confirmed by their outcome (a retry that succeeded) or by feedback as "
                    "OpenAI chat fine-tuning JSONL (system, user, assistant), redacted, with a deterministic "
                    "validation split. See docs/learning.md.")
    p.add_argument("--out", metavar="FILE", help="the training file, e.g. train.jsonl (folders are created)")
    add_output(p, legacy_format=False, file_alias=True)
    p.add_argument("--valid", metavar="FILE", help="the validation file (default: FILE with .valid before "
                                                   "the extension, e.g. train.valid.jsonl)")
    p.add_argument("--since", metavar="DURATION", type=duration_arg,
                   help="only decisions of this period, e.g. 90d (default: all)")
    p.add_argument("--valid-percent", type=int_range(0, 50), default=15, metavar="N",
                   help="share of decisions in the validation file, 0-50 (default 15)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Any) -> int:
    from pathlib import Path

    from shared.cli import ExitCode
    from shared.learning.finetune import export_finetune, load_records

    if not args.out:
        ctx.error("export-finetune: --out FILE is required (the training file, e.g. train.jsonl)")
        return ExitCode.USAGE
    note_deprecated(args, ctx)
    for target in (args.out, args.valid):
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
    with open_cli_store(ctx, write=False) as store:
        records = load_records(store, since_s=args.since)
    summary = export_finetune(records, args.out, valid_path=args.valid, valid_percent=args.valid_percent)
    if args.output == "json":
        write_json(ctx, {"train_file": summary.train_path, "valid_file": summary.valid_path,
                         "train": summary.train, "valid": summary.valid, "skipped": summary.skipped,
                         "per_category": {k: dict(v) for k, v in summary.per_category.items()},
                         "per_source": dict(summary.per_source), "prompt_version": summary.prompt_version})
    else:
        ctx.stdout.write(summary.render())
        ctx.stdout.write(f"wrote {summary.train_path} and {summary.valid_path}\n")
    return 0
