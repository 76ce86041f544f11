"""``python -m demo`` (``make demo``, and ``python -m shared demo`` from a clone): the whole product locally, no cloud account.

Starts a local fake Databricks workspace (real HTTP on loopback) serving the bundled example
failures in ``examples/``, triages each through the same client, store and pipeline production
uses (shadow mode, a local SQLite store), prints what it decided and the exact request it
would have sent, shows that a second delivery does not act twice, writes email previews, and
shows the webhook path: a Databricks failure notification posted to the webhook handler,
queued, and triaged by the worker.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["register", "run", "main", "would_send"]

ROOT = Path(__file__).resolve().parents[1]


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the pipeline on the bundled examples against a local fake workspace")
    p.add_argument("--examples", default=str(ROOT / "examples"), help="folder of snapshots to serve")
    p.add_argument("--out", default="demo-out", help="where the store and email previews go")
    p.set_defaults(run=run)


def would_send(action: str, plan: dict | None) -> str:
    """The WOULD SEND column: what each path would send, with the change list in words."""
    plan = plan or {}
    requests = plan.get("requests") or []
    changes = "; ".join(plan.get("changes") or [])
    if action in ("SEND_EMAIL", "ESCALATE"):
        who = plan.get("notify") or ("escalation" if action == "ESCALATE" else "owner")
        return f"email ({who})" + (f" with the change: {changes}" if changes else "")
    if not requests:
        return "-"
    paths = [str(r.get("path", "")).rsplit("/api/2.2/", 1)[-1].replace("jobs/runs/", "runs/") for r in requests]
    kind = plan.get("kind")
    if kind == "submit":
        run_as = requests[0].get("body", {}).get("run_as") or {}
        who = (f"service principal {run_as['service_principal_name']}" if run_as.get("service_principal_name")
               else f"user {run_as.get('user_name', '?')}")
        return f"runs/submit (one-time run as {who}): {changes}"
    if kind == "update_repair":
        return f"{' + '.join(paths)}, then the job put back: {changes}"
    body = requests[0].get("body") or {}
    extra = [f"latest_repair_id {body['latest_repair_id']}"] if "latest_repair_id" in body else []
    if body.get("job_parameters"):
        extra.append("job parameters " + ", ".join(sorted(body["job_parameters"])))
    what = f"{paths[0]} of all failed tasks" + (f" ({'; '.join(extra)})" if extra else "")
    return what + (f": {changes}" if changes else "")


def run(args, ctx) -> int:
    from demo.workspace import FakeDatabricks
    from shared.commands.classify import render_table
    from shared.config import Settings
    from shared.databricks import DatabricksClient, PatCredential
    from shared.commands.email_preview import write_preview
    from shared.snapshot import iter_snapshot_paths, load_snapshot
    from shared.store import open_store
    from shared.triage import decision_of_record, triage_run

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "emails").mkdir(parents=True)
    settings = Settings.from_env({"TRIAGE_MODE": "shadow", "TRIAGE_STORAGE": f"sqlite:///{out / 'triage.db'}",
                                  "TRIAGE_NODE_TYPE_LADDER": "Standard_E8ds_v5,Standard_E16ds_v5,Standard_E32ds_v5",
                                  "TRIAGE_MAX_WORKERS": "16", "TRIAGE_PUBLIC_BASE_URL": "https://triage.example.net"})
    paths = list(iter_snapshot_paths([args.examples]))
    snapshots = {load_snapshot(p).run_id: load_snapshot(p) for p in paths}
    with FakeDatabricks() as fake, open_store(settings) as store:
        fake.load_all(paths)
        client = DatabricksClient(fake.url, PatCredential(fake.token))
        ctx.stdout.write(f"Local fake Databricks workspace at {fake.url} serving {len(paths)} failed runs "
                         f"from {args.examples}\nMode: shadow (decisions recorded, nothing sent). "
                         f"Store: {settings.storage}\n\n")
        # The retry ledger lives in the store: seed it from the examples' recorded history, so a
        # run that was already retried three times shows the retry limit at work.
        from shared.databricks.capture import lineage_of

        for snap in snapshots.values():
            if snap.prior_retries:
                store.incr("lineage", lineage_of(snap.run), by=snap.prior_retries)
        rows = []
        for run_id, snap in snapshots.items():
            result = triage_run(run_id, settings, client=client, store=store, use_llm=False, workspace=fake.url)
            rec = result.record
            rows.append({"run": run_id, "case": snap.case_id, "category": rec.category, "action": rec.action,
                         "confidence": f"{rec.confidence:.2f}",
                         "would send": would_send(rec.action, rec.action_request)})
            if rec.action in ("SEND_EMAIL", "ESCALATE"):
                write_preview(snap, decision_of_record(rec), settings, out / "emails" / f"{snap.case_id}.html")
        ctx.stdout.write(render_table(rows, columns=("run", "case", "category", "action", "confidence", "would send"),
                                      widths={"would send": 150}) + "\n\n")
        writes = fake.writes
        ctx.stdout.write(f"Requests that changed anything in the workspace: {len(writes)} (shadow mode sends none).\n")

        again = [triage_run(r, settings, client=client, store=store, use_llm=False, workspace=fake.url)
                 for r in list(snapshots)[:3]]
        ctx.stdout.write("Delivered again: " + "; ".join(
            f"run {a.record.run_id} ({snapshots[a.record.run_id].case_id}, decision {a.record.decision_key}) -> "
            f"{'duplicate, not acted again' if a.duplicate else 'NEW DECISION'}" for a in again) + "\n")
        ctx.stdout.write(f"Email previews for the decisions that need a person: {out / 'emails'}/*.html "
                         f"({len(list((out / 'emails').glob('*.html')))} files)\n")
        _webhook_demo(ctx, settings, fake, store, client)
    ctx.stdout.write(f"\nDecisions are in {out / 'triage.db'} (not the default .triage/ store): try\n"
                     f"  TRIAGE_STORAGE=sqlite:///{out / 'triage.db'} .venv/bin/python -m shared decisions list\n"
                     f"  TRIAGE_STORAGE=sqlite:///{out / 'triage.db'} .venv/bin/python -m shared report\n")
    return 0


def _webhook_demo(ctx, settings, fake, store, client) -> None:
    """A Databricks failure notification, posted as a real HttpRequest to the webhook handler,
    queued (in memory here; an Azure Storage queue in Azure), then triaged by the queue worker."""
    from demo.webhook import MemoryQueue, post_notification, sample_notification
    from shared.app.runtime import open_runtime
    from shared.app.worker import process_request
    from shared.config import Settings
    from shared.snapshot import load_snapshot

    path = ROOT / "examples" / "webhook" / "dev-063.json"
    snap = load_snapshot(path)
    fake.load(path)
    env = {**settings.extra, "DATABRICKS_HOST": fake.url, "DATABRICKS_TOKEN": fake.token}
    wsettings = Settings.from_env(env)
    queue = MemoryQueue()
    payload = sample_notification(snap.run_id, job_id=snap.job_id, job_name=snap.job_name)
    delivery = post_notification(payload, wsettings, queue=queue)
    ctx.stdout.write("\nWebhook path:\n")
    ctx.stdout.write(f"  POST /api/databricks/webhook {payload['event_type']} run {snap.run_id} "
                     f"-> HTTP {delivery.status} {delivery.body}\n")
    ctx.stdout.write(f"  queued messages: {len(queue.messages)}\n")
    with open_runtime(wsettings, store=store) as runtime:
        for request in queue.requests():
            outcome = process_request(request, wsettings, runtime=runtime)
            rec = store.get(outcome.decision_key, str(snap.job_id))
            ctx.stdout.write(f"  worker: run {request.run_id} -> {rec.category} -> {rec.action} "
                             f"({rec.status}, mode {rec.mode}): {rec.reason}\n")
        again = post_notification(payload, wsettings, queue=queue)
        outcome = process_request(queue.requests()[-1], wsettings, runtime=runtime)
        ctx.stdout.write(f"  the same notification again -> HTTP {again.status}, worker: {outcome.status}\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m demo [--examples DIR] [--out DIR]``."""
    import argparse
    import os
    import sys

    from shared.cli import Context

    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["demo", *(sys.argv[1:] if argv is None else argv)])
    return int(args.run(args, Context(env=dict(os.environ))))


if __name__ == "__main__":
    raise SystemExit(main())
