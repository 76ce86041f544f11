"""``python -m shared triage --run-id N``: the whole pipeline for one run of DATABRICKS_HOST."""

from __future__ import annotations

import json

__all__ = ["register", "run"]


def register(sub) -> None:
    p = sub.add_parser("triage", help="triage one failed run of the workspace in DATABRICKS_HOST",
                       description="Fetch a failed run, decide, record the decision and (in act mode) carry it out. "
                                   "Triaging the same run attempt again does not act again.")
    p.add_argument("--run-id", type=int, required=True, help="the job run id (not a task run id)")
    p.add_argument("--mode", choices=("shadow", "act"), help="override TRIAGE_MODE for this run")
    p.add_argument("--no-llm", action="store_true", help="rules only, even when a model is configured")
    p.set_defaults(run=run)


def run(args, ctx) -> int:
    from shared.app.runtime import build_client, build_notifier, build_secrets, build_store
    from shared.triage import triage_run

    settings = ctx.settings()
    secrets = build_secrets(settings)
    with build_client(settings, secrets) as client, build_store(settings) as store:
        notifier = build_notifier(settings, secrets, store=store)
        # A person at the command line has decided to act now: no back-off wait.
        result = triage_run(args.run_id, settings, client=client, store=store, notifier=notifier,
                            mode=args.mode, use_llm=not args.no_llm, act_now=True, workspace=settings.databricks_host)
    if result.record is None:
        ctx.stdout.write(json.dumps({"run_id": args.run_id, "skipped": True, "message": result.message}) + "\n")
        return 0
    out = result.record.to_dict()
    out["duplicate"] = result.duplicate
    out["message"] = result.message
    ctx.stdout.write(json.dumps(out, default=str) + "\n")
    return 0
