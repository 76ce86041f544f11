"""Email through Azure Communication Services: who gets told, what they read, and no storms.

Pieces (docs/email.md has the operator's view):

- ``recipients_for(snapshot, decision, settings)``: SEND_EMAIL goes to the job tag
  ``triage.owner``, else the job's own failure e-mail notifications, else the run's creator,
  else ``EMAIL_DEFAULT_TO``; ESCALATE goes to ``EMAIL_ESCALATION_TO`` (else the default list).
- ``render_email(...)``: subject, HTML and plain-text bodies. Every dynamic value is redacted
  (``shared.redact`` plus the values the ``SecretProvider`` handed out) and HTML-escaped.
- ``feedback_links(...)``: signed, expiring "correct" / "wrong" links (``shared.signing``);
  ``decision_links(settings, key, record, now=...)``: the links of a stored decision, with
  Approve / Reject while its approval is pending (for every channel).
- ``EmailNotifier.notify(snapshot, decision, record) -> dict``: at most one email per decision
  key; repeated failures of one job with one fingerprint inside ``TRIAGE_EMAIL_WINDOW`` are
  counted, not sent, and the next email after the window says how many there were. Sends go
  through ``azure-communication-email``'s ``EmailClient`` (keyless with ``ACS_ENDPOINT`` and
  the app's identity, or ``ACS_CONNECTION_STRING`` from the secrets), with azure-core retrying
  throttling and 5xx, and the send poller bounded in time. The returned dict belongs in
  ``DecisionRecord.notification``; a failed send says ``{"status": "failed", ...}`` there and
  ``pending_notifications(store)`` finds it again for the next sweep.

Chat, paging and webhook channels (docs/channels.md): ``pagerduty``, ``teams``, ``slack`` and
``webhook`` modules, each a ``Channel`` (``channel``) posting through the one ``ChannelClient``
(``client``); ``RoutedNotifier`` (``routing``) tries a decision's route of channels in order
(``TRIAGE_NOTIFY_VIA`` / ``TRIAGE_ESCALATE_VIA``, job tags by name); ``incidents`` groups failures
of many jobs with one cause into one incident (one PagerDuty ``dedup_key``), which
``resolve_recovered`` / ``recovered`` resolve when the jobs recover."""

from __future__ import annotations

from shared.notify.notifier import EMAIL_ACTIONS, NOTIFY_STATUSES, Email, Notifier, NullNotifier, Recipients, Similar
from shared.notify.recipients import recipients_for
from shared.notify.render import render_email, feedback_links, decision_links, default_fix
from shared.notify.acs_email import EmailNotifier, pending_notifications
from shared.notify.routing import RoutedNotifier, build_channels, recovered, resolve_recovered

__all__ = [
    "Email",
    "Recipients",
    "Similar",
    "Notifier",
    "NullNotifier",
    "EmailNotifier",
    "EMAIL_ACTIONS",
    "NOTIFY_STATUSES",
    "recipients_for",
    "render_email",
    "feedback_links",
    "decision_links",
    "default_fix",
    "pending_notifications",
    "RoutedNotifier",
    "build_channels",
    "recovered",
    "resolve_recovered",
]
