"""Microsoft Teams through a Teams workflow (Power Automate) webhook carrying an Adaptive Card.

The workflow "Post to a channel when a webhook request is received" (trigger "When a Teams webhook
request is received") takes a message envelope and posts each card attachment to the channel:

    {"type": "message",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null,
                      "content": {"type": "AdaptiveCard", "version": "1.4", "body": [...], "actions": [...]}}]}

It answers 202 Accepted. The workflow URL (``TEAMS_WEBHOOK_URL``, a secret: it carries the
signature that lets anyone holding it post) comes from Key Vault.

The card: a title, what to do and the suggested fix, the facts, how many other jobs fail the same
way, the root cause (redacted), and buttons as links (``Action.OpenUrl``): the run in Databricks,
approve / reject when the decision asks for approval, and the signed feedback links. Text is
redacted before it gets here; link syntax in it is neutralised so a job name cannot become a link.
"""

from __future__ import annotations

import re
from typing import Any

from shared.notify.channel import Channel
from shared.notify.notice import Notice

__all__ = ["TeamsChannel", "CARD_CONTENT_TYPE"]

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
_MD_LINK = re.compile(r"\]\s*\(")


def _text(value: str) -> str:
    """Card text without markdown links (``[x](url)`` would render as a link)."""
    return _MD_LINK.sub("] (", str(value or ""))


def _block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": _text(text), "wrap": True, **style}


class TeamsChannel(Channel):
    name = "teams"
    secret = "TEAMS_WEBHOOK_URL"

    def card(self, notice: Notice) -> dict[str, Any]:
        urgent = notice.action in ("ESCALATE", "SEND_EMAIL")
        body: list[dict[str, Any]] = [
            _block(notice.title, weight="Bolder", size="Medium", color="Attention" if urgent else "Default",
                   style="heading"),
            _block(notice.headline, weight="Bolder"),
            _block(notice.todo),
            _block(f"Suggested fix: {notice.fix}"),
        ]
        if notice.outage_text:
            body.append(_block(notice.outage_text, color="Warning", weight="Bolder"))
        body.append({"type": "FactSet", "facts": [{"title": k, "value": _text(v)} for k, v in notice.facts]})
        if notice.reason:
            body.append(_block(notice.reason, isSubtle=True))
        if notice.excerpt:
            body.append(_block("Root cause (secrets redacted)", weight="Bolder", spacing="Medium"))
            body.append(_block(notice.excerpt, fontType="Monospace", size="Small"))
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
            "msteams": {"width": "Full"},
        }
        actions = [{"type": "Action.OpenUrl", "title": label, "url": url} for _, label, url in notice.links]
        if actions:
            card["actions"] = actions
        return card

    def payload(self, notice: Notice) -> dict[str, Any]:
        return {"type": "message",
                "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": self.card(notice)}]}
