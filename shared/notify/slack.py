"""Slack through an incoming webhook with Block Kit.

``POST {SLACK_WEBHOOK_URL}`` with ``{"text": <fallback>, "blocks": [...]}``; Slack answers 200
``ok``, or an error status with a short code as plain text (400 ``invalid_payload`` /
``invalid_blocks``, 403 ``action_prohibited``, 404 ``no_service`` / ``channel_not_found``,
410 ``channel_is_archived``): those are not retried, 429 and 5xx are. The webhook URL is a secret
(``SLACK_WEBHOOK_URL``, from Key Vault).

Blocks: a ``header`` (plain text, at most 150 characters), ``section`` blocks in ``mrkdwn`` (at most
3000 characters each; ``fields`` at most 10 of 2000), a ``context`` line, the root cause in a code
block, and an ``actions`` block of link buttons (the run, approve / reject, the feedback links).
``&``, ``<`` and ``>`` are escaped, so nothing in a job name or an error can mention a channel or
form a link; the top-level ``text`` is the fallback notifications and screen readers show.
"""

from __future__ import annotations

from typing import Any

from shared.notify.channel import Channel
from shared.notify.notice import Notice

__all__ = ["SlackChannel"]

_HEADER = 150
_SECTION = 3000
_FIELD = 2000
_BUTTON_TEXT = 75


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped."""
    return str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str) -> str:
    """Plain text with no angle brackets, so nothing in it can read as a mention or a link."""
    return str(text or "").replace("<", "‹").replace(">", "›")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SECTION)}}


class SlackChannel(Channel):
    name = "slack"
    secret = "SLACK_WEBHOOK_URL"

    def blocks(self, notice: Notice) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(plain(notice.title), _HEADER),
                                            "emoji": False}},
            _section(f"*{escape(notice.headline)}*\n{escape(notice.todo)}\n*Suggested fix:* {escape(notice.fix)}"),
        ]
        if notice.outage_text:
            blocks.append(_section(f":rotating_light: {escape(notice.outage_text)}"))
        fields = [{"type": "mrkdwn", "text": _cut(f"*{escape(k)}*\n{escape(v)}", _FIELD)} for k, v in notice.facts[:10]]
        if fields:
            blocks.append({"type": "section", "fields": fields})
        if notice.reason:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                                                            "text": _cut(escape(notice.reason), _SECTION)}]})
        if notice.excerpt:
            code = escape(notice.excerpt).replace("```", "'''")
            blocks.append(_section(_cut(f"*Root cause (secrets redacted)*\n```{code}```", _SECTION)))
        buttons = []
        for kind, label, url in notice.links:
            button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": _cut(plain(label), _BUTTON_TEXT)},
                                      "url": url, "action_id": f"triage-{kind}"}
            if kind == "approve":
                button["style"] = "primary"
            elif kind == "reject":
                button["style"] = "danger"
            buttons.append(button)
        if buttons:
            blocks.append({"type": "actions", "elements": buttons[:25]})
        return blocks

    def payload(self, notice: Notice) -> dict[str, Any]:
        fallback = escape(notice.title) + (f" — {escape(notice.outage_text)}" if notice.outage_text else "")
        return {"text": _cut(fallback, _SECTION), "blocks": self.blocks(notice)}
