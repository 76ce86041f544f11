"""The notification vocabulary: the ``Notifier`` protocol every channel implements, the plain
data a notification is made of, and ``NullNotifier`` for when no channel is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from shared.models import Action, Decision

if TYPE_CHECKING:  # pragma: no cover
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord


__all__ = ["Email", "Recipients", "Similar", "Notifier", "EMAIL_ACTIONS", "NOTIFY_STATUSES"]


EMAIL_ACTIONS = frozenset({Action.SEND_EMAIL, Action.ESCALATE})
# What ``notify`` returns in "status" (and what DecisionRecord.notification["status"] holds):
#   sent        ACS accepted and delivered the message to its outbound queue (status Succeeded)
#   failed      not sent; "error" says why; the next sweep retries (pending_notifications)
#   suppressed  not sent on purpose: a similar failure of this job was emailed inside the window
#   sending     another worker is sending this decision's email right now
#   skipped     the action needs no email (RETRY, IGNORE, ...)
NOTIFY_STATUSES = ("sent", "failed", "suppressed", "sending", "skipped")

# --- plain data ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Email:
    subject: str
    html: str
    text: str
    to: tuple[str, ...]


@dataclass(frozen=True)
class Recipients:
    to: tuple[str, ...]
    source: str             # e.g. "job tag triage.owner", "EMAIL_ESCALATION_TO"


@dataclass(frozen=True)
class Similar:
    """Failures of the same job with the same fingerprint that were counted, not emailed."""

    count: int
    since_ms: int
    until_ms: int

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "since_ms": self.since_ms, "until_ms": self.until_ms}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Similar | None":
        if not d or not int(d.get("count") or 0):
            return None
        return cls(int(d["count"]), int(d.get("since_ms") or 0), int(d.get("until_ms") or 0))


class Notifier(Protocol):
    """What the pipeline calls for a decision that needs a person."""

    def notify(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord") -> dict[str, Any]: ...




class NullNotifier:
    """The notifier when no channel is configured: records that nothing was sent."""

    def notify(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord | None") -> dict[str, Any]:
        return {"status": "not configured"}
