"""Who is told: SEND_EMAIL goes to the job tag ``triage.owner``, else the job's own failure
e-mail notifications, else the run's creator, else ``EMAIL_DEFAULT_TO``; ESCALATE goes to
``EMAIL_ESCALATION_TO`` (else the default list).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from shared.models import Action, Decision

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.snapshot import Snapshot

from shared.notify.notifier import Recipients

__all__ = ["recipients_for"]


_MAX_RECIPIENTS = 50                # ACS accepts at most 50 recipients per message
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"\\]{1,64}@[^@\s<>()\[\],;:\"\\]{1,255}\.[^@\s<>()\[\],;:\"\\.]{2,63}")
# --- recipients ---------------------------------------------------------------------------

def _addresses(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = re.split(r"[,;\s]+", values)
    out = []
    for v in values:
        a = str(v or "").strip()
        if a and _ADDRESS.fullmatch(a):
            out.append(a)
    return out


def _unique(addresses: Sequence[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for a in addresses:
        if a.lower() not in seen:
            seen.add(a.lower())
            out.append(a)
    return tuple(out[:_MAX_RECIPIENTS])


def _owner_recipients(snapshot: "Snapshot", settings: "Settings") -> Recipients:
    owner = _addresses(snapshot.tags.get("triage.owner"))
    if owner:
        return Recipients(_unique(owner), "job tag triage.owner")
    settings_obj = (snapshot.job or {}).get("settings") or {}
    notes = settings_obj.get("email_notifications") if isinstance(settings_obj, Mapping) else None
    on_failure = _addresses((notes or {}).get("on_failure") if isinstance(notes, Mapping) else None)
    if on_failure:
        return Recipients(_unique(on_failure), "the job's failure e-mail notifications")
    creator = _addresses([snapshot.creator])
    if creator:
        return Recipients(_unique(creator), "the run's creator")
    if settings.email_default_to:
        return Recipients(_unique(_addresses(settings.email_default_to)), "EMAIL_DEFAULT_TO")
    return Recipients((), "")


def recipients_for(snapshot: "Snapshot", decision: Decision, settings: "Settings") -> Recipients:
    """Who receives the email for this decision (empty ``to`` when nobody is configured)."""
    if Action(str(decision.action)) is Action.ESCALATE:
        on_call = _addresses(settings.email_escalation_to)
        if on_call:
            return Recipients(_unique(on_call), "EMAIL_ESCALATION_TO")
        default = _addresses(settings.email_default_to)
        if default:
            return Recipients(_unique(default), "EMAIL_DEFAULT_TO (EMAIL_ESCALATION_TO is not set)")
        return Recipients((), "")
    return _owner_recipients(snapshot, settings)


