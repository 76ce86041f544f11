"""``python -m shared snapshot --run-id N [-o FILE]``: capture a live failure as a snapshot.

Reads the run, the output of each failed task and the job from the workspace in
DATABRICKS_HOST (auth: DATABRICKS_AUTH; the token through Key Vault when KEY_VAULT_URL is set), adds the retry count of the run's lineage from the
store, and writes the snapshot JSON to FILE or stdout, ready for ``classify`` or a regression case.
Exit 1 with one line on stderr when the workspace cannot be reached or refuses the credential.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("snapshot", help="capture a failed run from the workspace as a snapshot",
                              description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("--run-id", type=int, required=True, help="the job run id (the parent run of a multi-task job)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--case-id", default="", help="a case id to put in the snapshot")
    p.add_argument("--retry-deadline", type=float, default=60.0, metavar="SECONDS",
                   help="how long to keep retrying an unreachable or throttling workspace (default 60)")
    p.add_argument("--no-store", action="store_true",
                   help="do not read the lineage retry count from the store (prior_retries stays 0)")
    p.set_defaults(run=run)


def _open_store(settings: Settings, ctx: Any) -> Any:
    from shared.errors import StoreError
    from shared.store import open_store

    try:
        return open_store(settings)
    except NotImplementedError:
        return None
    except StoreError as exc:
        ctx.stderr.write(f"warning: store unavailable ({exc}); history.prior_retries left at 0\n")
        return None


def run(args: argparse.Namespace, ctx: Any) -> int:
    from shared.databricks.capture import capture_snapshot
    from shared.cli import ExitCode
    from shared.databricks import RetryPolicy

    if args.retry_deadline <= 0:
        ctx.error("--retry-deadline must be > 0 seconds")
        return ExitCode.USAGE
    from shared.app.runtime import build_client, build_secrets

    settings = ctx.settings()
    store = None if args.no_store else _open_store(settings, ctx)
    try:
        with build_secrets(settings) as secrets, \
                build_client(settings, secrets, retry=RetryPolicy(deadline_s=args.retry_deadline)) as client:
            snap = capture_snapshot(client, args.run_id, workspace_host=client.host, store=store,
                                    case_id=args.case_id, max_outputs=settings.max_task_outputs)
    finally:
        if store is not None:
            store.close()
    text = json.dumps(snap.to_json(), indent=1, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        errors = len(snap.history.get("capture_errors") or [])
        ctx.stderr.write(f"wrote {args.output}: run {snap.run_id}, {len(snap.task_outputs)} task output(s)"
                         + (f", {errors} capture error(s)" if errors else "") + "\n")
    else:
        ctx.stdout.write(text)
    return ExitCode.OK
