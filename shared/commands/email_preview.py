"""``python -m shared email-preview SNAPSHOT [--out preview.html] [-o json]``: the email a failure would send.

Classifies the snapshot (``shared.triage.decide``, as the app would) and renders the email
for its decision with ``shared.notify.render_email``; nothing is sent and nothing is stored.
With ``--out`` the HTML body is written to the file (open it in a browser); without it the
plain-text body is printed. Feedback links are signed with the configured key when
TRIAGE_PUBLIC_BASE_URL and TRIAGE_FEEDBACK_SIGNING_KEY are set, else with a throwaway key
and a placeholder host (said on stderr), so the preview shows where they go.
"""

from __future__ import annotations

import secrets as _random
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shared.commands.common import add_output, note_deprecated, open_cli_store, write_json
from shared.errors import SecretError
from shared.models import Decision
from shared.notify import EMAIL_ACTIONS, Email, feedback_links, recipients_for, render_email
from shared.signing import key_from_secret
from shared.snapshot import Snapshot, load_snapshot
from shared.store import DecisionRecord

if TYPE_CHECKING:  # pragma: no cover
    from shared.secrets import SecretProvider
    from shared.config import Settings

__all__ = ["register", "run", "render_preview", "write_preview", "preview_record", "PLACEHOLDER_BASE_URL"]

PLACEHOLDER_BASE_URL = "https://your-triage-app.example.invalid"


def register(sub) -> None:
    p = sub.add_parser(
        "email-preview",
        help="render the email a snapshot's decision would send (nothing is sent)",
        description="Classify a failure snapshot and render the triage email for its decision without "
                    "sending it: HTML to a file with -o, else the plain-text body on stdout.",
    )
    p.add_argument("snapshot", metavar="SNAPSHOT", help="a failure snapshot (JSON)")
    p.add_argument("--out", metavar="FILE", help="write the HTML body to FILE, folders created (default: print "
                                                 "the text body)")
    add_output(p, default=None, legacy_format=False, file_alias=True)
    p.add_argument("--no-llm", action="store_true", help="rules only, even when a model is configured")
    p.set_defaults(run=run)


def preview_record(snapshot: Snapshot, decision: Decision, settings: Settings) -> DecisionRecord:
    """The decision record the pipeline would store for this decision (not stored here)."""
    return DecisionRecord(
        decision_key=snapshot.decision_key,
        job_id=str(snapshot.job_id or "nojob"),
        run_id=snapshot.run_id,
        workspace=snapshot.workspace_host,
        job_name=snapshot.job_name,
        category=decision.category.value,
        action=decision.action.value,
        confidence=float(decision.confidence),
        decided_by=decision.decided_by,
        reason=decision.reason,
        fingerprint=decision.fingerprint,
        excerpt=decision.excerpt,
        mode=settings.mode,
        decision=decision.to_dict(),
    )


def render_preview(snapshot: Snapshot, decision: Decision, settings: Settings, *, secrets: SecretProvider | None = None,
                   now: float | None = None) -> tuple[Email, list[str]]:
    """Render the email for a decision as the notifier would. Returns the email and notes for
    the operator (e.g. "links signed with a throwaway key")."""
    now = time.time() if now is None else now
    notes: list[str] = []
    if decision.action not in EMAIL_ACTIONS:
        notes.append(f"the decision is {decision.action.value}: the app sends no email for it (rendered anyway)")
    key: bytes | None = None
    if secrets is not None:
        try:
            raw = secrets.get_optional("TRIAGE_FEEDBACK_SIGNING_KEY")
            key = key_from_secret(raw) if raw else None
        except (SecretError, ValueError) as exc:
            notes.append(f"feedback signing key not usable ({exc})")
    base = settings.public_base_url
    if not key or not base:
        from dataclasses import replace

        if not key:
            key = _random.token_bytes(32)
        if not base:
            settings = replace(settings, public_base_url=PLACEHOLDER_BASE_URL)
        notes.append("feedback links in this preview are placeholders (set TRIAGE_PUBLIC_BASE_URL and "
                     "TRIAGE_FEEDBACK_SIGNING_KEY for real ones)")
    record = preview_record(snapshot, decision, settings)
    links = feedback_links(settings, key, record.decision_key, now=now)
    rcpt = recipients_for(snapshot, decision, settings)
    if not rcpt.to:
        notes.append("no recipient: set the job tag triage.owner, EMAIL_DEFAULT_TO or EMAIL_ESCALATION_TO")
    email = render_email(snapshot, decision, record, settings=settings, links=links, recipients=rcpt,
                         scrub=secrets.scrub if secrets is not None else None, now=now)
    return email, notes


def write_preview(snapshot: Snapshot, decision: Decision, settings: Settings, path: str | Path, *,
                  secrets: SecretProvider | None = None, now: float | None = None) -> tuple[Email, list[str]]:
    """Render and write the HTML body to ``path`` (folders created). For ``make demo``."""
    email, notes = render_preview(snapshot, decision, settings, secrets=secrets, now=now)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(email.html, encoding="utf-8")
    return email, notes


def run(args, ctx) -> int:
    from shared.secrets import SecretProvider
    from shared.triage import decide

    note_deprecated(args, ctx)
    settings = ctx.settings()
    snapshot = load_snapshot(args.snapshot)
    use_llm = not args.no_llm and settings.llm_configured
    store = None
    if use_llm:
        store = open_cli_store(ctx, write=True, settings=settings)   # the model's answer cache
    try:
        decision = decide(snapshot, settings, store=store, use_llm=use_llm)
    finally:
        if store is not None:
            store.close()
    with SecretProvider.from_settings(settings) as provider:
        if args.out:
            email, notes = write_preview(snapshot, decision, settings, args.out, secrets=provider)
        else:
            email, notes = render_preview(snapshot, decision, settings, secrets=provider)
    for note in notes:
        ctx.note(f"note: {note}")
    if args.output == "json":
        write_json(ctx, {"to": list(email.to), "subject": email.subject, "file": args.out or None,
                         "text": email.text, **({} if args.out else {"html": email.html})})
        return 0
    to = ", ".join(email.to) or "(nobody)"
    if args.out:
        ctx.stdout.write(f"wrote {args.out}\nTo: {to}\nSubject: {email.subject}\n")
    else:
        ctx.stdout.write(f"To: {to}\nSubject: {email.subject}\n\n{email.text}")
    return 0
