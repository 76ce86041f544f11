"""``python -m shared classify PATH [PATH ...]``: classify snapshots offline."""

from __future__ import annotations

import json

from shared.commands.common import add_output, open_cli_store, render_table as _render
from shared.errors import SnapshotError
from shared.snapshot import iter_snapshot_paths, load_snapshot

__all__ = ["register", "run", "render_table"]

COLUMNS = ("case_id", "category", "action", "confidence", "decided_by", "reason")


def register(sub) -> None:
    p = sub.add_parser("classify", help="classify failure snapshots (files or folders of *.json)",
                       description="Classify failure snapshots and print one decision per snapshot.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a snapshot file or a folder of *.json snapshots (subfolders included)")
    add_output(p, default="json")
    p.add_argument("--no-llm", action="store_true", help="rules only, even when a model is configured")
    p.set_defaults(run=run)


def render_table(rows: list[dict], columns=COLUMNS, widths: dict | None = None) -> str:
    return _render(rows, columns, widths=widths or {"reason": 90})


def run(args, ctx) -> int:
    from shared.triage import decide

    settings = ctx.settings()
    store = None
    use_llm = not args.no_llm and settings.llm_configured
    if use_llm:
        store = open_cli_store(ctx, write=True, settings=settings)   # the model's answer cache
    failures = 0
    rows: list[dict] = []
    try:
        paths = list(iter_snapshot_paths(args.paths))
    except SnapshotError as exc:
        ctx.error(exc)
        return 1
    for path in paths:
        try:
            snapshot = load_snapshot(path)
        except SnapshotError as exc:
            ctx.error(exc)
            failures += 1
            continue
        d = decide(snapshot, settings, store=store, use_llm=use_llm)
        row = {"case_id": snapshot.case_id, "category": d.category.value, "action": d.action.value,
               "confidence": round(d.confidence, 3), "decided_by": d.decided_by, "reason": d.reason,
               "decision_key": snapshot.decision_key, "fingerprint": d.fingerprint}
        if args.output == "json":
            ctx.stdout.write(json.dumps(row) + "\n")
        else:
            rows.append(row)
    if args.output == "table" and rows:
        ctx.stdout.write(render_table(rows) + "\n")
    if store is not None:
        store.close()
    return 1 if failures else 0
