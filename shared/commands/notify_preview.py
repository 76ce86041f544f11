"""``python -m shared notify-preview SNAPSHOT --via teams|slack|pagerduty|webhook``: the exact
payload a channel would post for a failure.

The sibling of ``email-preview``: classifies the snapshot (``shared.triage.decide``, as the app
would), builds the channel's message for its decision exactly as the channel does when it
sends, and prints the JSON body on stdout. Nothing is sent and nothing is stored (so the
incident part shows this failure alone). The PagerDuty routing key shows as a marker, never its
value; for the webhook the headers it would add are named on stderr. Feedback links are signed
as in ``email-preview`` (placeholders when TRIAGE_PUBLIC_BASE_URL or the signing key is missing).
"""

from __future__ import annotations

import json
import secrets as _random
import time
from dataclasses import replace

from shared.errors import SecretError
from shared.signing import key_from_secret
from shared.snapshot import load_snapshot

__all__ = ["register", "run", "VIA"]

VIA = ("teams", "slack", "pagerduty", "webhook")


def register(sub) -> None:
    p = sub.add_parser(
        "notify-preview",
        help="print the payload a channel would post for a snapshot's decision (nothing is sent)",
        description="Classify a failure snapshot and print the exact JSON body the chosen channel would "
                    "post for its decision, without sending it.",
    )
    p.add_argument("snapshot", metavar="SNAPSHOT", help="a failure snapshot (JSON)")
    p.add_argument("--via", required=True, choices=VIA, help="the channel")
    p.add_argument("--no-llm", action="store_true", help="rules only, even when a model is configured")
    p.add_argument("-o", "--output", choices=("json",), default="json",
                   help="output format (json: the payload is JSON)")
    p.set_defaults(run=run)


def run(args, ctx) -> int:
    from shared.commands.email_preview import PLACEHOLDER_BASE_URL, preview_record
    from shared.notify.channel import Channel
    from shared.notify.pagerduty import PagerDutyChannel
    from shared.notify.render import feedback_links
    from shared.notify.slack import SlackChannel
    from shared.notify.teams import TeamsChannel
    from shared.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel
    from shared.secrets import SecretProvider
    from shared.triage import decide

    settings = ctx.settings()
    snapshot = load_snapshot(args.snapshot)
    use_llm = not args.no_llm and settings.llm_configured
    store = None
    if use_llm:
        from shared.store import open_store

        store = open_store(settings)
    try:
        decision = decide(snapshot, settings, store=store, use_llm=use_llm)
    finally:
        if store is not None:
            store.close()
    notes: list[str] = []
    if decision.action.value not in ("SEND_EMAIL", "ESCALATE"):
        notes.append(f"the decision is {decision.action.value}: the app notifies nobody for it (built anyway)")
    now = time.time()
    cls: type[Channel] = {"teams": TeamsChannel, "slack": SlackChannel, "pagerduty": PagerDutyChannel,
                          "webhook": WebhookChannel}[args.via]
    with SecretProvider.from_settings(settings) as provider:
        key = None
        try:
            raw = provider.get_optional("TRIAGE_FEEDBACK_SIGNING_KEY")
            key = key_from_secret(raw) if raw else None
        except (SecretError, ValueError) as exc:
            notes.append(f"feedback signing key not usable ({exc})")
        link_settings = settings
        if not key or not settings.public_base_url:
            key = key or _random.token_bytes(32)
            if not settings.public_base_url:
                link_settings = replace(settings, public_base_url=PLACEHOLDER_BASE_URL)
            notes.append("feedback links in this preview are placeholders (set TRIAGE_PUBLIC_BASE_URL and "
                         "TRIAGE_FEEDBACK_SIGNING_KEY for real ones)")
        record = preview_record(snapshot, decision, settings)
        links = feedback_links(link_settings, key, record.decision_key, now=now)
        channel = cls(settings, secrets=provider, store=None, clock=lambda: now)
        try:
            payload = channel.preview(snapshot, decision, record, links=links)
        finally:
            channel.close()
        if not channel.configured():
            notes.append(f"{args.via} is not configured here (the secret {cls.secret} is not set)")
    if args.via == "webhook":
        notes.append(f"sent with the headers {TIMESTAMP_HEADER}: <unix seconds> and {SIGNATURE_HEADER}: "
                     "v1=<HMAC-SHA256 of '<timestamp>.' + this body, keyed by TRIAGE_WEBHOOK_SECRET>")
    for note in notes:
        ctx.stderr.write(f"note: {note}\n")
    ctx.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return 0
