"""``python -m shared snapshot --run-id N [--out FILE] [--timeout SECONDS]``: capture a live failure as a snapshot.

Reads the run, the output of each failed task and the job from the workspace in
DATABRICKS_HOST (auth: DATABRICKS_AUTH; the token through Key Vault when KEY_VAULT_URL is set), adds the retry count of the run's lineage from the
store, and writes the snapshot JSON to FILE or stdout, ready for ``classify`` or a regression case.
Secrets are redacted first (error text, job settings, parameters), so the file can go with a bug report.
Exit 1 with one line on stderr when the workspace cannot be reached or refuses the credential.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings

from shared.commands.common import add_output, add_timeout, note_deprecated, retry_policy, seconds_arg

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("snapshot", help="capture a failed run from the workspace as a snapshot",
                              description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("--run-id", type=int, required=True, help="the job run id (the parent run of a multi-task job)")
    p.add_argument("--out", metavar="FILE", help="write here (folders created) instead of stdout")
    add_output(p, default="json", legacy_format=False, file_alias=True)
    p.add_argument("--case-id", default="", help="a case id to put in the snapshot")
    p.add_argument("--retry-deadline", type=seconds_arg, default=60.0, metavar="SECONDS",
                   help="how long each call keeps retrying an unreachable or throttling workspace (default 60)")
    add_timeout(p)
    p.add_argument("--no-store", action="store_true",
                   help="do not read the lineage retry count from the store (prior_retries stays 0)")
    p.set_defaults(run=run)


def _open_store(settings: Settings, ctx: Any) -> Any:
    from shared.commands.common import open_cli_store
    from shared.errors import StoreError

    try:
        return open_cli_store(ctx, write=False, settings=settings)
    except NotImplementedError:
        return None
    except StoreError as exc:
        ctx.note(f"warning: {exc}; history.prior_retries left at 0")
        return None


def shareable(doc: Any, scrub: Callable[[str], str]) -> Any:
    """The snapshot as it may leave the process (a file attached to a bug report): secrets in the
    error text, the job's settings and its parameters redacted (``shared.redact``), and every
    secret value the app itself read scrubbed."""
    from shared.redact import redact_obj

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(redact_obj(doc))


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.databricks.capture import capture_snapshot
    from shared.cli import ExitCode

    from shared.app.runtime import build_client, build_secrets

    note_deprecated(args, ctx)

    settings = ctx.settings()
    store = None if args.no_store else _open_store(settings, ctx)
    try:
        with build_secrets(settings) as secrets, \
                build_client(settings, secrets, retry=retry_policy(args, ctx, deadline_s=args.retry_deadline)) as client:
            ctx.progress(f"reading run {args.run_id} from {client.host} ...")
            snap = capture_snapshot(client, args.run_id, workspace_host=client.host, store=store,
                                    case_id=args.case_id, max_outputs=settings.max_task_outputs)
            from shared.triage import read_cluster_events   # the events the triage would read, for offline replay

            snap = read_cluster_events(snap, settings, client=client)
            doc = shareable(snap.to_json(), secrets.scrub)
    finally:
        if store is not None:
            store.close()
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        errors = len(snap.history.get("capture_errors") or [])
        ctx.note(f"wrote {args.out}: run {snap.run_id}, {len(snap.task_outputs)} task output(s)"
                         + (f", {errors} capture error(s)" if errors else ""))
    else:
        ctx.stdout.write(text)
    return ExitCode.OK
