"""``python -m shared triage --run-id N``: the whole pipeline for one run of DATABRICKS_HOST.

Prints a short summary (``-o json``: the decision record as JSON); progress and the store in use
on stderr. ``--timeout SECONDS`` bounds the whole command; a workspace that refuses the
connection fails at once.
"""

from __future__ import annotations

from typing import Any

from shared.commands.common import add_output, add_timeout, describe_store, retry_policy, write_json

__all__ = ["register", "run"]

SHADOW_NEVER_ACTED = ("a shadow decision is never acted on later, even after TRIAGE_MODE=act: "
                      "the next failure of the job is decided (and acted on) afresh")


def register(sub) -> None:
    p = sub.add_parser("triage", help="triage one failed run of the workspace in DATABRICKS_HOST",
                       description="Fetch a failed run, decide, record the decision and (in act mode) carry it out. "
                                   "Triaging the same run attempt again does not act again.")
    p.add_argument("--run-id", type=int, required=True, help="the job run id (not a task run id)")
    p.add_argument("--mode", choices=("shadow", "act"), help="override TRIAGE_MODE for this run")
    p.add_argument("--no-llm", action="store_true", help="rules only, even when a model is configured")
    add_output(p)
    add_timeout(p)
    p.set_defaults(run=run)


def _summary(run_id: int, out: dict[str, Any]) -> str:
    lines = [f"run {run_id}: {out.get('category')} -> {out.get('action')} "
             f"(confidence {float(out.get('confidence') or 0):.2f}, {out.get('decided_by') or '-'})"]
    job = out.get("job_name") or ""
    lines.append(f"  decision {out.get('decision_key')}  job {out.get('job_id')}" + (f" ({job})" if job else "")
                 + f"  mode {out.get('mode')}  status {out.get('status')}")
    if out.get("reason"):
        reason = " ".join(str(out["reason"]).split())
        lines.append(f"  reason: {reason[:300]}{'…' if len(reason) > 300 else ''}")
    if out.get("message"):
        lines.append(f"  {out['message']}")
    return "".join(ch if ch.isprintable() or ch == "\n" else "?" for ch in "\n".join(lines)) + "\n"


def run(args, ctx) -> int:
    import dataclasses

    from shared.app.runtime import build_client, build_notifier, build_secrets, build_store, refuse_act_without_channel
    from shared.triage import triage_run

    settings = ctx.settings()
    policy = retry_policy(args, ctx)
    ctx.note(f"store: {describe_store(settings)}")
    secrets = build_secrets(settings)
    with build_client(settings, secrets, retry=policy) as client, build_store(settings) as store:
        ctx.progress(f"triage run {args.run_id} of {client.host} ...")
        notifier = build_notifier(settings, secrets, store=store)
        if (args.mode or settings.mode) == "act":
            refuse_act_without_channel(dataclasses.replace(settings, mode="act"), notifier)
        # A person at the command line has decided to act now: no back-off wait.
        result = triage_run(args.run_id, settings, client=client, store=store, notifier=notifier,
                            mode=args.mode, use_llm=not args.no_llm, act_now=True, workspace=settings.databricks_host)
    if result.record is None:
        ctx.progress(f"[1/1] run {args.run_id} -> nothing to decide")
        if args.output == "json":
            write_json(ctx, {"run_id": args.run_id, "skipped": True, "message": result.message})
        else:
            ctx.stdout.write(f"run {args.run_id}: nothing to decide ({result.message})\n")
        return 0
    out = result.record.to_dict()
    out["duplicate"] = result.duplicate
    message = result.message
    if result.duplicate and result.record.mode == "shadow":
        message = f"{message}, in shadow mode; {SHADOW_NEVER_ACTED}"
    out["message"] = message
    ctx.progress(f"[1/1] run {args.run_id} -> {result.record.action}"
                 + (" (already decided)" if result.duplicate else ""))
    if args.output == "json":
        write_json(ctx, out)
    else:
        ctx.stdout.write(_summary(args.run_id, out))
    return 0
